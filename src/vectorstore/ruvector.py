"""A RuVector-style ``VectorDB`` over any vectorstore backend.

Mirrors the names and result shapes of the npm ``ruvector`` client (``shared/compat/ruvector.md``)
in Python conventions::

    db = VectorDB(dimensions=3, distance_metric="Cosine", url="sqlite:///./data/rv.db")
    vid = db.insert({"vector": [0.1, 0.2, 0.3], "metadata": {"genre": "drama", "year": 1999}})
    db.insert_batch([{"id": "a", "vector": [1, 0, 0]}, {"id": "b", "vector": [0, 1, 0]}])
    for r in db.search({"vector": [0.1, 0.2, 0.25], "k": 5, "filter": {"genre": "drama"}}):
        print(r.id, r.score, r.metadata)          # score: a distance, ascending
    db.get(vid), db.delete(vid), db.len(), db.is_empty()

It keeps RuVector's shapes but not its defects: the filter (exact match on metadata keys,
numbers compared as numbers, so ``7 == 7.0``) is applied before taking the top k, so k hits
come back whenever k records match; metadata goes in and comes back as a dict; inserting an
existing id replaces it; ``k <= 0`` raises InvalidInput. Scores are distances: Cosine
``1 - cos``, Euclidean the L2 distance, DotProduct ``-dot``. ``Manhattan`` (L1) has no
vectorstore metric and raises :class:`UnsupportedMetric`.
"""

from __future__ import annotations

import asyncio
import numbers
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from vectorstore.errors import (
    CollectionExists,
    CollectionNotFound,
    InvalidFilter,
    InvalidInput,
    InvalidRecord,
    InvalidSchema,
    InvalidVector,
    NotSupported,
)
from vectorstore.records import Record, Vector
from vectorstore.schema import HNSW, MAX_DIM, Metric
from vectorstore.store import AsyncCollection, AsyncStore, open_store
from vectorstore.sync import Store, connect

DEFAULT_COLLECTION = "ruvector"

#: RuVector's metric names and the vectorstore metric each maps to.
METRICS: Mapping[str, Metric] = {"Cosine": Metric.COSINE, "Euclidean": Metric.L2, "DotProduct": Metric.INNER_PRODUCT}
UNSUPPORTED_METRICS = frozenset({"Manhattan"})

RECORD_KEYS = frozenset({"id", "vector", "metadata"})
QUERY_KEYS = frozenset({"vector", "k", "filter", "ef_search", "efSearch"})


class UnsupportedMetric(InvalidSchema, NotSupported):
    """The RuVector metric has no vectorstore equivalent (``Manhattan``)."""


@attrs.frozen(slots=True)
class SearchResult:
    """One hit, shaped like RuVector's ``{id, score, vector, metadata}``; ``score`` is a distance."""

    id: str
    score: float
    vector: Vector = attrs.field(repr=False, eq=False)
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "vector": self.vector.tolist(), "metadata": dict(self.metadata)}


@attrs.frozen(slots=True)
class VectorEntry:
    """A stored entry, shaped like RuVector's ``{id, vector, metadata}``."""

    id: str
    vector: Vector = attrs.field(repr=False, eq=False)
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "vector": self.vector.tolist(), "metadata": dict(self.metadata)}


def parse_metric(value: object) -> Metric:
    """RuVector's ``distanceMetric`` (``Cosine``, ``Euclidean``, ``DotProduct``) as a vectorstore metric."""
    if isinstance(value, str) and value in UNSUPPORTED_METRICS:
        raise UnsupportedMetric(
            f"distance_metric {value!r} (L1) is not supported by vectorstore's backends; use 'Cosine', "
            "'Euclidean' or 'DotProduct'"
        )
    if isinstance(value, str) and value in METRICS:
        return METRICS[value]
    raise InvalidSchema(f"unknown distance_metric {value!r}: use 'Cosine', 'Euclidean' or 'DotProduct'")


