"""Connections to the server: the pool and its policy, the transaction a task holds, and what a
driver error means. Every statement an open backend sends goes through :class:`Connections`
(only :mod:`~vectorstore_postgres.opening`, with the same error translation, and
:mod:`~vectorstore_postgres.bench` connect on their own), so this module is the one place for how
connections are opened, held and handed back, and for how their failures become vectorstore's
typed errors.

- **The pool.** An ``AsyncConnectionPool`` of autocommit connections
  (:class:`~vectorstore_postgres.connection.PooledConnection`), sized by ``pool_min`` /
  ``pool_max``. Each is prepared by :meth:`Connections.configure`: the
  ``vectorstore_prepare_connection`` hook (pgvector's binary adapters, JSON codecs) with no round
  trip, then one statement setting the session defaults of searches. A single read is one round
  trip; writes and searches open their own transaction, pipelined with their statements.
- **Transactions.** :meth:`Connections.transaction` holds one pooled connection in a contextvar
  (:class:`Held`); every operation inside (reads too) uses it, and runs in a savepoint so a failed
  operation (say ``DuplicateId``) leaves the caller's transaction usable, as in the reference.
  ``serializable=True`` runs the outermost one at SERIALIZABLE; the server's serialization
  failures and deadlocks, wherever they arise (commit included), become ``TransactionConflict``.
- **Other connections.** :meth:`Connections.leased` runs a search on a pooled connection held
  alone (the hot path, with no context-manager layers); :meth:`Connections.dedicated` opens one
  outside the pool (a bulk load holds its advisory lock on it).
- **Errors.** :func:`translated` turns driver errors into typed ones: ``BackendUnavailable``
  (unreachable server, pool timeout, cancelled statement), ``TransactionConflict``,
  ``CollectionNotFound`` (a missing table); anything else propagates as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import attrs
import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from vectorstore import registry
from vectorstore.config import redact
from vectorstore.errors import (
    BackendUnavailable,
    CollectionNotFound,
    ConfigError,
    OutcomeUnknown,
    StatementTimeout,
    TransactionConflict,
)
from vectorstore_postgres.connection import PooledConnection, Settings, Setup, remember

AConn = psycopg.AsyncConnection[Any]
T = TypeVar("T")

log = logging.getLogger("vectorstore.postgres")


# -- errors ------------------------------------------------------------------------


#: What the server says when it refused the connection for a reason no retry fixes: the URL
#: or the server's set-up must change (libpq reports these before any SQLSTATE is known).
REFUSALS = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
            "permission denied for database", "not permitted to log in", "authentication failed",
            "no password supplied", "certificate", "SSL is not enabled", "server does not support SSL")


def unavailable(settings: Settings, exc: BaseException) -> BackendUnavailable | ConfigError:
    """The typed error of a failed connection attempt: ``ConfigError`` when the server refused
    the URL's user, password, database or TLS settings (retrying cannot help), else
    ``BackendUnavailable`` (down, unreachable, starting up, out of connection slots)."""
    # (libpq does not quote the password in its messages; redacted all the same.)
    detail = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__
    if any(refusal in detail for refusal in REFUSALS):
        return ConfigError(
            f"PostgreSQL at {settings.target} refused the connection: {detail}. Fix the user, password, "
            "database name or sslmode in the URL (or the DB_* variables), or the server's pg_hba.conf; "
            "retrying will not help")
    return BackendUnavailable(
        f"cannot reach PostgreSQL at {settings.target}: {detail}. Check that the server is running and "
        "reachable, the host, port, database name, user and password in the URL (or DB_* variables), "
        "sslmode, and that the server accepts connections (pg_hba.conf); connect_timeout is "
        f"{settings.connect_timeout:g}s")


def timed_out(settings: Settings) -> StatementTimeout:
    return StatementTimeout(
        f"a statement on {settings.target} ran longer than statement_timeout={settings.statement_timeout:g}s and "
        "was cancelled; raise it with ?statement_timeout=30s in the URL, the statement_timeout option, or "
        "DB_QUERY_TIMEOUT (milliseconds)")


#: serialization_failure (40001) and deadlock_detected (40P01): the transaction lost a race.
CONFLICTS = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)


def conflict(exc: psycopg.Error) -> TransactionConflict:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TransactionConflict(
        f"the transaction lost a race with a concurrent one and is rolled back (PostgreSQL: SQLSTATE "
        f"{exc.sqlstate}, {detail}); nothing it wrote is kept, so running it again is safe and usually "
        "succeeds")


@contextlib.contextmanager
def translate_errors(settings: Settings, collection: str | None = None, *, write: bool = False) -> Iterator[None]:
    """Turn driver errors into vectorstore's typed errors (``write``: see :func:`translated`)."""
    try:
        yield
    except Exception as exc:
        typed = translated(exc, settings, collection, write=write)
        if typed is None:
            raise
        raise typed from typed.__cause__


