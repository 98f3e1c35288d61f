"""The cross-cutting layer: one wrapper around every backend (the SPI), so every backend gets the
same client-side deadlines, retries of transient failures, circuit breaker, and the same
instruments (metrics, logs) — none of it copied into a backend.

Backends classify their own errors (see :mod:`vectorstore.errors`): :class:`BackendUnavailable`
means the call did not take effect and may be run again; :class:`OutcomeUnknown` means a write was
sent and its acknowledgement lost. This layer decides what to do with them:

- every call runs under a deadline (``deadline``; by default the backend's own hint, derived from
  its statement timeout), scaled for large writes (one deadline per 1,000 records). A read past its
  deadline is :class:`DeadlineExceeded`; a write past it may have been sent: :class:`OutcomeUnknown`;
- a transient failure (BackendUnavailable) is retried ``retries`` times with exponential backoff
  and full jitter; an OutcomeUnknown only for idempotent writes (upsert, delete, drop); nothing
  inside a transaction is retried (only the whole transaction can be; see ``run_transaction``);
- ``breaker_failures`` transient failures in a row open the circuit: calls then fail at once with
  :class:`CircuitOpen` for ``breaker_reset`` seconds, then one call probes the database (the
  others keep failing fast) and closes the circuit when it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import tenacity

from vectorstore.config import parse_duration, parse_int
from vectorstore.errors import (
    BackendUnavailable,
    CircuitOpen,
    ConfigError,
    DeadlineExceeded,
    InvalidInput,
    OutcomeUnknown,
    StatementTimeout,
    TransactionConflict,
    VectorStoreError,
)
from vectorstore.filters import Filter
from vectorstore.instruments import Instruments
from vectorstore.records import BatchParts, Hit, Record, RecordBatch, RecordId, Vector
from vectorstore.schema import CollectionSpec
from vectorstore.spi import Backend, Capabilities, Check, Health, WritesInParts

T = TypeVar("T")

class Kind(enum.Enum):
    READ = "read"
    IDEMPOTENT = "idempotent write"  # running it twice leaves what running it once does
    ONCE = "write"  # insert, id allocation, DDL: never run again after an unknown outcome


@attrs.frozen(slots=True)
class Policy:
    """How the layer treats calls; from the store's options (:meth:`from_options`)."""

    deadline: float | None = None
    retries: int = 2
    retry_backoff: float = 0.05
    retry_backoff_max: float = 1.0
    breaker_failures: int = 5
    breaker_reset: float = 1.0
    slow_call: float | None = 1.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any], hint: float | None) -> Policy:
        raw = options.get("deadline", "auto")
        if isinstance(raw, str) and raw.strip().lower() == "auto":
            deadline = hint
        else:
            deadline = parse_duration(raw, "s", "deadline") or None
        slow = parse_duration(options.get("slow_call", 1.0), "s", "slow_call") or None
        backoff = parse_duration(options.get("retry_backoff", 0.05), "s", "retry_backoff")
        backoff_max = parse_duration(options.get("retry_backoff_max", 1.0), "s", "retry_backoff_max")
        if backoff_max < backoff:
            raise ConfigError(f"retry_backoff_max ({backoff_max:g}s) must not be below retry_backoff ({backoff:g}s)")
        return cls(deadline=deadline, retries=parse_int(options.get("retries", 2), "retries", 0, 100),
                   retry_backoff=backoff, retry_backoff_max=backoff_max,
                   breaker_failures=parse_int(options.get("breaker_failures", 5), "breaker_failures", 0, 1_000_000),
                   breaker_reset=parse_duration(options.get("breaker_reset", 1.0), "s", "breaker_reset"),
                   slow_call=slow)

    def deadline_for(self, rows: int) -> float | None:
        """The deadline of a call touching ``rows`` records: one deadline per 1,000."""
        if self.deadline is None:
            return None
        return self.deadline * max(1, math.ceil(rows / 1000))

    def describe(self) -> str:
        deadline = "none" if self.deadline is None else f"{self.deadline:g}s per 1,000 records"
        breaker = ("never opens" if not self.breaker_failures else
                   f"opens after {self.breaker_failures} transient failures in a row, probes after "
                   f"{self.breaker_reset:g}s")
        return (f"deadline {deadline}; retries {self.retries} (backoff {self.retry_backoff:g}s doubling to "
                f"{self.retry_backoff_max:g}s, full jitter); circuit breaker {breaker}")


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Breaker:
    """A circuit breaker: closed, open (fail fast) after ``failures`` transient failures in a row,
    half-open (one probe call) ``reset`` seconds later. Not thread-safe: one event loop uses it."""

    def __init__(self, failures: int, reset: float, on_change: Callable[[BreakerState], None]) -> None:
        self.threshold = failures
        self.reset = reset
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._probing = False
        self._on_change = on_change

    def _move(self, state: BreakerState) -> None:
        if state is not self.state:
            self.state = state
            self._on_change(state)

    def before(self, backend: str) -> bool:
        """Before a call: raise CircuitOpen while open; True when this call is the probe."""
        if self.state is BreakerState.CLOSED:
            return False
        waited = time.monotonic() - self.opened_at
        if self.state is BreakerState.OPEN and waited >= self.reset:
            self._move(BreakerState.HALF_OPEN)
        if self.state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        left = max(0.0, self.reset - waited)
        raise CircuitOpen(
            f"the {backend} database did not answer the last {self.failures} calls, so calls fail at once "
            f"for now; the next try reaches it in {left:.1f}s. Retry then, or check the server "
            "(`vectorstore doctor`); the breaker_failures and breaker_reset options tune this")

    def success(self, probe: bool) -> None:
        self.failures = 0
        if probe:
            self._probing = False
        self._move(BreakerState.CLOSED)

    def failure(self, probe: bool) -> None:
        self.failures += 1
        if probe:
            self._probing = False
        if self.threshold and (probe or self.failures >= self.threshold):
            self.opened_at = time.monotonic()
            self._move(BreakerState.OPEN)

    def answered(self) -> None:
        """The database answered a check made outside the calls (a health check): once the
        circuit's reset time has passed, that is a probe that succeeded, and closes it."""
        if self.state is not BreakerState.CLOSED and time.monotonic() - self.opened_at >= self.reset:
            self.failures = 0
            self._move(BreakerState.CLOSED)

    def abandon(self, probe: bool) -> None:
        """The probe ended without telling (cancelled, or an error that is not the database's)."""
        if probe:
            self._probing = False


