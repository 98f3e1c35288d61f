"""The async API: :func:`open_store`, :class:`AsyncStore`, :class:`AsyncCollection`.

Validation lives here, once, for every backend: names, records, vectors,
filters, ``k``, thresholds. Backends only see validated input.
"""

from __future__ import annotations

import asyncio
import contextlib
import numbers
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from vectorstore import registry
from vectorstore.config import display_url, parse_bool, redact, resolve
from vectorstore.errors import (
    CollectionExists,
    InvalidFilter,
    InvalidInput,
    InvalidName,
    NotSupported,
    StoreClosed,
    TransactionConflict,
    TransactionError,
)
from vectorstore.filters import Filter, MatchAll, parse_filter
from vectorstore.instruments import Instruments
from vectorstore.records import (
    BatchParts,
    Hit,
    Record,
    RecordId,
    batch_ids,
    check_ids,
    coerce_vector,
    coerce_vectors,
    prepare_batch,
)
from vectorstore.resilience import Policy, ResilientBackend
from vectorstore.schema import HNSW, SYSTEM_COLUMNS, CollectionSpec, FieldType, IdType, check_name
from vectorstore.spi import PARTS_ABOVE, Backend, Capabilities, Check, Health, WritesInParts

MAX_K = 10_000
T = TypeVar("T")


async def store_exists_async(url: str | None = None, **options: Any) -> bool:
    """Whether a store already exists at ``url``, found out without creating or changing anything
    (opening a store creates it). Raises NotSupported for a backend that cannot tell. The sync
    API's twin is :func:`vectorstore.store_exists`."""
    config = resolve(url, options)
    spec = registry.backend_for_scheme(config.scheme)
    config = spec.bind(config)
    if spec.exists is None:
        raise NotSupported(f"the {spec.name} backend cannot tell whether a store exists without opening it")
    return await spec.exists(config)


async def open_store(url: str | None = None, **options: Any) -> AsyncStore:
    """Open a store by URL (see :mod:`vectorstore.config` for the defaults)."""
    config = resolve(url, options)
    spec = registry.backend_for_scheme(config.scheme)
    bound = spec.bind(config)
    backend = await spec.factory(bound)
    try:
        policy = Policy.from_options(bound.options, getattr(backend, "deadline_hint", None))
        instruments = _instruments(backend, bound.options, config.url)
    except BaseException:
        await backend.aclose()
        raise
    return AsyncStore(ResilientBackend(backend, policy, instruments), url=config.url)


def _instruments(backend: Backend, options: Mapping[str, Any], url: str) -> Instruments:
    recorder = tracer = None
    if parse_bool(options.get("metrics", False), "metrics"):
        from vectorstore.metrics import PrometheusRecorder

        recorder = PrometheusRecorder(backend.name, getattr(backend, "pool_stats", None), display_url(url))
    if parse_bool(options.get("tracing", False), "tracing"):
        from vectorstore.instruments import tracer as make_tracer

        tracer = make_tracer()
    return Instruments(recorder, tracer)


