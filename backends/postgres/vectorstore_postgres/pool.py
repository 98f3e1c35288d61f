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

import contextlib
import contextvars
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import attrs
import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from vectorstore import registry
from vectorstore.errors import BackendUnavailable, CollectionNotFound, StatementTimeout, TransactionConflict
from vectorstore_postgres.connection import PooledConnection, Settings, Setup, remember

AConn = psycopg.AsyncConnection[Any]
T = TypeVar("T")


# -- errors ------------------------------------------------------------------------


def unavailable(settings: Settings, exc: BaseException) -> BackendUnavailable:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
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
def translate_errors(settings: Settings, collection: str | None = None) -> Iterator[None]:
    """Turn driver errors into vectorstore's typed errors."""
    try:
        yield
    except Exception as exc:
        typed = translated(exc, settings, collection)
        if typed is None:
            raise
        raise typed from typed.__cause__


def translated(exc: BaseException, settings: Settings, collection: str | None = None) -> Exception | None:
    """The typed error for a driver error (its ``__cause__`` set as by ``raise ... from``), or
    None when ``exc`` is to propagate as it is."""
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
    elif isinstance(exc, PoolTimeout):
        typed = BackendUnavailable(
            f"no PostgreSQL connection to {settings.target} became free or could be opened within "
            f"connect_timeout={settings.connect_timeout:g}s (pool_max={settings.pool_max}); check the server, "
            "or raise pool_max / connect_timeout")
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


class Connections:
    """The backend's way to the server: its settings and dialect, the pool, and the transaction
    the calling task holds (if any). Shared by every part of the backend."""

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
        self.pool: AsyncConnectionPool[PooledConnection] = AsyncConnectionPool(
            settings.conninfo, connection_class=PooledConnection, min_size=settings.pool_min,
            max_size=settings.pool_max, kwargs={"autocommit": True, **settings.connect_kwargs()},
            configure=self.configure, timeout=settings.connect_timeout, open=False,
            name=f"vectorstore:{settings.target}")

    async def open(self) -> None:
        try:
            await self.pool.open(wait=self.settings.pool_min > 0, timeout=self.settings.connect_timeout)
        except Exception as exc:
            await self.pool.close()
            raise unavailable(self.settings, exc) from exc

    async def close(self) -> None:
        await self.pool.close()

    async def configure(self, conn: AConn) -> None:
        """Prepare a new connection (pooled or dedicated) for the backend."""
        remember(conn, self.setup)
        for result in registry.prepare_connection(conn, "postgres"):
            if inspect.isawaitable(result):
                await result
        # Session defaults for searches (see Search.scope): most searches then need no SET.
        calls = ", ".join("set_config(%s, %s, false)" for _ in self.session_settings)
        await conn.execute(f"SELECT {calls}", [v for pair in self.session_settings for v in pair])

    def in_transaction(self) -> bool:
        return self.held.get() is not None

    @contextlib.asynccontextmanager
    async def connection(self, collection: str | None = None) -> AsyncIterator[AConn]:
        """A connection: the transaction's (inside a savepoint) or a pooled one."""
        with translate_errors(self.settings, collection):
            held = self.held.get()
            if held is not None:
                async with self.savepoint(held) as conn:
                    yield conn
                return
            async with self.pool.connection() as conn:
                yield conn

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
        # translate_errors also covers the COMMIT on the way out, where a serializable
        # transaction most often learns that it lost (TransactionConflict).
        with translate_errors(self.settings):
            async with self.pool.connection() as conn, conn.transaction():
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

    async def leased(self, collection: str, work: Callable[[AConn], Awaitable[T]]) -> T:
        """``work`` run on a pooled connection the caller holds alone: the search's hot path.

        Without :meth:`connection`'s two context-manager layers (measured at ~40 us of a ~1 ms
        search), nor pool.connection()'s (its `async with conn` commits, a no-op in autocommit that
        still takes the connection's lock); errors translated the same way. putconn() discards a
        connection left mid-statement."""
        try:
            conn = await self.pool.getconn()
            try:
                return await work(conn)
            finally:
                await self.pool.putconn(conn)
        except Exception as exc:
            typed = translated(exc, self.settings, collection)
            if typed is None:
                raise
            raise typed from typed.__cause__

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