def _transient(exc: BaseException) -> bool:
    """A failure that says the database may be unreachable: it is retried, and it counts
    towards opening the breaker. A statement timeout is an answer (the server is up, the
    statement was slow) and a refusal by the open breaker is no new evidence."""
    return isinstance(exc, BackendUnavailable) and not isinstance(exc, (CircuitOpen, StatementTimeout))


class ResilientBackend:
    """A :class:`~vectorstore.spi.Backend` wrapping another (``inner``) with a :class:`Policy`
    and :class:`~vectorstore.instruments.Instruments`. The store calls this; ``inner`` is the
    plugin's object."""

    def __init__(self, inner: Backend, policy: Policy, instruments: Instruments) -> None:
        self.inner = inner
        self.name = inner.name
        self.capabilities: Capabilities = inner.capabilities
        self.policy = policy
        self.instruments = instruments
        self.breaker = Breaker(policy.breaker_failures, policy.breaker_reset,
                               lambda state: instruments.breaker(inner.name, state.value))
        instruments.breaker(inner.name, BreakerState.CLOSED.value)

    # -- the one path every call takes ------------------------------------------------------

    async def _call(self, operation: str, collection: str | None, kind: Kind, make: Callable[[], Awaitable[T]],
                    rows: int = 1) -> T:
        in_txn = self.inner.in_transaction()
        attempts = 1 if in_txn else 1 + self.policy.retries

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, OutcomeUnknown):
                return kind is Kind.IDEMPOTENT
            return _transient(exc)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            self.instruments.retry(operation, collection, self.name, type(exc).__name__, state.attempt_number,
                                   state.next_action.sleep if state.next_action else 0.0)

        budget = self.policy.deadline_for(rows)
        loop = asyncio.get_running_loop()
        end = None if budget is None else loop.time() + budget  # (the whole call, retries included)
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(budget or float("inf")),
            wait=tenacity.wait_random_exponential(multiplier=self.policy.retry_backoff,
                                                  max=self.policy.retry_backoff_max),
            retry=tenacity.retry_if_exception(retryable), reraise=True, before_sleep=before_sleep)
        start = time.perf_counter()
        try:
            with self.instruments.span(operation, collection, self.name):
                result: T = await retrying(self._attempt, operation, collection, kind, make, end, budget, in_txn)
        except BaseException as exc:
            self.instruments.call(operation, collection, self.name, _outcome(exc), time.perf_counter() - start, rows)
            raise
        self.instruments.call(operation, collection, self.name, "ok", time.perf_counter() - start, rows)
        slow = self.policy.slow_call
        if slow is not None and time.perf_counter() - start >= slow * max(1, math.ceil(rows / 1000)):
            self.instruments.slow(operation, collection, self.name, time.perf_counter() - start, rows)
        return result

    async def _attempt(self, operation: str, collection: str | None, kind: Kind, make: Callable[[], Awaitable[T]],
                       end: float | None, budget: float | None, in_txn: bool) -> T:
        probe = False if in_txn else self.breaker.before(self.name)
        try:
            result = await _within(make, end)
        except TimeoutError:
            error = self._late(operation, collection, kind, budget)
            self.breaker.failure(probe)
            raise error from None
        except (BackendUnavailable, OutcomeUnknown) as exc:
            if _transient(exc) or isinstance(exc, OutcomeUnknown):
                self.breaker.failure(probe)
            else:
                self.breaker.abandon(probe)
            raise
        except BaseException:
            # Bad input, a conflict, a missing collection: the database answered.
            self.breaker.success(probe)
            raise
        self.breaker.success(probe)
        return result

    def _late(self, operation: str, collection: str | None, kind: Kind, deadline: float | None) -> Exception:
        where = f" on {collection!r}" if collection else ""
        if kind is Kind.READ:
            return DeadlineExceeded(
                f"{operation}{where} got no answer from the {self.name} database within its deadline "
                f"({deadline:g}s) and was abandoned; nothing was changed. Retry; if the database is slow rather "
                "than unreachable, raise the deadline option (e.g. ?deadline=30s)")
        return OutcomeUnknown(
            f"{operation}{where} was sent to the {self.name} database but no answer came within its deadline "
            f"({deadline:g}s): it may or may not have been written. Check with get() before running it again "
            "(an upsert may simply be repeated); raise the deadline option if the database is slow", operation)

    # -- the SPI ------------------------------------------------------------------------------

    async def create_collection(self, spec: CollectionSpec) -> None:
        await self._call("create_collection", spec.name, Kind.ONCE, lambda: self.inner.create_collection(spec))

    async def get_collection(self, name: str) -> CollectionSpec:
        return await self._call("get_collection", name, Kind.READ, lambda: self.inner.get_collection(name))

    async def list_collections(self) -> list[CollectionSpec]:
        return await self._call("list_collections", None, Kind.READ, self.inner.list_collections)

    async def drop_collection(self, name: str) -> bool:
        return await self._call("drop_collection", name, Kind.IDEMPOTENT, lambda: self.inner.drop_collection(name))

    async def upsert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        await self._call("upsert", spec.name, Kind.IDEMPOTENT, lambda: self.inner.upsert(spec, batch), len(batch))

    async def insert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        await self._call("insert", spec.name, Kind.ONCE, lambda: self.inner.insert(spec, batch), len(batch))

    async def write_parts(self, spec: CollectionSpec, parts: BatchParts, *, replace: bool) -> None:
        inner = self.inner
        assert isinstance(inner, WritesInParts)
        # Parts are validated as they are read: a second attempt could not read them again.
        await self._call("upsert" if replace else "insert", spec.name, Kind.ONCE,
                         lambda: inner.write_parts(spec, parts, replace=replace), len(parts.ids))

    async def get(self, spec: CollectionSpec, ids: Sequence[RecordId]) -> list[Record]:
        return await self._call("get", spec.name, Kind.READ, lambda: self.inner.get(spec, ids), len(ids))

    async def delete(self, spec: CollectionSpec, ids: Sequence[RecordId] | None, where: Filter | None) -> int:
        return await self._call("delete", spec.name, Kind.IDEMPOTENT, lambda: self.inner.delete(spec, ids, where),
                                len(ids) if ids is not None else 1)

    async def count(self, spec: CollectionSpec, where: Filter) -> int:
        return await self._call("count", spec.name, Kind.READ, lambda: self.inner.count(spec, where))

    async def search(self, spec: CollectionSpec, queries: Vector, k: int, where: Filter,
                     max_distance: float | None, ef_search: int | None, include_vector: bool) -> list[list[Hit]]:
        return await self._call(
            "search", spec.name, Kind.READ,
            lambda: self.inner.search(spec, queries, k, where, max_distance, ef_search, include_vector), len(queries))

    async def allocate_ids(self, spec: CollectionSpec, n: int, after: int) -> list[int]:
        return await self._call("allocate_ids", spec.name, Kind.ONCE, lambda: self.inner.allocate_ids(spec, n, after))

    async def page(self, spec: CollectionSpec, after: RecordId | None, limit: int, where: Filter) -> list[Record]:
        return await self._call("page", spec.name, Kind.READ, lambda: self.inner.page(spec, after, limit, where), limit)

    async def last_id(self, spec: CollectionSpec) -> int:
        return await self._call("last_id", spec.name, Kind.READ, lambda: self.inner.last_id(spec))

    @contextlib.asynccontextmanager
    async def bulk_load(self, spec: CollectionSpec) -> AsyncIterator[None]:
        manager = self.inner.bulk_load(spec)
        await manager.__aenter__()
        try:
            yield
        except BaseException as exc:
            start = time.perf_counter()
            if not await manager.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            start = time.perf_counter()
            await manager.__aexit__(None, None, None)
        # The end of a bulk load builds what it deferred (PostgreSQL: HNSW and field indexes).
        self.instruments.index_build(spec.name, self.name, time.perf_counter() - start)

    @contextlib.asynccontextmanager
    async def transaction(self, serializable: bool = False) -> AsyncIterator[None]:
        async with self._transaction(serializable):
            yield

    @contextlib.asynccontextmanager
    async def _transaction(self, serializable: bool) -> AsyncIterator[None]:
        if not self.inner.in_transaction():
            self.breaker.before(self.name)  # (a transaction is not a probe: it waits for one)
        manager = self.inner.transaction(serializable=True) if serializable else self.inner.transaction()
        async with manager:
            yield

    def in_transaction(self) -> bool:
        return self.inner.in_transaction()

    async def health(self) -> Health:
        # Not through the breaker: health() is how an operator sees whether the database is back;
        # a healthy answer after the reset time is a probe that succeeded, so it closes an open
        # circuit (a service that only answers health checks must not stay "unavailable" for
        # good). Within the deadline.
        budget = self.policy.deadline_for(1)
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        try:
            health = await _within(self.inner.health, None if budget is None else loop.time() + budget)
        except TimeoutError:
            health = Health(ok=False, backend=self.name, latency_ms=(time.perf_counter() - start) * 1000,
                            details={"error": f"the {self.name} database gave no answer within the deadline "
                                              f"({budget:g}s)"})
        if health.ok:
            self.breaker.answered()
        details = {**health.details, "breaker": self.breaker.state.value,
                   "consecutive_failures": self.breaker.failures}
        return Health(ok=health.ok, backend=health.backend, latency_ms=health.latency_ms, details=details)

    async def doctor(self) -> list[Check]:
        checks = await self.inner.doctor()
        state = self.breaker.state
        return [*checks, Check("resilience", True, self.policy.describe()),
                Check("circuit breaker", state is BreakerState.CLOSED or None,
                      f"{state.value} after {self.breaker.failures} transient failure(s) in a row",
                      "" if state is BreakerState.CLOSED else "the database stopped answering; see the checks above")]

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        # Optional protocols (Benchmarkable...) and backend-specific attributes reach the plugin's
        # object; the SPI methods above are the only ones the layer wraps.
        return getattr(self.inner, name)