class AsyncStore:
    """A store: a set of named collections on one backend.

    ``url`` is the store's URL as it may be shown: its password, and any secret option, masked
    (:func:`vectorstore.config.redact`). Neither it nor the ``repr`` holds a secret."""

    def __init__(self, backend: Backend, url: str = "") -> None:
        # Every call goes through the cross-cutting layer (deadlines, retries, breaker, instruments).
        self._layer = backend if isinstance(backend, ResilientBackend) else ResilientBackend(
            backend, Policy(), Instruments())
        self._closed = False
        self.url = redact(url)

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<AsyncStore {self.url or '(no URL)'} backend={self._layer.name}{state}>"

    @property
    def backend(self) -> Backend:
        """The backend plugin's own object (calls on it bypass the cross-cutting layer)."""
        return self._backend.inner

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def layer(self) -> ResilientBackend:
        """The cross-cutting layer every call of this store goes through (its policy, breaker)."""
        return self._backend

    @property
    def _backend(self) -> ResilientBackend:
        if self._closed:
            raise StoreClosed(f"the store {self.url} is closed; open it again with connect() / open_store()")
        return self._layer

    @property
    def capabilities(self) -> Capabilities:
        return self._layer.capabilities

    async def create_collection(
        self,
        name: str,
        *,
        dim: int | None,
        metric: str = "cosine",
        fields: Mapping[str, str | FieldType] | None = None,
        index: HNSW | None = None,
        id_type: str | type = "text",
        exist_ok: bool = False,
    ) -> AsyncCollection:
        """Create a collection. With ``exist_ok=True`` an identical existing one is returned;
        a different definition under the same name always raises CollectionExists.

        ``dim=None`` makes a collection without vectors: records of ids, fields and metadata only,
        read, filtered, counted, paged and deleted as usual; a record's vector must be left out or
        None, and :meth:`AsyncCollection.search` raises InvalidInput. It has no metric or index:
        leave ``metric`` and ``index`` out (InvalidSchema otherwise)."""
        spec = CollectionSpec(name=name, dim=dim, metric=metric, fields=fields or {},
                              index=index or HNSW(), id_type=id_type)
        check_portable_fields(spec)
        try:
            await self._backend.create_collection(spec)
        except CollectionExists:
            existing = await self._backend.get_collection(spec.name)
            if existing != spec:
                raise CollectionExists(
                    f"collection {name!r} already exists with a different definition "
                    f"({existing.to_dict()}); drop it first or open it with store.collection({name!r})"
                ) from None
            if not exist_ok:
                raise CollectionExists(
                    f"collection {name!r} already exists; open it with store.collection({name!r}) "
                    "or pass exist_ok=True"
                ) from None
            spec = existing
        return AsyncCollection(self, spec)

    async def collection(self, name: str) -> AsyncCollection:
        """Open an existing collection (CollectionNotFound if there is none)."""
        check_name(name)
        return AsyncCollection(self, await self._backend.get_collection(name))

    async def list_collections(self) -> list[CollectionSpec]:
        return await self._backend.list_collections()

    async def drop_collection(self, name: str) -> bool:
        """Drop a collection and its records; False if it did not exist."""
        check_name(name)
        return await self._backend.drop_collection(name)

    def transaction(self, *, serializable: bool = False) -> contextlib.AbstractAsyncContextManager[None]:
        """``async with store.transaction():`` — all or nothing, across collections.

        With ``serializable=True`` the transaction behaves as if it ran alone (read-modify-write is
        safe); when it loses a race it raises :class:`~vectorstore.errors.TransactionConflict`
        having written nothing, and should be run again. Applies to the outermost transaction."""
        backend = self._backend
        if not backend.capabilities.transactions:
            raise NotSupported(
                f"the {backend.name} backend does not support transactions; "
                "use a backend that does (sqlite, postgresql, memory)"
            )
        return backend.transaction(serializable=True) if serializable else backend.transaction()

    @property
    def in_transaction(self) -> bool:
        """Whether the calling task (or, on the sync store, thread) is inside a transaction."""
        return self._backend.in_transaction()

    async def run_transaction(self, work: Callable[[], Awaitable[T]], *, serializable: bool = True,
                              retries: int = 3, base_delay: float = 0.02) -> T:
        """Run ``await work()`` in one transaction and return its result.

        When the transaction loses a race (:class:`~vectorstore.errors.TransactionConflict`) and this
        call owns it, everything is rolled back and ``work`` runs again after ``base_delay * 2**n``
        seconds (times a random factor in [0.5, 1.5)), at most ``retries`` times; then the conflict
        propagates. Inside an enclosing transaction ``work`` runs as a savepoint and a conflict goes
        straight to the enclosing transaction's owner: only a whole transaction can be retried.
        """
        check_retries(retries)
        owner = not self.in_transaction
        attempt = 0
        while True:
            try:
                async with self.transaction(serializable=serializable):
                    return await work()
            except TransactionConflict:
                if not owner or attempt >= retries:
                    raise
                await asyncio.sleep(retry_delay(attempt, base_delay))
                attempt += 1

    async def health(self) -> Health:
        return await self._backend.health()

    async def doctor(self) -> list[Check]:
        return await self._backend.doctor()

    async def aclose(self) -> None:
        """Close the store (idempotent); later calls raise StoreClosed."""
        if not self._closed:
            self._closed = True
            await self._layer.aclose()

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def check_portable_fields(spec: CollectionSpec) -> None:
    """A new collection's fields must work on every backend, so the store can move: names that
    are system columns of PostgreSQL (or aliases of SQLite's rowid) are refused everywhere.
    (Collections created before this rule keep loading.)"""
    taken = sorted(set(spec.fields) & SYSTEM_COLUMNS)
    if taken:
        raise InvalidName(
            f"field name(s) {', '.join(map(repr, taken))} are system column names of a backend (PostgreSQL: "
            "xmin, xmax, cmin, cmax, ctid, tableoid; SQLite: rowid, oid), so the collection could not move "
            "between backends; choose other names (e.g. 'x_min')")