def _check_dimensions(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= int(value) <= MAX_DIM:
        raise InvalidSchema(f"dimensions must be an integer from 1 to {MAX_DIM}, got {value!r}")
    return int(value)


def _hnsw(config: Mapping[str, Any] | None) -> tuple[HNSW, int | None]:
    if config is None:
        return HNSW(), None
    if not isinstance(config, Mapping):
        raise InvalidSchema(f"hnsw_config must be a dict such as {{'m': 16, 'ef_construction': 64}}, got {config!r}")
    names: dict[str, str | None] = {"m": "m", "ef_construction": "ef_construction", "efConstruction": "ef_construction",
             "ef_search": "ef_search", "efSearch": "ef_search", "max_elements": None, "maxElements": None}
    unknown = set(config) - set(names)
    if unknown:
        raise InvalidSchema(f"unknown hnsw_config key(s) {sorted(unknown)}; use m, ef_construction, ef_search")
    values: dict[str, Any] = {}
    for key, value in config.items():
        name = names[key]
        if name is not None:
            values[name] = value
    ef_search = values.pop("ef_search", None)
    if ef_search is not None and (isinstance(ef_search, bool) or not isinstance(ef_search, int)
                                  or not 1 <= ef_search <= 10_000):
        raise InvalidSchema(f"hnsw_config ef_search must be an integer from 1 to 10000, got {ef_search!r}")
    return HNSW(**values), ef_search


def _metadata_filter(flt: object) -> dict[str, Any] | None:
    """RuVector's filter (exact match on metadata keys) as a vectorstore metadata filter."""
    if flt is None:
        return None
    if not isinstance(flt, Mapping):
        raise InvalidFilter(f"filter must be a dict of metadata key to value, got {flt!r}")
    out: dict[str, Any] = {}
    for key, value in flt.items():
        if not isinstance(key, str) or not key or "." in key:
            raise InvalidFilter(f"filter key {key!r} is not a metadata key (a non-empty string without '.')")
        if isinstance(value, (Mapping, list, tuple)):
            raise InvalidFilter(f"filter[{key!r}] = {value!r}: filters match a metadata key exactly, so the "
                                "value must be a string, number, boolean or None")
        out[f"metadata.{key}"] = {"$eq": value}
    return out or None


def _entry(item: object, index: int) -> Record:
    if isinstance(item, VectorEntry):
        rid: object = item.id
        vector: object = item.vector
        metadata: object = item.metadata
    elif isinstance(item, Mapping):
        unknown = set(item) - RECORD_KEYS
        if unknown:
            raise InvalidRecord(f"entries[{index}] has unknown key(s) {sorted(unknown)}; an entry has id (optional), "
                                "vector and metadata (optional)")
        if "vector" not in item:
            raise InvalidRecord(f"entries[{index}] has no 'vector'")
        rid, vector, metadata = item.get("id"), item["vector"], item.get("metadata")
    else:
        raise InvalidRecord(f"entries[{index}] must be a dict {{id?, vector, metadata?}}, got {type(item).__name__}")
    if vector is None:
        raise InvalidVector(f"entries[{index}] has no vector; every entry needs one")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidRecord(f"entries[{index}]: metadata must be a dict (it is stored and returned as an object), "
                            f"got {type(metadata).__name__}")
    if rid is None:
        rid = str(uuid.uuid4())
    elif not isinstance(rid, str):
        raise InvalidRecord(f"entries[{index}]: id must be a string, got {type(rid).__name__} {rid!r}")
    return Record(rid, vector, {}, dict(metadata) if isinstance(metadata, Mapping) else {})


class AsyncVectorDB:
    """RuVector's ``VectorDB`` over an :class:`~vectorstore.AsyncStore` (``store=``) or a URL
    (``url=``, opened on first use and closed by :meth:`aclose`). Records live in the
    collection ``collection`` (created on first use; an existing one must have the same
    dimensions and metric)."""

    def __init__(self, dimensions: int, distance_metric: str = "Cosine", *, url: str | None = None,
                 store: AsyncStore | None = None, collection: str = DEFAULT_COLLECTION,
                 hnsw_config: Mapping[str, Any] | None = None, **options: Any) -> None:
        self.dimensions = _check_dimensions(dimensions)
        self.distance_metric = distance_metric
        self.metric = parse_metric(distance_metric)
        self.index, self.ef_search = _hnsw(hnsw_config)
        self.collection_name = collection
        self._url = url
        self._options = options
        self._store = store
        self._owns_store = store is None
        self._col: AsyncCollection | None = None
        self._lock = asyncio.Lock()

    async def _collection(self) -> AsyncCollection:
        if self._col is not None:
            return self._col
        async with self._lock:
            if self._col is None:
                if self._store is None:
                    self._store = await open_store(self._url, **self._options)
                self._col = await self._open(self._store)
        return self._col

    async def _open(self, store: AsyncStore) -> AsyncCollection:
        try:
            col = await store.collection(self.collection_name)
        except CollectionNotFound:
            try:
                return await store.create_collection(self.collection_name, dim=self.dimensions,
                                                     metric=self.metric.value, index=self.index)
            except CollectionExists:
                col = await store.collection(self.collection_name)
        if col.spec.dim != self.dimensions or col.spec.metric is not self.metric:
            raise CollectionExists(
                f"collection {self.collection_name!r} holds {col.spec.dim}-d {col.spec.metric.value} vectors, not "
                f"{self.dimensions}-d {self.metric.value}; use matching dimensions / distance_metric or another "
                "collection="
            )
        return col

    async def insert(self, entry: Mapping[str, Any] | VectorEntry) -> str:
        """Insert one entry ``{id?, vector, metadata?}`` (replacing an entry with the same id); returns its id
        (a new UUID when none was given)."""
        return (await self.insert_batch([entry]))[0]

    async def insert_batch(self, entries: Iterable[Mapping[str, Any] | VectorEntry]) -> list[str]:
        """Insert several entries, all or nothing; returns their ids in order."""
        if isinstance(entries, (Mapping, VectorEntry)):
            raise InvalidRecord("insert_batch() takes a list of entries; use insert() for one")
        records = [_entry(item, i) for i, item in enumerate(entries)]
        col = await self._collection()
        return [str(i) for i in await col.upsert(records)]

    async def search(self, query: Mapping[str, Any]) -> list[SearchResult]:
        """``{vector, k=10, filter?, ef_search?}`` → up to ``k`` results, ascending by ``score`` (a distance)."""
        if not isinstance(query, Mapping):
            raise InvalidInput(f"search() takes a dict {{vector, k, filter?, ef_search?}}, got {type(query).__name__}")
        unknown = set(query) - QUERY_KEYS
        if unknown:
            raise InvalidInput(f"search query has unknown key(s) {sorted(unknown)}; use vector, k, filter, ef_search")
        if "vector" not in query:
            raise InvalidInput("search query has no 'vector'")
        ef = query.get("ef_search", query.get("efSearch", self.ef_search))
        col = await self._collection()
        hits = await col.search(query["vector"], query.get("k", 10), where=_metadata_filter(query.get("filter")),
                                ef_search=ef, include_vector=True)
        return [SearchResult(str(h.id), h.distance, h.vector, h.metadata) for h in hits]

    async def get(self, id: str) -> VectorEntry | None:
        found = await (await self._collection()).get([id])
        return VectorEntry(str(found[0].id), found[0].vector, found[0].metadata) if found else None

    async def delete(self, id: str) -> bool:
        """Delete an entry; False if there was none."""
        return await (await self._collection()).delete([id]) > 0

    async def len(self) -> int:
        return await (await self._collection()).count()

    async def is_empty(self) -> bool:
        return await self.len() == 0

    async def aclose(self) -> None:
        """Close the store if this object opened it."""
        if self._owns_store and self._store is not None:
            await self._store.aclose()

    async def __aenter__(self) -> AsyncVectorDB:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class VectorDB:
    """Synchronous twin of :class:`AsyncVectorDB`: ``VectorDB(dimensions=, distance_metric=, url=)``
    or ``store=`` an open :class:`vectorstore.Store`."""

    def __init__(self, dimensions: int, distance_metric: str = "Cosine", *, url: str | None = None,
                 store: Store | None = None, collection: str = DEFAULT_COLLECTION,
                 hnsw_config: Mapping[str, Any] | None = None, **options: Any) -> None:
        # Validate before opening anything, so bad arguments leak no connection.
        _check_dimensions(dimensions)
        parse_metric(distance_metric)
        _hnsw(hnsw_config)
        self._owns_store = store is None
        self._store = store if store is not None else connect(url, **options)
        try:
            self.inner = AsyncVectorDB(dimensions, distance_metric, store=self._store.async_store,
                                       collection=collection, hnsw_config=hnsw_config)
        except BaseException:
            if self._owns_store:
                self._store.close()
            raise

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    @property
    def distance_metric(self) -> str:
        return self.inner.distance_metric

    @property
    def store(self) -> Store:
        return self._store

    def insert(self, entry: Mapping[str, Any] | VectorEntry) -> str:
        return self._store.run(self.inner.insert(entry))

    def insert_batch(self, entries: Iterable[Mapping[str, Any] | VectorEntry]) -> list[str]:
        return self._store.run(self.inner.insert_batch(entries))

    def search(self, query: Mapping[str, Any]) -> list[SearchResult]:
        return self._store.run(self.inner.search(query))

    def get(self, id: str) -> VectorEntry | None:
        return self._store.run(self.inner.get(id))

    def delete(self, id: str) -> bool:
        return self._store.run(self.inner.delete(id))

    def len(self) -> int:
        return self._store.run(self.inner.len())

    def __len__(self) -> int:
        return self.len()

    def is_empty(self) -> bool:
        return self._store.run(self.inner.is_empty())

    def close(self) -> None:
        """Close the store if this object opened it."""
        if self._owns_store:
            self._store.close()

    def __enter__(self) -> VectorDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["METRICS", "AsyncVectorDB", "SearchResult", "UnsupportedMetric", "VectorDB", "VectorEntry",
           "parse_metric"]
