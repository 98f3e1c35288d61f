"""An embedding cache kept in the store, so embeddings survive restarts.

Entries live in the collection ``embedding_cache_<dim>`` (metric ``l2``, so any finite vector
is accepted), one record per ``(model, text)``: the id is the SHA-256 of ``model``, a NUL and
the text. Each entry carries ``created_at`` and ``expires_at`` (NULL: never); an expired entry
is a miss, and is replaced by the next :meth:`AsyncEmbeddingCache.put`. Hit and miss counters
are kept per cache object.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

from vectorstore.embedding import Embedder, aembed, check_texts
from vectorstore.errors import InvalidInput
from vectorstore.media._util import Clock, check_text_id, utc_now
from vectorstore.media.errors import InvalidMediaInput
from vectorstore.media.schema import SPEC_HNSW, TableDef, ensure_collection
from vectorstore.records import Record, Vector
from vectorstore.schema import FieldType, Metric
from vectorstore.store import AsyncCollection, AsyncStore

if TYPE_CHECKING:
    from vectorstore.sync import Store

DEFAULT_TTL = dt.timedelta(days=30)

CACHE_FIELDS = {
    "model": FieldType.TEXT,
    "text_hash": FieldType.TEXT,
    "created_at": FieldType.TIMESTAMP,
    "expires_at": FieldType.TIMESTAMP,
}


def cache_key(model: str, text: str) -> str:
    """The record id of ``text`` embedded by ``model``."""
    return hashlib.sha256(f"{model}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()


@attrs.frozen(slots=True)
class CacheStats:
    """Lookups answered from the store (``hits``), not answered (``misses``, expired entries
    included) and entries written (``writes``) by one cache object."""

    hits: int
    misses: int
    writes: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def _ttl(value: object) -> dt.timedelta | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        ttl = value
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        ttl = dt.timedelta(seconds=float(value))
    else:
        raise InvalidMediaInput(f"ttl must be seconds or a datetime.timedelta (None: never expire), got {value!r}")
    if ttl <= dt.timedelta(0):
        raise InvalidMediaInput(f"ttl must be positive, got {value!r}")
    return ttl


class AsyncEmbeddingCache:
    """Embeddings by ``(model, text)`` in the store.

    ``model`` defaults to the embedder's name; ``dim`` to the embedder's dimension (one of the
    two, embedder or dim, is needed). ``ttl`` (seconds or a timedelta; default 30 days; None:
    never) is how long an entry stays a hit.
    """

    def __init__(self, store: AsyncStore, embedder: Embedder | None = None, *, model: str | None = None,
                 dim: int | None = None, ttl: float | dt.timedelta | None = DEFAULT_TTL,
                 clock: Clock | None = None) -> None:
        if embedder is None and (model is None or dim is None):
            raise InvalidMediaInput("an embedding cache needs an embedder, or both model= and dim=")
        self.store = store
        self.embedder = embedder
        self.model = check_text_id(model if model is not None else embedder.name if embedder else "", "model")
        self.dim = dim if dim is not None else embedder.dim if embedder else 0
        if embedder is not None and embedder.dim != self.dim:
            raise InvalidMediaInput(f"dim={dim} differs from the embedder's dimension {embedder.dim}")
        self.table = TableDef(f"embedding_cache_{self.dim}", self.dim, CACHE_FIELDS, Metric.L2, SPEC_HNSW)
        self.ttl = _ttl(ttl)
        self._clock = clock or utc_now
        self._col: AsyncCollection | None = None
        self.hits = 0
        self.misses = 0
        self.writes = 0

    @property
    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.writes)

    async def collection(self) -> AsyncCollection:
        if self._col is None:
            self._col = await ensure_collection(self.store, self.table, dim_given=True)
        return self._col

    async def get(self, text: str) -> Vector | None:
        """The cached embedding of ``text``, or None (a miss: absent or expired)."""
        return (await self.get_many([text]))[0]

    async def get_many(self, texts: Sequence[str]) -> list[Vector | None]:
        items = check_texts(texts)
        col = await self.collection()
        keys = [cache_key(self.model, t) for t in items]
        found = {r.id: r for r in await col.get(keys)} if keys else {}
        now = self._clock()
        out: list[Vector | None] = []
        hits = 0
        for key in keys:
            record = found.get(key)
            expires = None if record is None else record.fields.get("expires_at")
            if record is None or (expires is not None and expires <= now):
                out.append(None)
            else:
                hits += 1
                out.append(record.vector)
        self.hits += hits
        self.misses += len(keys) - hits
        self.store.layer.instruments.cache(self.model, hits, len(keys) - hits)  # (metrics, when on)
        return out

    async def put(self, text: str, vector: Sequence[float] | Any) -> None:
        await self.put_many([text], [vector])

    async def put_many(self, texts: Sequence[str], vectors: Sequence[Sequence[float]] | Any) -> None:
        """Store embeddings (replacing older ones); every vector is checked before anything is written."""
        items = check_texts(texts)
        if len(items) != len(vectors):
            raise InvalidMediaInput(f"put_many() got {len(items)} texts but {len(vectors)} vectors")
        if any(v is None for v in vectors):
            raise InvalidMediaInput("put_many() got None for a vector; every cached text needs its embedding")
        col = await self.collection()
        now = self._clock()
        expires = None if self.ttl is None else now + self.ttl
        records = {cache_key(self.model, t): Record(cache_key(self.model, t), vectors[i], {
            "model": self.model, "text_hash": hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest(),
            "created_at": now, "expires_at": expires}) for i, t in enumerate(items)}
        await col.upsert(list(records.values()))
        self.writes += len(records)

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeddings of ``texts`` (a ``(len(texts), dim)`` float32 matrix): cached ones from the
        store, the others computed by the embedder and cached."""
        items = check_texts(texts)
        if self.embedder is None:
            raise InvalidInput("this cache has no embedder; construct it with embedder=... to compute misses")
        unique = list(dict.fromkeys(items))
        cached = dict(zip(unique, await self.get_many(unique), strict=True))
        todo = [t for t in unique if cached[t] is None]
        if todo:
            fresh = await aembed(self.embedder, todo)
            await self.put_many(todo, fresh)
            cached.update({t: fresh[i] for i, t in enumerate(todo)})
        out = np.empty((len(items), self.dim), dtype=np.float32)
        for i, t in enumerate(items):
            out[i] = cached[t]
        return out

    async def purge_expired(self) -> int:
        """Delete expired entries of this model; returns how many."""
        col = await self.collection()
        return await col.delete(where={"model": self.model, "expires_at": {"$lte": self._clock()}})

    async def clear(self) -> int:
        """Delete every entry of this model; returns how many."""
        return await (await self.collection()).delete(where={"model": self.model})