def check_retries(retries: object) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidInput(f"retries must be a non-negative integer, got {retries!r}")


def retry_delay(attempt: int, base_delay: float) -> float:
    """Exponential backoff with jitter: ``base_delay * 2**attempt`` times a factor in [0.5, 1.5)."""
    delay: float = base_delay * 2**attempt * random.uniform(0.5, 1.5)
    return delay


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be True or False, got {value!r}")
    return value


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= int(k) <= MAX_K:
        raise InvalidInput(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return int(k)


def _check_positive(value: object, name: str, high: int = 100_000) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= int(value) <= high:
        raise InvalidInput(f"{name} must be an integer from 1 to {high}, got {value!r}")
    return int(value)


class AsyncCollection:
    """Records of one collection. Obtain it from :meth:`AsyncStore.create_collection`
    or :meth:`AsyncStore.collection`."""

    def __init__(self, store: AsyncStore, spec: CollectionSpec) -> None:
        self._store = store
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def _backend(self) -> ResilientBackend:
        return self._store._backend

    def __repr__(self) -> str:
        return f"<AsyncCollection {self.spec.name} dim={self.spec.dim} metric={self.spec.metric.value}>"

    def _filter(self, where: object) -> Filter:
        return parse_filter(where, self.spec)

    async def upsert(self, records: Iterable[Record | Mapping[str, Any]]) -> list[RecordId]:
        """Insert or replace records; returns their ids. Records without an id get a new one
        (a UUID for text ids; the next allocated id for int ids)."""
        return await self._write(records, replace=True)

    async def insert(self, records: Iterable[Record | Mapping[str, Any]]) -> list[RecordId]:
        """Insert records; if any id exists already, raise DuplicateId and write nothing.
        Records without an id get a new one, as for :meth:`upsert`."""
        return await self._write(records, replace=False)

    async def _write(self, records: Iterable[Record | Mapping[str, Any]], *, replace: bool) -> list[RecordId]:
        backend = self._backend
        if isinstance(records, list) and len(records) >= PARTS_ABOVE and isinstance(backend.inner, WritesInParts):
            # A large write the backend streams, validated part by part as it goes (see BatchParts).
            ids = batch_ids(self.spec, records)
            if ids is not None:
                await backend.write_parts(self.spec, BatchParts(self.spec, ids, records), replace=replace)
                return ids
        batch = prepare_batch(self.spec, records, allocate=True)
        if not len(batch):
            return []
        if batch.missing_ids:
            # One transaction, so a failed write does not burn the allocated ids.
            async with contextlib.AsyncExitStack() as stack:
                if backend.capabilities.transactions:
                    await stack.enter_async_context(backend.transaction())
                # Above the batch's own explicit ids too: they are not stored yet, and an allocated id
                # equal to one of them would make two records of the batch one.
                given = max((rid for rid in batch.ids if isinstance(rid, int)), default=0)
                batch = batch.with_allocated_ids(await backend.allocate_ids(self.spec, batch.missing_ids, given))
                await (backend.upsert if replace else backend.insert)(self.spec, batch)
        else:
            await (backend.upsert if replace else backend.insert)(self.spec, batch)
        return list(batch.ids)

    async def allocate_ids(self, n: int = 1, *, after: int = 0) -> list[int]:
        """Reserve ``n`` new ids of an int-id collection (never handed out again), each above every
        existing id, every id allocated before and ``after``. ``allocate_ids(0, after=x)`` only moves
        the sequence past ``x`` (the migration tool uses it to carry AgentDB's ``sqlite_sequence``)."""
        if self.spec.id_type is not IdType.INT:
            raise InvalidInput(f"collection {self.name!r} has text ids, which are generated as UUIDs; "
                               "allocate_ids() is for int-id collections")
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 0 <= int(n) <= 1_000_000:
            raise InvalidInput(f"n must be an integer from 0 to 1000000, got {n!r}")
        if isinstance(after, bool) or not isinstance(after, numbers.Integral) or not 0 <= int(after) < 2**63 - 1:
            raise InvalidInput(f"after must be a non-negative 64-bit integer, got {after!r}")
        return await self._backend.allocate_ids(self.spec, int(n), int(after))

    async def last_id(self) -> int:
        """Where the id sequence of an int-id collection stands: the greatest id allocated or
        stored so far (0 if none). Read only; the next allocated id is above it. Copy it to another
        store with ``allocate_ids(0, after=...)``."""
        if self.spec.id_type is not IdType.INT:
            raise InvalidInput(f"collection {self.name!r} has text ids, which have no sequence; "
                               "last_id() is for int-id collections")
        last_id = getattr(self._backend, "last_id", None)
        if last_id is None:
            raise NotSupported(f"the {self._backend.name} backend does not report id sequences (last_id); "
                               "upgrade its plugin")
        result: int = await last_id(self.spec)
        return result

    def bulk_load(self) -> contextlib.AbstractAsyncContextManager[None]:
        """``async with collection.bulk_load():`` around a large load (many batches): writes inside
        go as usual (each its own transaction, or one you open inside the block), but the backend may
        defer its vector index and build it once when the block ends: on PostgreSQL the HNSW index is
        dropped at the start and built (and the table analysed) at the end, many times faster than
        maintaining it row by row. Reads and searches stay correct throughout (exact while there is
        no index).

        The block must not be entered inside a transaction (TransactionError). Nested and
        concurrent bulk loads of one collection are safe: the last to end builds the index. The
        index is built also when the block ends by an exception; if the process dies inside, the
        collection is marked as missing its index, ``doctor()`` reports it, and the next
        ``bulk_load()`` of it to end builds it (an empty block is the repair). On memory and SQLite
        it changes nothing."""
        return self._bulk_load()

    @contextlib.asynccontextmanager
    async def _bulk_load(self) -> AsyncIterator[None]:
        backend = self._backend
        if backend.in_transaction():
            raise TransactionError(
                f"bulk_load() of {self.name!r} was entered inside a transaction; a bulk load changes the "
                "collection's index in transactions of its own. Enter bulk_load() first and open "
                "transactions inside the block")
        manager = getattr(backend, "bulk_load", None)
        if manager is None:  # a plugin written before the bulk-load contract: nothing to defer
            yield
            return
        async with manager(self.spec):
            yield

    async def get(self, ids: Sequence[RecordId]) -> list[Record]:
        """Records for the ids that exist, in the order asked, each once."""
        checked = list(dict.fromkeys(check_ids(ids, self.spec)))
        if not checked:
            return []
        return await self._backend.get(self.spec, checked)

    async def delete(self, ids: Sequence[RecordId] | None = None, *, where: object = None,
                     all: bool = False) -> int:
        """Delete by ids, by filter, or everything with ``all=True``; returns the number deleted.

        An empty filter never deletes everything by accident: ``where={}`` raises.
        """
        given = sum(x for x in (ids is not None, where is not None, all))
        if given != 1:
            raise InvalidInput("delete() takes exactly one of ids=[...], where={...} or all=True")
        if ids is not None:
            checked = list(dict.fromkeys(check_ids(ids, self.spec)))
            return await self._backend.delete(self.spec, checked, None) if checked else 0
        if all:
            return await self._backend.delete(self.spec, None, MatchAll())
        node = self._filter(where)
        if isinstance(node, MatchAll):
            raise InvalidFilter("delete(where={}) would delete every record; pass all=True if that is what you mean")
        return await self._backend.delete(self.spec, None, node)

    async def count(self, where: object = None) -> int:
        return await self._backend.count(self.spec, self._filter(where))

    async def search(self, vector: Sequence[float] | Any, k: int = 10, *, where: object = None,
                     threshold: float | None = None, ef_search: int | None = None,
                     include_vector: bool = False) -> list[Hit]:
        """The ``k`` nearest records, nearest first (ties by id); ``threshold`` is a minimum similarity.
        A collection without vectors (``dim=None``) cannot be searched: InvalidInput."""
        dim = self._searchable_dim("search")
        query = coerce_vector(vector, dim, self.spec.metric, "query vector")
        hits = await self._search(query[None, :], k, where, threshold, ef_search, include_vector)
        return hits[0]

    async def search_many(self, vectors: Sequence[Sequence[float]] | Any, k: int = 10, *, where: object = None,
                          threshold: float | None = None, ef_search: int | None = None,
                          include_vector: bool = False) -> list[list[Hit]]:
        """:meth:`search` for several query vectors at once; one hit list per query, in order."""
        dim = self._searchable_dim("search_many")
        if isinstance(vectors, (str, bytes, Mapping)) or not hasattr(vectors, "__len__") or len(vectors) == 0:
            raise InvalidInput("search_many() needs a non-empty list of query vectors")
        labels = [f"query vectors[{i}]" for i in range(len(vectors))]
        queries = coerce_vectors(vectors, dim, self.spec.metric, labels)
        return await self._search(queries, k, where, threshold, ef_search, include_vector)

    def _searchable_dim(self, method: str) -> int:
        """The collection's dimension; InvalidInput for a collection without vectors."""
        if self.spec.dim is None:
            raise InvalidInput(
                f"collection {self.name!r} has no vectors (it was created with dim=None), so {method}() has nothing "
                "to compare; read its records with scan(where=...), page(), get(ids) or count(where=...) instead")
        return self.spec.dim

    async def _search(self, queries: Any, k: int, where: object, threshold: float | None,
                      ef_search: int | None, include_vector: bool) -> list[list[Hit]]:
        k = _check_k(k)
        max_distance = None
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or threshold != threshold:
                raise InvalidInput(f"threshold must be a number (a minimum similarity), got {threshold!r}")
            max_distance = self.spec.metric.max_distance(float(threshold))
        if ef_search is not None:
            ef_search = _check_positive(ef_search, "ef_search", 10_000)
        return await self._backend.search(self.spec, queries, k, self._filter(where), max_distance,
                                          ef_search, _check_bool(include_vector, "include_vector"))

    async def page(self, after: RecordId | None = None, limit: int = 1000, *, where: object = None) -> list[Record]:
        """Up to ``limit`` records with id greater than ``after`` (and matching ``where``), ordered by id."""
        if after is not None:
            after = check_ids([after], self.spec)[0]
        return await self._backend.page(self.spec, after, _check_positive(limit, "limit"), self._filter(where))

    async def scan(self, batch_size: int = 1000, after: RecordId | None = None, *,
                   where: object = None) -> AsyncIterator[Record]:
        """Every record (matching ``where``) ordered by id, read ``batch_size`` at a time. To resume
        an interrupted scan, pass the last id you processed as ``after``."""
        batch_size = _check_positive(batch_size, "batch_size")
        node = self._filter(where)
        while True:
            records = await self.page(after, batch_size, where=node)
            for record in records:
                yield record
            if len(records) < batch_size:
                return
            after = records[-1].id