def translated(exc: BaseException, settings: Settings, collection: str | None = None, *,
               write: bool = False) -> Exception | None:
    """The typed error for a driver error (its ``__cause__`` set as by ``raise ... from``), or
    None when ``exc`` is to propagate as it is. ``write``: the error ended a write that had its
    connection, so statements may have reached the server: a lost connection is then
    ``OutcomeUnknown`` (the COMMIT may have been applied with its acknowledgement lost), never
    ``BackendUnavailable``, which promises that nothing took effect."""
    typed: Exception
    cause: BaseException | None = exc
    if isinstance(exc, psycopg.errors.UndefinedTable):
        if collection is None:
            typed = BackendUnavailable(
                f"vectorstore's tables are missing from {settings.target} (schema {settings.schema!r}): {exc}. "
                "Reopen the store so its migrations run again")
        else:
            typed, cause = CollectionNotFound.named(collection), None
    elif isinstance(exc, psycopg.errors.QueryCanceled):
        typed = (timed_out(settings) if "statement timeout" in str(exc) else
                 BackendUnavailable(f"a statement on {settings.target} was cancelled: {exc}"))
    elif isinstance(exc, CONFLICTS):
        # OperationalErrors to psycopg, but the server is fine: the transaction may be retried.
        typed = conflict(exc)
    elif isinstance(exc, psycopg.errors.InsufficientPrivilege):
        detail = str(exc).strip().splitlines()[0]
        typed = ConfigError(
            f"the database user lacks a privilege on {settings.target}: {detail}. Grant it to the URL's user "
            "(or connect as one that has it); retrying will not help")
    elif isinstance(exc, PoolTimeout):
        typed = BackendUnavailable(
            f"no PostgreSQL connection to {settings.target} became free or could be opened within "
            f"connect_timeout={settings.connect_timeout:g}s (pool_max={settings.pool_max}); check the server, "
            "or raise pool_max / connect_timeout")
    elif isinstance(exc, psycopg.OperationalError) and write:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typed = OutcomeUnknown(
            f"the connection to PostgreSQL at {settings.target} was lost during a write ({detail}): it may or "
            "may not have been committed. Check with get() before running it again (an upsert or a delete "
            "may simply be repeated)")
    elif isinstance(exc, psycopg.OperationalError):
        typed = unavailable(settings, exc)
    else:
        return None
    typed.__cause__ = cause
    typed.__suppress_context__ = True
    return typed


# -- connections -------------------------------------------------------------------


@attrs.define(slots=True)
class Held:
    """The open transaction, shared by every operation awaited inside it."""

    conn: AConn
    #: The serialization failure or deadlock it met: from then on it can only roll back.
    lost: psycopg.Error | None = None

    def check(self) -> None:
        if self.lost is not None:
            raise conflict(self.lost)


#: A pooled connection idle this long is checked (an empty statement, one round trip) before it
#: is handed out: after a server restart or a failover every idle connection is dead, and
#: without the check each would fail one call. Busy connections are not checked.
CHECK_IDLE = 1.0
#: How long a call waits for the pool before asking the server itself whether it is there: the
#: pool retries failed connection attempts with exponential backoff (seconds to minutes after an
#: outage), so a call would otherwise wait its whole connect_timeout to fail, and the first calls
#: after the server's return would wait for the pool's next attempt.
POOL_PATIENCE = 0.5


