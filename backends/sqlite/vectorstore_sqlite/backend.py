"""The SQLite backend: one file, WAL, one writer connection and a pool of readers.

Concurrency model (the memory backend's, on SQLite):

- Every write, and every ``transaction()``, holds ``self._lock`` (an asyncio lock) and
  runs on the single writer connection inside ``BEGIN IMMEDIATE``. The open
  transaction is remembered in a context variable, so operations awaited inside it
  (in the same task, or tasks it spawns) skip the lock and join it; each such
  operation runs in its own SAVEPOINT so a failing batch never leaves half of
  itself behind, and nested ``transaction()`` blocks are SAVEPOINTs too.
- Reads outside a transaction use a pool of read-only connections; WAL lets them
  run beside the writer and see only committed data, so no other coroutine sees
  an open transaction's writes. Reads inside a transaction use the writer, to see
  their own writes.
- Other processes are serialised by SQLite's own lock; a writer that stays locked
  longer than ``timeout`` becomes :class:`~vectorstore.errors.BackendUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import functools
import inspect
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import attrs
import numpy as np

from vectorstore import registry
from vectorstore.config import StoreConfig, parse_duration, parse_int, redact
from vectorstore.errors import (
    BackendUnavailable,
    CollectionExists,
    CollectionNotFound,
    ConfigError,
    DuplicateId,
    InvalidName,
    StatementTimeout,
    StoreClosed,
    TransactionError,
    VectorStoreError,
)
from vectorstore.filters import Filter, MatchAll
from vectorstore.records import Hit, Record, RecordBatch, RecordId, Vector, dump_json
from vectorstore.schema import CollectionSpec
from vectorstore.spi import Check, Health, check_id_space
from vectorstore.sqlfilter import compile_filter
from vectorstore_sqlite import quantized
from vectorstore_sqlite.driver import Driver, driver, load_sqlite_vec, sqlite_vec_package_version
from vectorstore_sqlite.plugin import CAPABILITIES
from vectorstore_sqlite.plugin import spec as plugin_spec
from vectorstore_sqlite.search import ExactSearch
from vectorstore_sqlite.sql import (
    CATALOG,
    DIALECT,
    GENERATIONS,
    MIGRATIONS,
    SCHEMA_VERSION,
    SEQUENCES,
    RowCodec,
    create_statements,
    drop_statements,
    has_vec_index,
    q,
    vec_table,
)
from vectorstore_sqlite.writelock import WriteTurns

MIN_SQLITE = (3, 38, 0)  # built-in JSON functions and MATERIALIZED CTEs

#: The writer's page cache (SQLite's default is 2 MiB). A large write inserts into indexes in
#: random order (the covering index leads with each vector's norm); once they outgrow the cache
#: every insert reads and writes pages through the OS: a 100k x 384 load went ~9k -> ~10.4k
#: vectors/s with this. Allocated as used, for the one writer connection only.
WRITER_CACHE_KIB = 64 * 1024

#: Quantized searches of collections with at least this many codes run their NumPy stages in a thread.
OFFLOAD_ABOVE = 20_000
#: Seconds between checks of whether a collection searched exactly has grown past exact_search_below
#: (a collection already searched through its codes is brought up to date on every search).
CODES_RECHECK = 1.0


@attrs.frozen(slots=True)
class Settings:
    """A parsed ``sqlite://`` URL."""

    path: Path
    timeout: float
    readers: int
    exact_search_below: int = 10_000
    ef_search: int = quantized.DEFAULT_EF


def _has_catalog(uri: str) -> bool:
    module = driver().module
    conn = module.connect(uri, uri=True)
    try:
        row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [CATALOG]).fetchone()
        return row is not None
    finally:
        conn.close()


def store_exists(config: StoreConfig) -> bool:
    """Whether the file exists and holds a vectorstore catalog, found out without creating anything.

    Committed pages may still sit in the ``-wal`` file, which an immutable read ignores: then the
    file and its WAL are copied to a temporary directory and the copy is read."""
    path = parse_settings(config).path
    if not path.is_file():
        return False
    wal = path.with_name(path.name + "-wal")
    try:
        if not wal.is_file() or wal.stat().st_size == 0:
            return _has_catalog(f"file:{urllib.parse.quote(str(path))}?mode=ro&immutable=1")
        with tempfile.TemporaryDirectory(prefix="vectorstore-exists-") as tmp:
            copy = Path(tmp) / path.name
            shutil.copyfile(path, copy)
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
            return _has_catalog(f"file:{urllib.parse.quote(str(copy))}?mode=ro")
    except driver().module.DatabaseError:
        return False  # not an SQLite database (or not ours)