#: How long a call the caller cancelled may take to clean up before the caller gets control back.
CANCEL_GRACE = 1.0


async def _within(make: Callable[[], Awaitable[T]], end: float | None) -> T:
    """``await make()``, given up at loop time ``end`` (TimeoutError). The call runs as a task that
    is abandoned, not awaited, at the deadline: a driver may take long to clean up a cancelled
    call (psycopg waits up to 10 s for the server to acknowledge a cancel request, which a dead
    network never does), and that must not hold the caller. The task finishes in the background."""
    if end is None:
        return await make()
    loop = asyncio.get_running_loop()
    left = end - loop.time()
    if left <= 0:
        raise TimeoutError
    task = loop.create_task(_run(make))  # (copies the caller's context: its transaction, if any)
    try:
        done, _ = await asyncio.wait({task}, timeout=left)
    except asyncio.CancelledError:
        # The caller gave up (its own timeout, a client gone): the call is cancelled, and given a
        # moment to clean up as it would inline (a driver cancels the statement on the server),
        # but no more: a call stuck on a dead network is left to finish in the background.
        task.cancel()
        task.add_done_callback(_forget)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task}, timeout=CANCEL_GRACE)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_forget)
        raise TimeoutError
    return task.result()


async def _run(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _forget(task: asyncio.Task[Any]) -> None:
    """Consume an abandoned call's outcome (asyncio would log it as never retrieved)."""
    if not task.cancelled():
        task.exception()


#: The ``outcome`` label of a failed call (metrics, logs), by error class: the first that matches.
_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (CircuitOpen, "circuit_open"), (DeadlineExceeded, "deadline"), (OutcomeUnknown, "outcome_unknown"),
    (StatementTimeout, "statement_timeout"), (BackendUnavailable, "unavailable"), (InvalidInput, "bad_input"),
    (TransactionConflict, "conflict"),
)


def _outcome(exc: BaseException) -> str:
    """The ``outcome`` label of a failed call (metrics, logs)."""
    for kind, label in _OUTCOMES:
        if isinstance(exc, kind):
            return label
    return type(exc).__name__ if isinstance(exc, VectorStoreError) else "error"
