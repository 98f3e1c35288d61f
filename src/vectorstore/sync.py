"""The sync facade: :func:`connect`, :class:`Store`, :class:`Collection`.

Same method names as the async API. Calls run on one background event loop
(a daemon thread shared by every sync store in the process), so the facade also
works where an event loop is already running (notebooks, async web apps).

Each calling thread gets its own :class:`contextvars.Context`; every call from
that thread runs in it. That is what lets ``with store.transaction():`` span
several separate calls: the backend keeps the open transaction in a context
variable, which lives on in the caller's context between calls.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from vectorstore.errors import TransactionConflict
from vectorstore.filters import Filter
from vectorstore.records import Hit, Record, RecordId
from vectorstore.resilience import ResilientBackend
from vectorstore.schema import HNSW, CollectionSpec, FieldType
from vectorstore.spi import Capabilities, Check, Health
from vectorstore.store import AsyncCollection, AsyncStore, check_retries, open_store, retry_delay, store_exists_async

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vectorstore-sync", daemon=True)
        self.thread.start()
        self._local = threading.local()

    def _context(self) -> contextvars.Context:
        ctx: contextvars.Context | None = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = contextvars.Context()
        return ctx

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("the sync vectorstore API was called from its own event loop; use the async API there")
        ctx = self._context()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()
        holder: list[asyncio.Task[T]] = []

        def start() -> None:
            task = self.loop.create_task(coro, context=ctx)
            holder.append(task)

            def done(t: asyncio.Task[T]) -> None:
                if t.cancelled():
                    result.cancel()
                elif (exc := t.exception()) is not None:
                    result.set_exception(exc)
                else:
                    result.set_result(t.result())

            task.add_done_callback(done)

        self.loop.call_soon_threadsafe(start)
        try:
            return result.result()
        except BaseException:
            if holder and not holder[0].done():
                self.loop.call_soon_threadsafe(holder[0].cancel)
            raise


_runner: _LoopThread | None = None
_runner_lock = threading.Lock()
_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()


def _loop() -> _LoopThread:
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = _LoopThread()
        return _runner


def _forget_after_fork() -> None:
    """In a forked child the parent's loop thread does not exist (fork copies only the calling
    thread): start afresh, or the child's first call would wait forever for that loop. Stores the
    parent opened are not usable in the child (their connections are the parent's); the child
    opens its own."""
    global _runner, _runner_lock
    _runner = None
    _runner_lock = threading.Lock()
    _open_stores.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


@atexit.register
def _close_all() -> None:
    for store in list(_open_stores):
        with contextlib.suppress(Exception):
            store.close()


@contextlib.contextmanager
def _sync_context(run: Callable[[Coroutine[Any, Any, Any]], Any],
                  manager: contextlib.AbstractAsyncContextManager[None]) -> Iterator[None]:
    """An async context manager of the async API, driven from sync code on the store's loop."""
    run(manager.__aenter__())
    try:
        yield
    except BaseException as exc:
        if not run(manager.__aexit__(type(exc), exc, exc.__traceback__)):
            raise
    else:
        run(manager.__aexit__(None, None, None))


async def _in_transaction(store: AsyncStore) -> bool:
    # Evaluated on the loop, in the calling thread's context, where the transaction lives.
    return store.in_transaction


def connect(url: str | None = None, **options: Any) -> Store:
    """Open a store synchronously; same URLs and options as :func:`vectorstore.open_store`."""
    runner = _loop()
    store = Store(runner.run(open_store(url, **options)), runner)
    _open_stores.add(store)
    return store


def store_exists(url: str | None = None, **options: Any) -> bool:
    """Whether a store already exists at ``url``, found out without creating or changing anything
    (opening a store creates it). Raises NotSupported for a backend that cannot tell. The async
    API's twin is :func:`vectorstore.store_exists_async`."""
    return _loop().run(store_exists_async(url, **options))


class Store:
    """Synchronous twin of :class:`~vectorstore.store.AsyncStore`."""

    def __init__(self, inner: AsyncStore, runner: _LoopThread | None = None) -> None:
        self._inner = inner
        self._run = (runner or _loop()).run
        self._closed = False

    @property
    def url(self) -> str:
        """The store's URL as it may be shown (password and secret options masked)."""
        return self._inner.url

    def __repr__(self) -> str:
        return "<Store" + repr(self._inner).removeprefix("<AsyncStore")

    @property
    def layer(self) -> ResilientBackend:
        """The cross-cutting layer every call of this store goes through (its policy, breaker)."""
        return self._inner.layer

    @property
    def capabilities(self) -> Capabilities:
        return self._inner.capabilities

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def async_store(self) -> AsyncStore:
        return self._inner

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine that uses :attr:`async_store` from sync code, on the store's event loop
        and in this thread's transaction context. The sync domain classes are built on it."""
        return self._run(coro)

    def create_collection(self, name: str, *, dim: int | None, metric: str = "cosine",
                          fields: Mapping[str, str | FieldType] | None = None, index: HNSW | None = None,
                          id_type: str | type = "text", exist_ok: bool = False) -> Collection:
        """See :meth:`AsyncStore.create_collection`; ``dim=None`` makes a collection without vectors."""
        inner = self._run(self._inner.create_collection(name, dim=dim, metric=metric, fields=fields, index=index,
                                                        id_type=id_type, exist_ok=exist_ok))
        return Collection(inner, self._run)

    def collection(self, name: str) -> Collection:
        return Collection(self._run(self._inner.collection(name)), self._run)

    def list_collections(self) -> list[CollectionSpec]:
        return self._run(self._inner.list_collections())

    def drop_collection(self, name: str) -> bool:
        return self._run(self._inner.drop_collection(name))

    def transaction(self, *, serializable: bool = False) -> contextlib.AbstractContextManager[None]:
        """``with store.transaction():`` — all or nothing, across collections (see
        :meth:`AsyncStore.transaction` for ``serializable``). Raises NotSupported at once (like the
        async API) when the backend has no transactions."""
        return _sync_context(self._run, self._inner.transaction(serializable=serializable))

    @property
    def in_transaction(self) -> bool:
        """Whether this thread is inside a transaction of this store."""
        return self._run(_in_transaction(self._inner))

    def run_transaction(self, work: Callable[[], T], *, serializable: bool = True, retries: int = 3,
                        base_delay: float = 0.02) -> T:
        """Sync twin of :meth:`AsyncStore.run_transaction`: ``work()`` (plain, not a coroutine) runs in
        one transaction, retried on TransactionConflict only when this call owns the transaction."""
        check_retries(retries)
        owner = not self.in_transaction
        attempt = 0
        while True:
            try:
                with self.transaction(serializable=serializable):
                    return work()
            except TransactionConflict:
                if not owner or attempt >= retries:
                    raise
                time.sleep(retry_delay(attempt, base_delay))
                attempt += 1

    def health(self) -> Health:
        return self._run(self._inner.health())

    def doctor(self) -> list[Check]:
        return self._run(self._inner.doctor())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._run(self._inner.aclose())
            _open_stores.discard(self)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Collection:
    """Synchronous twin of :class:`~vectorstore.store.AsyncCollection`."""

    def __init__(self, inner: AsyncCollection, run: Any) -> None:
        self._inner = inner
        self._run = run

    @property
    def spec(self) -> CollectionSpec:
        return self._inner.spec

    @property
    def name(self) -> str:
        return self._inner.name

    def __repr__(self) -> str:
        return f"<Collection {self.spec.name} dim={self.spec.dim} metric={self.spec.metric.value}>"

    def upsert(self, records: Iterable[Record | Mapping[str, Any]]) -> list[RecordId]:
        result: list[RecordId] = self._run(self._inner.upsert(records))
        return result

    def insert(self, records: Iterable[Record | Mapping[str, Any]]) -> list[RecordId]:
        result: list[RecordId] = self._run(self._inner.insert(records))
        return result

    def allocate_ids(self, n: int = 1, *, after: int = 0) -> list[int]:
        result: list[int] = self._run(self._inner.allocate_ids(n, after=after))
        return result

    def last_id(self) -> int:
        result: int = self._run(self._inner.last_id())
        return result

    def bulk_load(self) -> contextlib.AbstractContextManager[None]:
        """``with collection.bulk_load():`` around a large load: the backend may defer its vector index
        and build it once at the end (see :meth:`AsyncCollection.bulk_load`)."""
        return _sync_context(self._run, self._inner.bulk_load())

    def get(self, ids: Sequence[RecordId]) -> list[Record]:
        result: list[Record] = self._run(self._inner.get(ids))
        return result

    def delete(self, ids: Sequence[RecordId] | None = None, *, where: Mapping[str, Any] | Filter | None = None,
               all: bool = False) -> int:
        result: int = self._run(self._inner.delete(ids, where=where, all=all))
        return result

    def count(self, where: Mapping[str, Any] | Filter | None = None) -> int:
        result: int = self._run(self._inner.count(where))
        return result

    def search(self, vector: Sequence[float] | Any, k: int = 10, *,
               where: Mapping[str, Any] | Filter | None = None, threshold: float | None = None,
               ef_search: int | None = None, include_vector: bool = False) -> list[Hit]:
        result: list[Hit] = self._run(self._inner.search(vector, k, where=where, threshold=threshold,
                                                         ef_search=ef_search, include_vector=include_vector))
        return result

    def search_many(self, vectors: Sequence[Sequence[float]] | Any, k: int = 10, *,
                    where: Mapping[str, Any] | Filter | None = None, threshold: float | None = None,
                    ef_search: int | None = None, include_vector: bool = False) -> list[list[Hit]]:
        result: list[list[Hit]] = self._run(self._inner.search_many(
            vectors, k, where=where, threshold=threshold, ef_search=ef_search, include_vector=include_vector))
        return result

    def page(self, after: RecordId | None = None, limit: int = 1000, *,
             where: Mapping[str, Any] | Filter | None = None) -> list[Record]:
        result: list[Record] = self._run(self._inner.page(after, limit, where=where))
        return result

    def scan(self, batch_size: int = 1000, after: RecordId | None = None, *,
             where: Mapping[str, Any] | Filter | None = None) -> Iterator[Record]:
        """Every record (matching ``where``) ordered by id; resume by passing the last processed id
        as ``after``."""
        while True:
            records = self.page(after, batch_size, where=where)
            yield from records
            if len(records) < batch_size:
                return
            after = records[-1].id