def parse_settings(config: StoreConfig) -> Settings:
    """``sqlite:///relative/path.db`` (relative to the working directory) or
    ``sqlite:////absolute/path.db``, as in SQLAlchemy; options come from the URL query and
    from keyword arguments (which win)."""
    parts = urllib.parse.urlsplit(config.url)
    example = "use sqlite:///relative/path.db or sqlite:////absolute/path.db"
    if parts.netloc:
        shown = redact(config.url)  # (the part before the path may hold a password)
        raise ConfigError(f"sqlite URLs have no host, but {shown!r} names one before its path; {example}")
    raw = urllib.parse.unquote(parts.path)
    if not raw.startswith("/") or raw in ("/", "/:memory:") or raw.endswith("/"):
        raise ConfigError(
            f"{redact(config.url)!r} does not name a database file; {example} (for a throwaway in-memory store use memory://)"
        )
    # Collections with fewer vectors than exact_search_below are searched exactly; larger ones
    # through quantized codes re-ranked exactly (see quantized.py). 0: the codes at any size.
    opts = plugin_spec().bind(config).options
    path = Path(raw[1:])
    if not path.is_absolute():
        path = Path.cwd() / path
    return Settings(path=path, timeout=parse_duration(opts["timeout"], "s", "timeout"),
                    readers=parse_int(opts["readers"], "readers", 1, 64),
                    exact_search_below=parse_int(opts["exact_search_below"], "exact_search_below", 0, 2**62),
                    ef_search=parse_int(opts["ef_search"], "ef_search", 1, 10_000))


async def open_backend(config: StoreConfig) -> SqliteBackend:
    """Open (creating if needed) the database file and bring its schema up to date."""
    settings = parse_settings(config)
    drv = driver()
    backend = SqliteBackend(settings, drv)
    try:
        await backend._open()
    except BaseException:
        await backend.aclose()
        raise
    return backend


@attrs.define(slots=True)
class _Txn:
    """An open transaction, shared by the tasks awaited inside it."""

    # Operations of one transaction may run in several tasks (gather inside the block); each
    # takes this lock so their savepoints nest properly instead of interleaving.
    op_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)
    savepoints: int = 0
    aborted: bool = False

    def savepoint(self) -> str:
        self.savepoints += 1
        return f"vs_sp_{self.savepoints}"

    def check(self) -> None:
        if self.aborted:
            raise TransactionError(
                "SQLite rolled this transaction back after an error (see the earlier exception); nothing in it "
                "was written. Leave the `with store.transaction()` block and retry it"
            )


class _Conn:
    """One aiosqlite connection with the few calls the backend makes."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.raw = conn

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self.raw.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return its row count (rows changed by INSERT/UPDATE/DELETE)."""
        cursor = await self.raw.execute(sql, params)
        count: int = cursor.rowcount
        return count

    async def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        await self.raw.executemany(sql, rows)


