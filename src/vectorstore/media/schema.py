"""The media gateway's data model: the product spec's five tables as collections.

One data model for the whole store. The spec names five tables; two are the media
gateway's own (defined here), three are agent memory, which :mod:`vectorstore.memory`
keeps in AgentDB's real shape and names (``shared/compat/agentdb.md``):

==========================  ======================  ===============================================
spec table                  collection              owner
==========================  ======================  ===============================================
``user_preferences``        ``user_preferences``    :class:`~vectorstore.media.UserPreferences`
``content_vectors``         ``content_vectors``     :class:`~vectorstore.media.ContentSearch`
``reasoning_patterns``      ``reasoning_patterns``  ``vectorstore.memory`` ReasoningBank
``reflexion_episodes``      ``episodes``            ``vectorstore.memory`` ReflexionMemory
``skill_library``           ``skills``              ``vectorstore.memory`` SkillLibrary
==========================  ======================  ===============================================

No parallel ``reflexion_episodes`` / ``skill_library`` collections exist: a watch event's
episode is written through ReflexionMemory into ``episodes``.

Dimensions: ``user_preferences`` (and the agent memory collections) use
``AGENTDB_VECTOR_DIM`` (default 384, AgentDB's all-MiniLM-L6-v2); ``content_vectors`` uses
``RUVECTOR_VECTOR_DIM`` (default 768). HNSW ``m=16, ef_construction=64`` throughout, cosine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs

from vectorstore.errors import CollectionExists, CollectionNotFound, ConfigError
from vectorstore.schema import HNSW, MAX_DIM, FieldType, Metric
from vectorstore.store import AsyncCollection, AsyncStore

DEFAULT_PREFERENCE_DIM = 384
DEFAULT_CONTENT_DIM = 768
PREFERENCE_DIM_ENV = "AGENTDB_VECTOR_DIM"
CONTENT_DIM_ENV = "RUVECTOR_VECTOR_DIM"

#: HNSW parameters of the product spec.
SPEC_HNSW = HNSW(m=16, ef_construction=64)

USER_PREFERENCES = "user_preferences"
CONTENT_VECTORS = "content_vectors"

#: The product spec's table names mapped to the collections that hold them.
SPEC_TABLES: Mapping[str, str] = {
    "user_preferences": USER_PREFERENCES,
    "content_vectors": CONTENT_VECTORS,
    "reasoning_patterns": "reasoning_patterns",
    "reflexion_episodes": "episodes",
    "skill_library": "skills",
}

#: Fields of ``user_preferences``; the record id is the user id, the vector the preference vector.
PREFERENCE_FIELDS: Mapping[str, FieldType] = {
    "confidence": FieldType.FLOAT,
    "interaction_count": FieldType.INT,
    "last_reward": FieldType.FLOAT,
    "genre_affinities": FieldType.JSON,
    "temporal_patterns": FieldType.JSON,
    "created_at": FieldType.TIMESTAMP,
    "updated_at": FieldType.TIMESTAMP,
}

#: Fields of ``content_vectors``; the record id is ``"<media_type>:<content_id>"``, which makes
#: ``(content_id, media_type)`` unique by construction.
CONTENT_FIELDS: Mapping[str, FieldType] = {
    "content_id": FieldType.TEXT,
    "media_type": FieldType.TEXT,
    "title": FieldType.TEXT,
    "overview": FieldType.TEXT,
    "genre_ids": FieldType.INT_ARRAY,
    "rating": FieldType.FLOAT,
    "popularity": FieldType.FLOAT,
    "release_date": FieldType.DATE,
    "created_at": FieldType.TIMESTAMP,
    "updated_at": FieldType.TIMESTAMP,
}


@attrs.frozen(slots=True)
class TableDef:
    """A collection of the data model: what :func:`ensure_collection` creates."""

    name: str
    dim: int
    fields: Mapping[str, FieldType]
    metric: Metric = Metric.COSINE
    index: HNSW = SPEC_HNSW
    id_type: str = "text"


def env_dim(variable: str, default: int) -> int:
    """The dimension configured in ``variable`` (an integer from 1 to 16000), else ``default``."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_DIM:
        raise ConfigError(f"{variable}={raw!r} is not a vector dimension; set it to an integer from 1 to {MAX_DIM}")
    return value


def preference_table(dim: int | None = None) -> TableDef:
    return TableDef(USER_PREFERENCES, dim or env_dim(PREFERENCE_DIM_ENV, DEFAULT_PREFERENCE_DIM), PREFERENCE_FIELDS)


def content_table(dim: int | None = None) -> TableDef:
    return TableDef(CONTENT_VECTORS, dim or env_dim(CONTENT_DIM_ENV, DEFAULT_CONTENT_DIM), CONTENT_FIELDS)


async def ensure_collection(store: AsyncStore, table: TableDef, *, dim_given: bool = False) -> AsyncCollection:
    """Open ``table``'s collection, creating it when missing.

    An existing collection is adopted as it is, so a store created with another configured
    dimension keeps working; but when the caller asked for a dimension explicitly
    (``dim_given``) and the stored one differs, CollectionExists says so.
    """
    for _ in range(2):  # a concurrent creator may win the race once
        try:
            col = await store.collection(table.name)
        except CollectionNotFound:
            pass
        else:
            if dim_given and col.spec.dim != table.dim:
                raise CollectionExists(
                    f"collection {table.name!r} exists with dimension {col.spec.dim}, not {table.dim}; "
                    f"pass dim={col.spec.dim} (or drop the collection to change its dimension)"
                )
            missing = [f for f in table.fields if f not in col.spec.fields]
            if missing:
                raise CollectionExists(
                    f"collection {table.name!r} exists but lacks the field(s) {missing}; it was not created "
                    "by vectorstore.media: drop or rename it"
                )
            return col
        try:
            return await store.create_collection(table.name, dim=table.dim, metric=table.metric.value,
                                                 fields=dict(table.fields), index=table.index,
                                                 id_type=table.id_type)
        except CollectionExists:
            continue
    return await store.collection(table.name)