class Connections:
    """The backend's way to the server: its settings and dialect, the pool, and the transaction
    the calling task holds (if any). Shared by every part of the backend.

    Every pooled connection is taken by :meth:`acquire` and given back by :meth:`release`.
    ``acquire`` checks a connection idle for :data:`CHECK_IDLE` before handing it out, and when
    the pool has no connection for :data:`POOL_PATIENCE` while its attempts to open one fail,
    connects to the server directly (one attempt shared by the callers waiting): if that fails
    the call fails at once with the server's own reason; if it succeeds the pool (stuck in its
    reconnection backoff) is replaced by a new one. A pool that is merely busy, or opening
    connections, is waited on up to connect_timeout."""

    def __init__(self, settings: Settings, setup: Setup, session_settings: list[tuple[str, str]]) -> None:
        self.settings = settings
        self.setup = setup
        #: The dialect every statement is written in: the server's vector extension (replaceable,
        #: as tests do to act as another extension version; the SQL cache must be cleared then).
        self.dialect = setup.dialect
        #: The settings every connection starts its session with (the default search settings).
        self.session_settings = session_settings
        self.held: contextvars.ContextVar[Held | None] = contextvars.ContextVar(
            f"vectorstore_postgres_txn_{id(self)}", default=None)
        self.pool = self._new_pool()
        #: Connections handed out and not yet given back; calls waiting for one.
        self.in_use = 0
        self.waiting = 0
        #: Totals since the store opened: connections handed out, seconds callers waited for
        #: them (in :meth:`acquire`), seconds they held them (what bounds a call under load).
        self.handed_out = 0
        self.wait_seconds = 0.0
        self.hold_seconds = 0.0
        #: Pools replaced by a new one, closing in the background.
        self._retired: set[asyncio.Task[None]] = set()
        self._checking: asyncio.Task[None] | None = None
        self._probing: asyncio.Task[Exception | None] | None = None
        #: The pool's count of failed connection attempts when it last opened a connection.
        self._errors_when_opened = 0

    def _new_pool(self) -> AsyncConnectionPool[PooledConnection]:
        return AsyncConnectionPool(
            self.settings.conninfo, connection_class=PooledConnection, min_size=self.settings.pool_min,
            max_size=self.settings.pool_max, kwargs={"autocommit": True, **self.settings.connect_kwargs()},
            configure=self.configure, timeout=self.settings.connect_timeout, open=False,
            name=f"vectorstore:{self.settings.target}")

    async def open(self) -> None:
        try:
            await self.pool.open(wait=self.settings.pool_min > 0, timeout=self.settings.connect_timeout)
        except Exception as exc:
            await self.pool.close()
            raise unavailable(self.settings, exc) from exc

    async def close(self) -> None:
        await self.pool.close()
        for pending in (self._checking, self._probing):
            if pending is not None:
                pending.cancel()
        for task in list(self._retired):
            with contextlib.suppress(Exception):
                await task

    async def configure(self, conn: AConn) -> None:
        """Prepare a new connection (pooled or dedicated) for the backend."""
        remember(conn, self.setup)
        for result in registry.prepare_connection(conn, "postgres"):
            if inspect.isawaitable(result):
                await result
        # Session defaults for searches (see Search.scope): most searches then need no SET.
        calls = ", ".join("set_config(%s, %s, false)" for _ in self.session_settings)
        await conn.execute(f"SELECT {calls}", [v for pair in self.session_settings for v in pair])
        if isinstance(conn, PooledConnection):
            conn.returned_at = time.monotonic()
            self._errors_when_opened = self.pool.get_stats().get("connections_errors", 0)

    def stats(self) -> dict[str, int]:
        """The pool's connections by state (for metrics and health)."""
        stats = self.pool.get_stats()
        # (psycopg-pool's requests_waiting keeps counting requests that timed out until it next
        # hands out a connection: the calls waiting are counted here instead)
        return {"size": stats.get("pool_size", 0), "idle": stats.get("pool_available", 0), "in_use": self.in_use,
                "waiting": self.waiting}

    # -- taking and giving back pooled connections ----------------------------------------

    async def acquire(self) -> tuple[AsyncConnectionPool[PooledConnection], PooledConnection]:
        """A pooled connection that works, and the pool to give it back to (:meth:`release`).
        Raises ``BackendUnavailable`` (or ``ConfigError``) when the server cannot be reached."""
        self.waiting += 1
        try:
            return await self._acquire()
        finally:
            self.waiting -= 1

    async def _acquire(self) -> tuple[AsyncConnectionPool[PooledConnection], PooledConnection]:
        settings = self.settings
        asked = time.monotonic()
        for _ in range(settings.pool_max + 2):  # (each round discards a dead idle connection)
            pool = self.pool
            patience = min(POOL_PATIENCE, settings.connect_timeout)
            try:
                try:
                    conn = await pool.getconn(timeout=patience)
                except PoolTimeout:
                    if not self._failing(pool):  # busy, or still opening connections: wait on
                        conn = await self._wait(pool, settings.connect_timeout - patience)
                    else:  # its connection attempts fail: is the server there?
                        await self._probe()  # (raises if not)
                        pool = await self._renew(pool)
                        conn = await self._wait(pool, settings.connect_timeout)
            except PoolClosed:
                if pool is self.pool:  # (the store is closing)
                    raise
                continue  # another call replaced the pool meanwhile: take from the new one
            self.in_use += 1
            now = time.monotonic()
            if now - conn.returned_at < CHECK_IDLE:
                self._handed(conn, asked, now)
                return pool, conn
            try:
                await conn.execute("")
            except psycopg.Error:
                await self.release(pool, conn, dead=True)  # (the pool discards it: it is closed)
                continue
            except BaseException:
                await self.release(pool, conn)
                raise
            self._handed(conn, asked, time.monotonic())
            return pool, conn
        raise BackendUnavailable(
            f"every pooled connection to {settings.target} was found dead, and new ones too; check the server")

    def _failing(self, pool: AsyncConnectionPool[PooledConnection]) -> bool:
        """Whether the pool's attempts to open a connection failed since it last opened one (a
        pool that is busy, or opening connections that take a while, is not failing)."""
        return pool is self.pool and pool.get_stats().get("connections_errors", 0) > self._errors_when_opened

    async def _wait(self, pool: AsyncConnectionPool[PooledConnection], timeout: float) -> PooledConnection:
        try:
            return await pool.getconn(timeout=max(timeout, 0.001))
        except PoolTimeout as exc:
            typed = translated(exc, self.settings)
            assert typed is not None
            raise typed from None

    def _handed(self, conn: PooledConnection, asked: float, now: float) -> None:
        self.handed_out += 1
        self.wait_seconds += now - asked
        conn.taken_at = now

    async def release(self, pool: AsyncConnectionPool[PooledConnection], conn: PooledConnection, *,
                      dead: bool = False) -> None:
        """Give ``conn`` back to ``pool``. A connection found ``dead``, or lost (its server or
        network went away), is discarded by the pool, and the pool's other idle connections are
        checked in the background: they likely died with it."""
        if dead or self.lost(conn):
            self._check_idle(pool)
        self.in_use -= 1
        now = conn.returned_at = time.monotonic()
        if conn.taken_at:
            self.hold_seconds += now - conn.taken_at
            conn.taken_at = 0.0
        await pool.putconn(conn)  # (a closed or broken connection is discarded and replaced)

    async def _probe(self) -> None:
        """Connect to the server directly (not through the pool); raise the typed error if that
        fails. Concurrent callers share one attempt."""
        if self._probing is None or self._probing.done():
            self._probing = asyncio.get_running_loop().create_task(self._connect_once())
        error = await asyncio.shield(self._probing)
        if error is not None:
            raise error

    async def _connect_once(self) -> Exception | None:
        try:
            conn = await psycopg.AsyncConnection.connect(self.settings.conninfo, autocommit=True,
                                                         **self.settings.connect_kwargs())
        except psycopg.OperationalError as exc:
            return unavailable(self.settings, exc)
        await conn.close()
        return None

    async def _renew(self, stale: AsyncConnectionPool[PooledConnection]) -> AsyncConnectionPool[PooledConnection]:
        """The server answers but the pool gave no connection: replace the pool (once, whoever
        asks first) and close the old one in the background."""
        if self.pool is stale:
            self._errors_when_opened = 0
            log.info("the pool of %s had no connection while the server answered: replacing it",
                     self.settings.target)
            self.pool = self._new_pool()
            await self.pool.open(wait=False)
            task = asyncio.get_running_loop().create_task(stale.close(timeout=self.settings.connect_timeout))
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
            task.add_done_callback(_consume)
        return self.pool

    def _check_idle(self, pool: AsyncConnectionPool[PooledConnection]) -> None:
        """A connection was found dead: check the pool's other idle ones in the background."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.get_running_loop().create_task(pool.check())
            self._checking.add_done_callback(_consume)  # (a pool closed meanwhile: nothing to check)

    def lost(self, conn: AConn) -> bool:
        """Whether ``conn`` is no longer usable (its server or network went away)."""
        return bool(conn.closed or conn.broken)

    def in_transaction(self) -> bool:
        return self.held.get() is not None

    @contextlib.asynccontextmanager
    async def connection(self, collection: str | None = None, *, write: bool = False) -> AsyncIterator[AConn]:
        """A connection: the transaction's (inside a savepoint) or a pooled one. ``write``: the
        caller writes (a lost connection is then ``OutcomeUnknown``, see :func:`translated`)."""
        held = self.held.get()
        if held is not None:  # (nothing inside a transaction is committed before its COMMIT)
            with translate_errors(self.settings, collection):
                async with self.savepoint(held) as conn:
                    yield conn
            return
        pool, conn = await self.acquire()
        try:
            with translate_errors(self.settings, collection, write=write):
                yield conn
        finally:
            await self.release(pool, conn)

    @contextlib.asynccontextmanager
    async def savepoint(self, held: Held) -> AsyncIterator[AConn]:
        held.check()
        try:
            async with held.conn.transaction():
                yield held.conn
        except CONFLICTS as exc:
            held.lost = exc
            raise

    @contextlib.asynccontextmanager
    async def transaction(self, serializable: bool = False) -> AsyncIterator[None]:
        held = self.held.get()
        if held is not None:  # nested: a savepoint, at its parent's isolation level
            with translate_errors(self.settings):
                async with self.savepoint(held):
                    yield
            return
        pool, conn = await self.acquire()
        try:
            # translate_errors also covers the COMMIT on the way out, where a serializable
            # transaction most often learns that it lost (TransactionConflict), and where a lost
            # connection leaves the outcome unknown (write=True: a connection lost before the
            # COMMIT committed nothing, but the two are not told apart).
            with translate_errors(self.settings, write=True):
                async with conn.transaction():
                    if serializable:
                        # Must precede every query of the transaction; ends with it (the pooled
                        # connection keeps its default level).
                        await conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", prepare=True)
                    state = Held(conn)
                    token = self.held.set(state)
                    try:
                        yield
                    finally:
                        self.held.reset(token)
                    # Never commit after a lost race, even when the block caught the TransactionConflict.
                    state.check()
        finally:
            await self.release(pool, conn)

    async def leased(self, collection: str, work: Callable[[AConn], Awaitable[T]]) -> T:
        """``work`` run on a pooled connection the caller holds alone: the search's hot path.

        Without :meth:`connection`'s context-manager layer (context managers were measured at
        tens of microseconds of a ~1 ms search); errors translated the same way. putconn()
        discards a connection left mid-statement."""
        pool, conn = await self.acquire()
        try:
            return await work(conn)
        except Exception as exc:
            typed = translated(exc, self.settings, collection)
            if typed is None:
                raise
            raise typed from typed.__cause__
        finally:
            await self.release(pool, conn)

    async def dedicated(self) -> AConn:
        """A connection outside the pool, for the lifetime of one bulk load."""
        try:
            conn = await psycopg.AsyncConnection.connect(self.settings.conninfo, autocommit=True,
                                                         **self.settings.connect_kwargs())
        except psycopg.OperationalError as exc:
            raise unavailable(self.settings, exc) from None
        try:
            await self.configure(conn)  # prepared like a pooled one (plugins' hooks run on it too)
        except BaseException:
            await conn.close()
            raise
        return conn


def _consume(task: asyncio.Task[Any]) -> None:
    """Retrieve a background task's outcome (asyncio logs an exception never retrieved)."""
    if not task.cancelled():
        task.exception()