class EmbeddingCache:
    """Synchronous twin of :class:`AsyncEmbeddingCache` over a :class:`vectorstore.Store`."""

    def __init__(self, store: Store, embedder: Embedder | None = None, *, model: str | None = None,
                 dim: int | None = None, ttl: float | dt.timedelta | None = DEFAULT_TTL,
                 clock: Clock | None = None) -> None:
        self._store = store
        self.inner = AsyncEmbeddingCache(store.async_store, embedder, model=model, dim=dim, ttl=ttl, clock=clock)

    @property
    def stats(self) -> CacheStats:
        return self.inner.stats

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def dim(self) -> int:
        return self.inner.dim

    def get(self, text: str) -> Vector | None:
        return self._store.run(self.inner.get(text))

    def get_many(self, texts: Sequence[str]) -> list[Vector | None]:
        return self._store.run(self.inner.get_many(texts))

    def put(self, text: str, vector: Sequence[float] | Any) -> None:
        self._store.run(self.inner.put(text, vector))

    def put_many(self, texts: Sequence[str], vectors: Sequence[Sequence[float]] | Any) -> None:
        self._store.run(self.inner.put_many(texts, vectors))

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self._store.run(self.inner.embed(texts))

    def purge_expired(self) -> int:
        return self._store.run(self.inner.purge_expired())

    def clear(self) -> int:
        return self._store.run(self.inner.clear())
