"""The agent memory's collections: AgentDB's tables, same names, same columns.

Every collection has int ids allocated with AUTOINCREMENT semantics (AgentDB's
``INTEGER PRIMARY KEY AUTOINCREMENT``), a field for every AgentDB column and the row's JSON
``metadata`` column as the record's metadata. The row's embedding (AgentDB keeps it in a side
table such as ``episode_embeddings``) is the record's vector; a row without one is a record
with ``vector=None``, which is stored and read but never a search hit. ``skill_links`` and
``causal_edges`` never have vectors.

Storage conventions, as in AgentDB files: timestamps are INTEGER unix seconds (``ts``,
``created_at``, ``updated_at``, ``last_used_at``, ``last_validated_at``); booleans
(``episodes.success``) are 0/1 integers; ``tags`` is ``text[]``; ``signature``,
``evidence_ids`` and ``experiment_ids`` are ``json``. ``latency_ms`` and ``avg_latency_ms`` are
``float``: the columns are declared INTEGER but SQLite keeps non-integral values as REAL, and
real files hold them. One column is renamed: ``causal_edges.similarity`` is the field
``edge_similarity``, because ``similarity`` is reserved for search scores. Columns that only the
MCP-server schema variant has (``skills.ts``, ``skills.tags``, ``causal_edges.ts``) are fields
too, so a migration can carry either variant.

The migration tool creates these collections with :func:`ensure_collections` (or the same
:data:`COLLECTIONS` definitions) and writes AgentDB rows straight into them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs

from vectorstore.errors import CollectionExists, CollectionNotFound, ConfigError
from vectorstore.schema import HNSW, MAX_DIM, CollectionSpec, FieldType, IdType, Metric
from vectorstore.store import AsyncCollection, AsyncStore

from .errors import IncompatibleCollection

DIM_ENV = "AGENTDB_VECTOR_DIM"
DEFAULT_DIM = 384  # all-MiniLM-L6-v2, AgentDB's default embedder

EPISODES = "episodes"
SKILLS = "skills"
SKILL_LINKS = "skill_links"
REASONING_PATTERNS = "reasoning_patterns"
CAUSAL_EDGES = "causal_edges"

_T, _I, _F, _J = FieldType.TEXT, FieldType.INT, FieldType.FLOAT, FieldType.JSON
_TA = FieldType.TEXT_ARRAY

EPISODE_FIELDS: Mapping[str, FieldType] = {
    "ts": _I, "session_id": _T, "task": _T, "input": _T, "output": _T, "critique": _T,
    "reward": _F, "success": _I, "latency_ms": _F, "tokens_used": _I, "tags": _TA,
    "created_at": _I,
}
SKILL_FIELDS: Mapping[str, FieldType] = {
    "name": _T, "description": _T, "signature": _J, "code": _T, "success_rate": _F, "uses": _I,
    "avg_reward": _F, "avg_latency_ms": _F, "created_from_episode": _I, "created_at": _I, "updated_at": _I,
    "last_used_at": _I, "ts": _I, "tags": _TA,
}
SKILL_LINK_FIELDS: Mapping[str, FieldType] = {
    "parent_skill_id": _I, "child_skill_id": _I, "relationship": _T, "weight": _F,
}
PATTERN_FIELDS: Mapping[str, FieldType] = {
    "ts": _I, "task_type": _T, "approach": _T, "success_rate": _F, "uses": _I, "avg_reward": _F,
    "tags": _TA,
}
CAUSAL_EDGE_FIELDS: Mapping[str, FieldType] = {
    "from_memory_id": _I, "from_memory_type": _T, "to_memory_id": _I, "to_memory_type": _T,
    "edge_similarity": _F, "uplift": _F, "confidence": _F, "sample_size": _I, "evidence_ids": _J,
    "experiment_ids": _J, "confounder_score": _F, "mechanism": _T, "created_at": _I, "updated_at": _I,
    "last_validated_at": _I, "ts": _I,
}


@attrs.frozen
class MemoryCollection:
    """One AgentDB table: its fields, and whether its records carry embeddings."""

    name: str
    fields: Mapping[str, FieldType]
    embedded: bool

    def spec(self, dim: int) -> CollectionSpec:
        # Fields in PostgreSQL jsonb key order (shorter names first, then bytewise), the order in
        # which the postgres catalog hands the definition back, so every spec of the collection in
        # a process lists its fields in one order (see the report on the postgres SQL cache key).
        ordered = dict(sorted(self.fields.items(), key=lambda kv: (len(kv[0].encode()), kv[0].encode())))
        return CollectionSpec(name=self.name, dim=dim, metric=Metric.COSINE, fields=ordered,
                              index=HNSW(), id_type=IdType.INT)


COLLECTIONS: Mapping[str, MemoryCollection] = {
    c.name: c for c in (
        MemoryCollection(EPISODES, EPISODE_FIELDS, True),
        MemoryCollection(SKILLS, SKILL_FIELDS, True),
        MemoryCollection(SKILL_LINKS, SKILL_LINK_FIELDS, False),
        MemoryCollection(REASONING_PATTERNS, PATTERN_FIELDS, True),
        MemoryCollection(CAUSAL_EDGES, CAUSAL_EDGE_FIELDS, False),
    )
}


def resolve_dim(dim: int | None = None) -> int:
    """``dim`` if given, else ``AGENTDB_VECTOR_DIM``, else 384."""
    if dim is None:
        raw = os.environ.get(DIM_ENV, "").strip()
        if not raw:
            return DEFAULT_DIM
        try:
            dim = int(raw)
        except ValueError:
            raise ConfigError(f"{DIM_ENV}={raw!r} is not an integer; set it to the embedding dimension "
                              f"(for example {DEFAULT_DIM})") from None
        source = DIM_ENV
    else:
        source = "dim"
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
        raise ConfigError(f"{source} must be an integer from 1 to {MAX_DIM}, got {dim!r}")
    return dim


def _check_compatible(found: CollectionSpec, want: MemoryCollection, dim: int) -> None:
    problems = []
    if found.id_type is not IdType.INT:
        problems.append("it has text ids (AgentDB rows have int ids)")
    if want.embedded and found.dim != dim:
        problems.append(f"its vectors are {found.dim}-d, not {dim}-d (set {DIM_ENV} or dim= to match)")
    if want.embedded and found.metric is not Metric.COSINE:
        problems.append(f"its metric is {found.metric.value}, not cosine")
    for name, kind in want.fields.items():
        have = found.fields.get(name)
        if have is None:
            problems.append(f"it has no field {name!r} ({kind.value})")
        elif have is not kind:
            problems.append(f"its field {name!r} is {have.value}, not {kind.value}")
    if problems:
        raise IncompatibleCollection(
            f"collection {found.name!r} exists but cannot hold AgentDB's {want.name} table: "
            + "; ".join(problems) + ". Drop or rename it, or point the agent memory at another store")


async def ensure_collection(store: AsyncStore, name: str, dim: int) -> AsyncCollection:
    """Open the collection ``name`` (one of :data:`COLLECTIONS`), creating it if missing.

    An existing collection is accepted when it has int ids, every field the memory needs (more
    are fine) and, for embedded collections, the dimension ``dim`` and the cosine metric.
    """
    want = COLLECTIONS[name]
    try:
        col = await store.collection(name)
    except CollectionNotFound:
        spec = want.spec(dim)
        try:
            return await store.create_collection(name, dim=dim, metric="cosine", fields=spec.fields,
                                                 index=spec.index, id_type="int", exist_ok=True)
        except CollectionExists:  # created concurrently with another definition
            col = await store.collection(name)
    _check_compatible(col.spec, want, dim)
    return col


@attrs.frozen
class Collections:
    """The five collections, opened."""

    episodes: AsyncCollection
    skills: AsyncCollection
    skill_links: AsyncCollection
    reasoning_patterns: AsyncCollection
    causal_edges: AsyncCollection


async def ensure_collections(store: AsyncStore, dim: int | None = None) -> Collections:
    """Open (creating when missing) every agent-memory collection; ``dim`` as :func:`resolve_dim`."""
    size = resolve_dim(dim)
    cols = [await ensure_collection(store, name, size) for name in COLLECTIONS]
    return Collections(*cols)