class SqliteBackend:
    name = "sqlite"
    capabilities = CAPABILITIES

    def __init__(self, settings: Settings, drv: Driver) -> None:
        self.settings = settings
        #: The cross-cutting layer's default deadline per call: a write waits at most ``timeout``
        #: for another process's lock; 10 s more covers the work itself.
        self.deadline_hint = settings.timeout + 10.0
        self.driver = drv
        self._writer: _Conn | None = None
        self._readers: asyncio.Queue[_Conn] = asyncio.Queue()
        self._all: list[_Conn] = []
        self._lock = asyncio.Lock()
        self._txn: contextvars.ContextVar[_Txn | None] = contextvars.ContextVar(
            f"vectorstore_sqlite_txn_{id(self)}", default=None)
        self._codecs: dict[tuple[Any, ...], RowCodec] = {}
        self._closed = False
        self.journal_mode = "unknown"
        #: Search passes run so far (see :class:`ExactSearch`, and "quantized" for
        #: :mod:`quantized`); for tests and diagnostics.
        self.search_passes: dict[str, int] = {"vec0": 0, "scan": 0, "second": 0, "exhaustive": 0, "quantized": 0}
        #: Quantized codes of collections, by name (see quantized.py), and when each was last
        #: brought up to date (a small collection is re-checked at most every CODES_RECHECK s).
        self._turns = WriteTurns(settings.path, settings.timeout)
        self._codes: dict[str, quantized.Codes] = {}
        self._codes_checked: dict[str, float] = {}

    # -- connections -------------------------------------------------------

    def _connector(self, reader: bool) -> Any:
        drv, settings = self.driver, self.settings

        def connect() -> Any:
            # Runs on the aiosqlite thread that will own the connection.
            # The writer has no busy timeout: it takes the write lock through WriteTurns, which
            # polls fairly (see writelock.py); readers wait in SQLite's busy handler as usual.
            conn = drv.module.connect(str(settings.path), timeout=settings.timeout if reader else 0.0,
                                      isolation_level=None, cached_statements=256)
            try:
                # Plugin hooks, including this package's own, which loads sqlite-vec.
                for result in registry.prepare_connection(conn, "sqlite"):
                    if inspect.isawaitable(result):
                        # No event loop runs on this thread; run the hook's coroutine here.
                        loop = asyncio.new_event_loop()
                        try:
                            loop.run_until_complete(result)
                        finally:
                            loop.close()
                try:
                    conn.execute("SELECT vec_version()")
                except drv.module.OperationalError:
                    # The hook did not run (plugins restricted by VECTORSTORE_PLUGINS): load it here.
                    load_sqlite_vec(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
                if reader:
                    conn.execute("PRAGMA query_only=ON")
                else:
                    conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            except BaseException:
                conn.close()
                raise
            return conn

        return connect

    async def _connect(self, reader: bool) -> _Conn:
        pending = aiosqlite.Connection(self._connector(reader), 64)
        # aiosqlite's worker thread is not a daemon, so a store the program forgot to close would
        # keep the interpreter from exiting (it waits for such threads before running atexit).
        # Committed data is safe in the file either way; an open transaction rolls back.
        thread = getattr(pending, "_thread", None)
        if isinstance(thread, threading.Thread) and not thread.is_alive():
            thread.daemon = True
        with self._errors():
            raw = await pending
        conn = _Conn(raw)
        self._all.append(conn)
        return conn

    async def _open(self) -> None:
        path = self.settings.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot create the directory {path.parent} for the SQLite database ({exc}); "
                "choose a path you can write to"
            ) from exc
        if path.is_dir():
            raise BackendUnavailable(f"{path} is a directory, not a database file; put a file name in the URL")
        _create_private(path)
        self._writer = writer = await self._connect(reader=False)
        with self._errors():
            # WAL lets readers run beside the writer; it is a property of the file, set once.
            # (Switching a new file to WAL needs the write lock: taken like any write, fairly.)
            rows = await self._turns.begin(writer.fetchall, self._busy, "PRAGMA journal_mode=WAL")
            self.journal_mode = str(rows[0][0]).lower()
            await self._migrate(writer)
            await self._backfill_codes(writer)
        for _ in range(self.settings.readers):
            self._readers.put_nowait(await self._connect(reader=True))

    async def _schema_version(self, conn: _Conn) -> int:
        exists = await conn.fetchall("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", [SCHEMA_VERSION])
        if not exists:
            return 0
        return int((await conn.fetchall(f'SELECT coalesce(max(version), 0) FROM "{SCHEMA_VERSION}"'))[0][0])

    async def _migrate(self, writer: _Conn) -> None:
        """Apply missing migrations. An up-to-date file is only read, so opening a store never
        waits for another process's write lock."""
        latest = MIGRATIONS[-1][0]
        current = await self._schema_version(writer)
        if current == latest:
            return
        if current < latest:
            await self._begin(writer)
            try:
                # Re-read under the lock: another process may have migrated meanwhile.
                current = await self._schema_version(writer)
                if current < latest:
                    await writer.execute(f'CREATE TABLE IF NOT EXISTS "{SCHEMA_VERSION}" '
                                         "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
                for version, step in MIGRATIONS:
                    if version > current:
                        if isinstance(step, str):
                            await writer.execute(step)
                        else:
                            specs = [CollectionSpec.from_dict(json.loads(row[0])) for row in
                                     await writer.fetchall(f'SELECT spec FROM "{CATALOG}" ORDER BY name')]
                            for statement in step(specs):
                                await writer.execute(statement)
                        await writer.execute(f'INSERT INTO "{SCHEMA_VERSION}" (version, applied_at) VALUES (?, ?)',
                                             [version, _now()])
            except BaseException:
                await writer.execute("ROLLBACK")
                raise
            await writer.execute("COMMIT")
        if current > latest:
            raise BackendUnavailable(
                f"{self.settings.path} was written by a newer vectorstore (schema version {current}, this one "
                f"knows up to {latest}); upgrade vectorstore to open it"
            )

    async def _backfill_codes(self, writer: _Conn) -> None:
        """Write the quantized codes of collections that predate them (migration 4), once."""
        pending = await writer.fetchall(f'SELECT name FROM "{GENERATIONS}" WHERE complete = 0')
        for (name,) in pending:
            await self._begin(writer)
            try:
                found = await writer.fetchall(f'SELECT spec FROM "{CATALOG}" WHERE name = ?', [name])
                done = await writer.fetchall(f'SELECT complete FROM "{GENERATIONS}" WHERE name = ?', [name])
                if found and done and not done[0][0]:  # (another process may have done it meanwhile)
                    spec = CollectionSpec.from_dict(json.loads(found[0][0]))
                    gen = await quantized.bump(writer, name)
                    after = 0
                    while rows := await writer.fetchall(
                            f"SELECT _key, _vector FROM {q(name)} WHERE _vector IS NOT NULL AND _key > ? "
                            "ORDER BY _key LIMIT 10000", [after]):
                        keys = [row[0] for row in rows]
                        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32).reshape(
                            len(rows), -1)  # (rows of the spec's dim: only collections with vectors have codes)
                        await writer.executemany(quantized.insert_codes_sql(name),
                                                 quantized.code_rows(spec.metric, gen, keys, matrix))
                        after = keys[-1]
                    await writer.execute(f'UPDATE "{GENERATIONS}" SET complete = 1 WHERE name = ?', [name])
            except BaseException:
                await writer.execute("ROLLBACK")
                raise
            await writer.execute("COMMIT")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.raw.close()
        self._turns.close()

    # -- errors ------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, collection: str | None = None) -> Iterator[None]:
        """Turn driver errors into vectorstore errors that say what to do."""
        try:
            yield
        except self.driver.error as exc:
            raise self._translate(exc, collection) from exc

    def _translate(self, exc: Exception, collection: str | None) -> Exception:
        msg = str(exc)
        low = msg.lower()
        path = self.settings.path
        if "no such table" in low and collection is not None:
            return CollectionNotFound.named(collection)
        if "locked" in low or "busy" in low:
            return StatementTimeout(
                f"the SQLite database {path} stayed locked by another connection or process for more than "
                f"{self.settings.timeout:g}s ({msg}); retry, keep other writers' transactions short, or wait "
                "longer with the timeout option (e.g. sqlite:///path.db?timeout=30s)"
            )
        if "unable to open" in low or "cannot open" in low:
            return BackendUnavailable(
                f"cannot open the SQLite database {path} ({msg}); check that the directory exists and that "
                "you may read and write the file and its directory"
            )
        if "not a database" in low or "malformed" in low:
            return BackendUnavailable(
                f"{path} is not a usable SQLite database ({msg}); point the URL at another file, or restore "
                "this one from a backup"
            )
        if "readonly" in low or "read-only" in low:
            return BackendUnavailable(
                f"the SQLite database {path} is read-only ({msg}); give this process write permission on the "
                "file and its directory"
            )
        if "disk" in low or "full" in low:
            return BackendUnavailable(f"SQLite could not write {path} ({msg}); free disk space or check the disk")
        return exc

    # -- locking -----------------------------------------------------------

    async def _begin(self, writer: _Conn) -> None:
        """BEGIN IMMEDIATE on the writer, taking turns fairly with other processes (writelock.py)."""
        await self._turns.begin(writer.execute, self._busy)

    def _busy(self, exc: BaseException) -> bool:
        if not isinstance(exc, self.driver.error):
            return False
        text = str(exc).lower()
        return "locked" in text or "busy" in text

    def _check_open(self) -> None:
        if self._closed or self._writer is None:
            raise StoreClosed(f"the store {self.settings.path} is closed; open it again with connect() / open_store()")

    async def _savepoint(self, state: _Txn) -> str:
        """Open a savepoint in the caller's transaction (the caller holds ``state.op_lock``)."""
        state.check()
        assert self._writer is not None
        name = state.savepoint()
        with self._errors():
            await self._writer.execute(f"SAVEPOINT {name}")
        return name

    async def _undo(self, state: _Txn, name: str) -> None:
        """Roll back to a savepoint after an error. Some errors (disk full, I/O) make SQLite
        roll back the whole transaction itself; then the savepoint is gone and the transaction
        is marked aborted, so nothing later in it can run, let alone commit, outside it."""
        assert self._writer is not None
        try:
            await self._writer.execute(f"ROLLBACK TO {name}")
            await self._writer.execute(f"RELEASE {name}")
        except Exception:
            state.aborted = True

    @contextlib.asynccontextmanager
    async def _write(self, collection: str | None = None) -> AsyncIterator[_Conn]:
        """The writer, inside a transaction: the caller's (as a savepoint, so this operation is
        all or nothing within it) or a new one of its own."""
        self._check_open()
        writer = self._writer
        assert writer is not None
        state = self._txn.get()
        if state is not None:
            async with state.op_lock:
                name = await self._savepoint(state)
                try:
                    with self._errors(collection):
                        yield writer
                except BaseException:
                    await self._undo(state, name)
                    raise
                with self._errors(collection):
                    await writer.execute(f"RELEASE {name}")
            return
        async with self._lock:
            with self._errors(collection):
                await self._begin(writer)
            try:
                with self._errors(collection):
                    yield writer
                    await writer.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    await writer.execute("ROLLBACK")
                raise
            finally:
                self._turns.released()

    @contextlib.asynccontextmanager
    async def _read(self, collection: str | None = None, snapshot: bool = False) -> AsyncIterator[_Conn]:
        """A connection to read from: the writer inside a transaction, else a pooled reader
        (in one read transaction when ``snapshot``, so several statements see one state)."""
        self._check_open()
        state = self._txn.get()
        if state is not None:
            assert self._writer is not None
            async with state.op_lock:
                state.check()
                with self._errors(collection):
                    yield self._writer
            return
        conn = await self._readers.get()
        try:
            if not snapshot:
                with self._errors(collection):
                    yield conn
                return
            with self._errors(collection):
                await conn.execute("BEGIN")
            try:
                with self._errors(collection):
                    yield conn
            finally:
                with contextlib.suppress(Exception):
                    await conn.execute("COMMIT")
        finally:
            self._readers.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def transaction(self, serializable: bool = False) -> AsyncIterator[None]:
        # Every transaction is serializable here: it holds the single writer (BEGIN IMMEDIATE,
        # and self._lock within this process) from start to end, and its reads use the writer.
        # So `serializable` changes nothing and a transaction never loses a race.
        self._check_open()
        writer = self._writer
        assert writer is not None
        state = self._txn.get()
        if state is not None:  # nested: a savepoint
            async with state.op_lock:
                name = await self._savepoint(state)
            try:
                yield
            except BaseException:
                async with state.op_lock:
                    await self._undo(state, name)
                raise
            async with state.op_lock:
                state.check()
                with self._errors():
                    await writer.execute(f"RELEASE {name}")
            return
        async with self._lock:
            with self._errors():
                await self._begin(writer)
            state = _Txn()
            token = self._txn.set(state)
            try:
                try:
                    yield
                except BaseException:
                    with contextlib.suppress(Exception):
                        await writer.execute("ROLLBACK")
                    raise
                try:
                    state.check()
                    with self._errors():
                        await writer.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(Exception):
                        await writer.execute("ROLLBACK")
                    raise
            finally:
                self._txn.reset(token)
                self._turns.released()

    # -- catalog -----------------------------------------------------------

    def _codec(self, spec: CollectionSpec) -> RowCodec:
        # Specs hold a dict (unhashable); the codec depends only on these parts (and on whether the
        # table has vector columns, and their dimension: a name dropped may come back with others).
        key = (spec.name, spec.id_type, tuple(spec.fields.items()), spec.dim)
        codec = self._codecs.get(key)
        if codec is None:
            codec = self._codecs[key] = RowCodec(spec)
        return codec

    async def create_collection(self, spec: CollectionSpec) -> None:
        async with self._write() as w:
            exists = await w.fetchall(f'SELECT 1 FROM "{CATALOG}" WHERE name = ?', [spec.name])
            if exists:
                raise CollectionExists(f"collection {spec.name!r} already exists")
            # Objects this collection would create: the table, and "<name>__..." (vec0 and its shadow
            # tables, index, triggers). Anything there already is not ours; never clobber it.
            taken = await w.fetchall(
                "SELECT type, name FROM sqlite_schema WHERE name = ? OR substr(name, 1, ?) = ? LIMIT 1",
                [spec.name, len(spec.name) + 2, spec.name + "__"])
            if taken:
                raise InvalidName(
                    f"the database file already holds a {taken[0][0]} named {taken[0][1]!r} that vectorstore does "
                    f"not manage, so the collection {spec.name!r} cannot be created; choose another name"
                )
            await w.execute(f'INSERT INTO "{CATALOG}" (name, spec, created_at) VALUES (?, ?, ?)',
                            [spec.name, dump_json(spec.to_dict()), _now()])
            for statement in create_statements(spec):
                await w.execute(statement)

    async def get_collection(self, name: str) -> CollectionSpec:
        async with self._read() as r:
            rows = await r.fetchall(f'SELECT spec FROM "{CATALOG}" WHERE name = ?', [name])
        if not rows:
            raise CollectionNotFound.named(name)
        return CollectionSpec.from_dict(json.loads(rows[0][0]))

    async def list_collections(self) -> list[CollectionSpec]:
        async with self._read() as r:
            rows = await r.fetchall(f'SELECT spec FROM "{CATALOG}" ORDER BY name')
        return [CollectionSpec.from_dict(json.loads(row[0])) for row in rows]

    async def drop_collection(self, name: str) -> bool:
        async with self._write() as w:
            if not await w.execute(f'DELETE FROM "{CATALOG}" WHERE name = ?', [name]):
                return False
            for statement in drop_statements(name):
                await w.execute(statement)
            await w.execute(f'DELETE FROM "{SEQUENCES}" WHERE name = ?', [name])
            self._codes.pop(name, None)
            self._codes_checked.pop(name, None)
            return True

    async def allocate_ids(self, spec: CollectionSpec, n: int, after: int) -> list[int]:
        async with self._write(spec.name) as w:
            highest = (await w.fetchall(f"SELECT coalesce(max(id), 0) FROM {q(spec.name)}"))[0][0]
            found = await w.fetchall(f'SELECT last FROM "{SEQUENCES}" WHERE name = ?', [spec.name])
            last = found[0][0] if found else 0
            start = max(last, highest, after) + 1
            check_id_space(start, n, spec.name)
            await w.execute(f'INSERT INTO "{SEQUENCES}" (name, last) VALUES (?, ?) '
                            "ON CONFLICT (name) DO UPDATE SET last = excluded.last",
                            [spec.name, max(last, after, start + n - 1)])
            return list(range(start, start + n))

    async def last_id(self, spec: CollectionSpec) -> int:
        async with self._read(spec.name, snapshot=True) as r:
            highest = (await r.fetchall(f"SELECT coalesce(max(id), 0) FROM {q(spec.name)}"))[0][0]
            found = await r.fetchall(f'SELECT last FROM "{SEQUENCES}" WHERE name = ?', [spec.name])
        return max(int(highest), int(found[0][0]) if found else 0)

    @contextlib.asynccontextmanager
    async def bulk_load(self, spec: CollectionSpec) -> AsyncIterator[None]:
        # Nothing to defer: the vec0 mirror of new rows is written in bulk by each batch already, and
        # search never depends on it being complete.
        yield

    # -- records -----------------------------------------------------------

    async def _write_rows(self, w: _Conn, spec: CollectionSpec, batch: RecordBatch, sql: str) -> None:
        codec = self._codec(spec)
        if not spec.has_vectors:  # the row table alone (no vector columns, mirror or codes)
            await w.executemany(sql, codec.encode(batch.ids, batch.fields, [], [], batch.metadata_json()))
            return
        blobs: list[bytes | None] = [row.tobytes() for row in batch.vectors]
        norms: list[float | None] = batch.norms().tolist()
        if not batch.all_vectors:
            assert batch.present is not None
            for i in np.flatnonzero(~batch.present).tolist():
                blobs[i] = norms[i] = None
        rows = codec.encode(batch.ids, batch.fields, norms, blobs, batch.metadata_json())
        table = q(spec.name)
        # Also the existence check: a dropped collection fails here with "no such table".
        before = (await w.fetchall(f"SELECT coalesce(max(_key), 0) FROM {table}"))[0][0]
        # Taken first: the tombstone triggers of records losing their vector stamp it.
        gen = await quantized.bump(w, spec.name) if has_vec_index(spec) else -1
        await w.executemany(sql, rows)
        if has_vec_index(spec):
            # New rows got keys above the previous maximum (SQLite's rowid rule); mirror those with
            # a vector in one statement. Replaced rows are mirrored by the update triggers.
            await w.execute(f"INSERT INTO {q(vec_table(spec.name))} (rowid, embedding) "
                            f"SELECT _key, _vector FROM {table} WHERE _key > ? AND _vector IS NOT NULL", [before])
        if gen >= 0:
            await self._write_codes(w, spec, batch, gen)

    async def _write_codes(self, w: _Conn, spec: CollectionSpec, batch: RecordBatch, gen: int) -> None:
        """The quantized codes of the batch's records with a vector (insert mode skipped none:
        a duplicate aborts the whole batch)."""
        present = np.ones(len(batch), dtype=bool) if batch.all_vectors else np.asarray(batch.present, dtype=bool)
        if not present.any():
            return
        ids = [rid for rid, has in zip(batch.ids, present.tolist(), strict=True) if has]
        found = await w.fetchall(f"SELECT id, _key FROM {q(spec.name)} WHERE id IN (SELECT value FROM json_each(?))",
                                 [_json_ids(ids)])
        key_of = dict(found)
        keys = [key_of[rid] for rid in ids]
        await w.executemany(quantized.insert_codes_sql(spec.name),
                            quantized.code_rows(spec.metric, gen, keys, batch.vectors[present]))

    async def upsert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        async with self._write(spec.name) as w:
            await self._write_rows(w, spec, batch, self._codec(spec).upsert_sql)

    async def insert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        async with self._write(spec.name) as w:
            found = await w.fetchall(f"SELECT id FROM {q(spec.name)} WHERE id IN (SELECT value FROM json_each(?))",
                                     [_json_ids(batch.ids)])
            if found:
                present = {row[0] for row in found}
                existing = [rid for rid in batch.ids if rid in present]
                raise DuplicateId(
                    f"{len(existing)} id(s) already exist in {spec.name!r}: {existing[:10]!r}; nothing was "
                    "written. Use upsert() to replace records",
                    ids=existing,
                )
            await self._write_rows(w, spec, batch, self._codec(spec).insert_sql)

    def _records(self, codec: RowCodec, rows: list[Any]) -> list[Record]:
        """Rows of ``(select_cols..., vector_col)``; the vector is NULL for a record without one (and
        always in a collection without vectors)."""
        if not rows:
            return []
        n = len(codec.names)
        blobs = [row[-1] for row in rows if row[-1] is not None]
        vectors: Iterator[Vector] = iter(())
        if blobs:
            matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1).copy()
            vectors = iter(matrix)
        return [Record(id=row[0], vector=None if row[-1] is None else next(vectors),
                       fields=codec.decode_fields(row[1:1 + n]), metadata=json.loads(row[1 + n])) for row in rows]

    async def get(self, spec: CollectionSpec, ids: Sequence[RecordId]) -> list[Record]:
        codec = self._codec(spec)
        async with self._read(spec.name) as r:
            rows = await r.fetchall(
                f"SELECT {codec.select_cols}, {codec.vector_col} FROM {q(spec.name)} "
                "WHERE id IN (SELECT value FROM json_each(?))", [_json_ids(ids)])
        by_id = {rec.id: rec for rec in self._records(codec, rows)}
        return [by_id[rid] for rid in ids if rid in by_id]

    async def delete(self, spec: CollectionSpec, ids: Sequence[RecordId] | None, where: Filter | None) -> int:
        table = q(spec.name)
        async with self._write(spec.name) as w:
            if has_vec_index(spec):
                await quantized.bump(w, spec.name)  # stamps the tombstones the delete trigger leaves
            if ids is not None:
                return await w.execute(f"DELETE FROM {table} WHERE id IN (SELECT value FROM json_each(?))",
                                       [_json_ids(ids)])
            sql, params = compile_filter(where or MatchAll(), spec, DIALECT)
            return await w.execute(f"DELETE FROM {table} WHERE {sql}", params)

    async def count(self, spec: CollectionSpec, where: Filter) -> int:
        sql, params = compile_filter(where, spec, DIALECT)
        async with self._read(spec.name) as r:
            rows = await r.fetchall(f"SELECT count(*) FROM {q(spec.name)} WHERE {sql}", params)
        return int(rows[0][0])

    async def search(self, spec: CollectionSpec, queries: Vector, k: int, where: Filter,
                     max_distance: float | None, ef_search: int | None, include_vector: bool) -> list[list[Hit]]:
        if not spec.has_vectors:  # (the core refuses it first) no record of it is ever a hit
            return [[] for _ in range(len(queries))]
        sql, params = compile_filter(where, spec, DIALECT)
        filtered = not isinstance(where, MatchAll)
        # Quantized codes serve cosine / l2 searches outside transactions (inside one, the writer
        # sees uncommitted codes, which must never reach the shared cache).
        codes_path = has_vec_index(spec) and self._txn.get() is None
        cached = self._codes.get(spec.name)
        search = functools.partial(self._search_codes, spec=spec, queries=queries, k=k, max_distance=max_distance,
                                   ef_search=ef_search, include_vector=include_vector,
                                   where=(sql, params) if filtered else None)
        if codes_path and cached is not None and self._codes_qualify(cached):
            # No read transaction: the codes only choose candidates, whose rows (and exact
            # distances) are read afterwards, filter included; a record deleted meanwhile is skipped.
            async with self._read(spec.name) as r:
                codes = await self._refresh_codes(r, spec)
                if codes is not None and self._codes_qualify(codes):
                    return await search(r, codes)
        async with self._read(spec.name, snapshot=True) as r:
            if codes_path and (cached is None or time.monotonic() - self._codes_checked.get(spec.name, 0.0)
                               > CODES_RECHECK):
                codes = await self._refresh_codes(r, spec)
                if codes is not None and self._codes_qualify(codes):
                    return await search(r, codes)
            searcher = ExactSearch(r, spec, self._codec(spec), sql, params, filtered=filtered)
            try:
                return await searcher.run(queries, k, max_distance, include_vector)
            finally:
                for key, n in searcher.passes.items():
                    self.search_passes[key] += n

    def _codes_qualify(self, codes: quantized.Codes) -> bool:
        return codes.complete and codes.live >= max(1, self.settings.exact_search_below)

    async def _refresh_codes(self, r: _Conn, spec: CollectionSpec) -> quantized.Codes | None:
        codes = await quantized.refresh(r, spec, self._codes.get(spec.name))
        self._codes_checked[spec.name] = time.monotonic()
        if codes is None:
            self._codes.pop(spec.name, None)
        else:
            self._codes[spec.name] = codes
        return codes

    async def _search_codes(self, r: _Conn, codes: quantized.Codes, *, spec: CollectionSpec, queries: Vector,
                            k: int, max_distance: float | None, ef_search: int | None, include_vector: bool,
                            where: tuple[str, list[Any]] | None) -> list[list[Hit]]:
        ef = ef_search or self.settings.ef_search
        allowed = None
        where_sql, where_params = where or ("1=1", [])
        if where is not None:
            allowed = quantized.allowed_slots(codes, await quantized.matching_keys(r, spec, where_sql, where_params))
        out: list[list[Hit]] = []
        for query in queries:
            self.search_passes["quantized"] += 1
            args = (codes, spec.metric, query, k, ef, allowed)
            # Milliseconds of NumPy for a large collection: off the event loop (it releases the GIL).
            keys = (await asyncio.to_thread(quantized.shortlist, *args) if codes.size >= OFFLOAD_ABOVE
                    else quantized.shortlist(*args))
            out.append(await quantized.rerank(r, spec, self._codec(spec), keys, query, k, max_distance,
                                              include_vector, where_sql, where_params))
        return out

    async def page(self, spec: CollectionSpec, after: RecordId | None, limit: int, where: Filter) -> list[Record]:
        codec = self._codec(spec)
        cond, params = compile_filter(where, spec, DIALECT)
        if after is not None:
            cond, params = f"id > ? AND {cond}", [after, *params]
        async with self._read(spec.name) as r:
            rows = await r.fetchall(
                f"SELECT {codec.select_cols}, {codec.vector_col} FROM {q(spec.name)} WHERE {cond} ORDER BY id LIMIT ?",
                [*params, limit])
        return self._records(codec, rows)

    # -- operations --------------------------------------------------------

    async def _info(self) -> dict[str, Any]:
        async with self._read() as r:
            vec_version = (await r.fetchall("SELECT vec_version()"))[0][0]
            sqlite_version = (await r.fetchall("SELECT sqlite_version()"))[0][0]
            mode = (await r.fetchall("PRAGMA journal_mode"))[0][0]
            schema = (await r.fetchall(f'SELECT coalesce(max(version), 0) FROM "{SCHEMA_VERSION}"'))[0][0]
            collections = (await r.fetchall(f'SELECT count(*) FROM "{CATALOG}"'))[0][0]
        self.journal_mode = str(mode).lower()
        return {"path": str(self.settings.path), "module": self.driver.name, "sqlite_version": sqlite_version,
                "sqlite_vec_version": vec_version, "journal_mode": self.journal_mode, "schema_version": schema,
                "collections": collections}

    def in_transaction(self) -> bool:
        return self._txn.get() is not None

    async def health(self) -> Health:
        start = time.perf_counter()
        try:
            details = await self._info()
        except (VectorStoreError, self.driver.error) as exc:
            return Health(ok=False, backend=self.name, latency_ms=(time.perf_counter() - start) * 1000,
                          details={"path": str(self.settings.path), "error": str(exc)})
        return Health(ok=True, backend=self.name, latency_ms=(time.perf_counter() - start) * 1000, details=details)

    async def doctor(self) -> list[Check]:
        path = self.settings.path
        drv = self.driver
        checks = [
            Check("backend", True, f"sqlite: {path}"),
            Check("sqlite module", True, f"{drv.label}: {drv.reason}"),
        ]
        try:
            info = await self._info()
        except (VectorStoreError, self.driver.error) as exc:
            checks.append(Check("database", False, f"cannot query {path}: {exc}",
                                "check the file's permissions and that no other process holds a long write lock"))
            return checks
        version = tuple(int(p) for p in str(info["sqlite_version"]).split(".")[:3])
        checks.append(Check(
            "sqlite version", version >= MIN_SQLITE, f"SQLite {info['sqlite_version']}",
            "" if version >= MIN_SQLITE else
            f"SQLite {'.'.join(map(str, MIN_SQLITE))} or newer is needed; pip install -U sqlean.py and set "
            "VECTORSTORE_SQLITE_MODULE=sqlean"))
        checks.append(Check("sqlite-vec", True,
                            f"sqlite-vec {info['sqlite_vec_version']} (package {sqlite_vec_package_version()})"))
        wal = info["journal_mode"] == "wal"
        checks.append(Check(
            "journal mode", wal, f"journal_mode={info['journal_mode']}",
            "" if wal else "WAL could not be enabled (network file systems do not support it); keep the database "
                           "on a local disk so readers and the writer do not block each other"))
        writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
        size = path.stat().st_size if path.exists() else 0
        wal_file = path.with_name(path.name + "-wal")
        wal_size = wal_file.stat().st_size if wal_file.exists() else 0
        checks.append(Check(
            "file", writable,
            f"{size:,} bytes (+ {wal_size:,} bytes of WAL), {'writable' if writable else 'NOT writable'}",
            "" if writable else f"give this user write permission on {path} and {path.parent}"))
        latest = MIGRATIONS[-1][0]
        checks.append(Check(
            "schema", info["schema_version"] == latest, f"schema version {info['schema_version']} (latest {latest})",
            "" if info["schema_version"] == latest else "reopen the store with this vectorstore to migrate it"))
        checks.append(Check("busy timeout", True, f"{self.settings.timeout:g}s; readers: {self.settings.readers}"))
        checks.append(Check("collections", True, f"{info['collections']} collection(s)"))
        return checks

    # -- vectorstore bench (vectorstore.spi.Benchmarkable; the code is in bench.py) -------------

    #: bulk_load() defers nothing: the quantized codes are written with the rows.
    bench_builds_index = False

    def bench_store_options(self, clients: int) -> dict[str, Any]:
        return {}

    async def bench_baseline(self, dim: int, metric: str, workdir: Path) -> Any:
        """A :class:`vectorstore_sqlite.bench.RawSqlite` (sqlite-vec's vec0) in ``workdir``."""
        from vectorstore_sqlite import bench

        return bench.baseline(self.driver, dim, metric, workdir)

    async def bench_server(self) -> Any:
        """A :class:`vectorstore.spi.ServerFacts`: the SQLite module in use."""
        from vectorstore_sqlite import bench

        return bench.server(self.driver)

    async def bench_explain(self, spec: CollectionSpec, query: Vector, k: int) -> None:
        return None  # no server: a search's time is all the caller's

    async def bench_ceiling(self, spec: CollectionSpec, queries: Vector, k: int) -> None:
        return None  # pgbench speaks to PostgreSQL only

    async def bench_discard(self) -> None:
        pass  # the store is a file in the bench's work directory, deleted with it


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _json_ids(ids: Sequence[RecordId]) -> str:
    """Ids as one JSON array parameter (read back by ``json_each``): one bound value, however many ids."""
    return json.dumps(list(ids), ensure_ascii=False)


def _create_private(path: Path) -> None:
    """Create a new database file readable and writable by its owner alone (0600: agent memories
    and watch histories are not for every user of a shared host). SQLite gives the -wal and -shm
    files the database file's permissions. An existing file keeps the mode it has."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise BackendUnavailable(
            f"cannot create the SQLite database {path} ({exc}); choose a path you can write to") from exc
    os.close(fd)
