"""The PostgreSQL backend: psycopg 3 (async) + psycopg-pool, pgvector or ruvector.

Design, in short:

- **Connections.** An ``AsyncConnectionPool`` of autocommit connections; each is
  prepared by the ``vectorstore_prepare_connection`` hook (pgvector's binary
  adapters, JSON codecs) with no round trip. A single read is one round trip; writes
  and searches open their own transaction, pipelined with their statements.
- **Transactions.** ``transaction()`` holds one pooled connection in a contextvar;
  every operation inside (reads too) uses it, and runs in a savepoint so a failed
  operation (say ``DuplicateId``) leaves the caller's transaction usable, as in the
  reference. ``serializable=True`` runs the outermost one at SERIALIZABLE; the
  server's serialization failures and deadlocks, wherever they arise (commit
  included), become ``TransactionConflict``.
- **Search.** One pipelined transaction per query batch: ``set_config(...,
  true)`` (= ``SET LOCAL``) of ``hnsw.ef_search`` and iterative scans, then one
  statement per query. Small collections are searched exactly; larger ones through
  the HNSW index, re-ranked in float64 (pgvector accumulates in float32), with an
  exact re-run when the index returns too few rows (filters never starve results)
  or a tie may cross the k-th place.
- **Writes.** Small batches: a pipelined ``executemany``. Large batches: ``COPY``
  (binary for pgvector, text for ruvector) into a temporary staging table, then one
  ``INSERT ... SELECT ... ON CONFLICT``. Either way one transaction: all or nothing.
- **Collections without vectors** (``dim=None``): a table with no vector column and no HNSW
  index (see :mod:`vectorstore_postgres.queries`); every read and write path leaves the vector
  out, bulk loads have nothing to defer, and a search finds nothing (the core refuses it first).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import inspect
import itertools
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import psycopg
import psycopg.errors
from psycopg import pq, sql
from psycopg.types import TypeInfo
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from vectorstore import registry
from vectorstore.config import StoreConfig
from vectorstore.errors import (
    BackendUnavailable,
    CollectionExists,
    CollectionNotFound,
    DuplicateId,
    ExtensionMissing,
)
from vectorstore.filters import Filter, MatchAll
from vectorstore.records import BatchParts, Hit, Record, RecordBatch, RecordId, Vector, dump_json
from vectorstore.schema import CollectionSpec, FieldType
from vectorstore.scoring import exact_distances
from vectorstore.spi import CeilingStatements, Check, ExplainedSearch, Health, ServerFacts, id_space_exhausted
from vectorstore_postgres import bench, copyrows, migrations
from vectorstore_postgres.connection import (
    CONFLICTS,
    PooledConnection,
    Settings,
    Setup,
    conflict,
    parse_settings,
    remember,
    translate_errors,
    translated,
    unavailable,
)
from vectorstore_postgres.dialect import DIALECTS, Dialect, PgVector, RuVector
from vectorstore_postgres.plugin import CAPABILITIES
from vectorstore_postgres.queries import ID_COLUMN, CollectionSQL, table_name

log = logging.getLogger("vectorstore.postgres")


#: Extra rows fetched beyond k and re-ranked in float64: the server ranks with float32
#: arithmetic, so near-ties around the k-th place can come back in the wrong order.
RERANK_MARGIN = 8
#: hnsw.max_scan_tuples of an iterative index scan (at least 50 per row fetched).
MAX_SCAN_TUPLES = 20_000
#: Seconds a collection's row estimate is trusted before a search reads it again. A collection
#: known to hold at least ``exact_search_below`` rows is searched through its index without the
#: per-statement size gate (a catalog lookup on every query).
ESTIMATE_TTL = 30.0

AConn = psycopg.AsyncConnection[Any]


async def detect_dialect(conn: AConn, settings: Settings) -> Dialect:
    """Find the vector extension; create pgvector if neither is installed."""
    found = await _installed_extensions(conn)
    if not found:
        try:
            async with conn.transaction():
                # Serialise concurrent openers: CREATE EXTENSION IF NOT EXISTS still races.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('vectorstore:extension', 0))")
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.QueryCanceled:
            raise
        except psycopg.Error as exc:
            raise ExtensionMissing(
                f"the database at {settings.target} has neither the pgvector ('vector') nor the 'ruvector' extension, "
                f"and creating pgvector failed: {str(exc).strip().splitlines()[0]}. Install pgvector on the server "
                "(e.g. apt install postgresql-<version>-pgvector, or the pgvector/pgvector Docker image), then run "
                "CREATE EXTENSION vector; in this database as a superuser or the database owner; or use the "
                "ruvector image, whose database has CREATE EXTENSION ruvector") from None
        found = await _installed_extensions(conn)
    if "vector" in found:
        return PgVector(extension_version=found["vector"])
    version = found["ruvector"]
    cur = await conn.execute("SELECT amname FROM pg_am WHERE amname IN ('ruhnsw', 'hnsw') ORDER BY amname DESC")
    methods = [row[0] for row in await cur.fetchall()]
    method = "ruhnsw" if "ruhnsw" in methods else "hnsw"
    # Which sign does <#> have here? 0.3.0 returns +dot; a later release may follow pgvector.
    cur = await conn.execute("SELECT '[1]'::ruvector <#> '[1]'::ruvector")
    row = await cur.fetchone()
    sign = 1 if row is not None and float(row[0]) > 0 else -1
    return RuVector(extension_version=version, access_method=method, ip_sign=sign)


async def _installed_extensions(conn: AConn) -> dict[str, str]:
    cur = await conn.execute(
        "SELECT extname, extversion FROM pg_extension WHERE extname = ANY(%s)", [list(DIALECTS)])
    return {name: version for name, version in await cur.fetchall()}


async def store_exists(config: StoreConfig) -> bool:
    """Whether the schema holds a vectorstore catalog, found out read-only (opening would create it)."""
    settings = parse_settings(config)
    with translate_errors(settings):
        async with await psycopg.AsyncConnection.connect(settings.conninfo, autocommit=True,
                                                         **settings.connect_kwargs()) as conn:
            cur = await conn.execute("SELECT to_regclass(%s)",
                                     [sql.Identifier(settings.schema, "vs_collections").as_string(conn)])
            row = await cur.fetchone()
    return row is not None and row[0] is not None


async def open_backend(config: StoreConfig) -> PostgresBackend:
    """Connect, detect the dialect, migrate, and open the pool."""
    settings = parse_settings(config)
    kwargs = settings.connect_kwargs()
    try:
        boot = await psycopg.AsyncConnection.connect(settings.conninfo, autocommit=True, **kwargs)
    except psycopg.OperationalError as exc:
        raise unavailable(settings, exc) from None
    try:
        with translate_errors(settings):
            dialect = await detect_dialect(boot, settings)
            await migrations.migrate(boot, settings.schema)
            for pending in await pending_indexes(boot, settings.schema):
                if not pending.running:
                    detail, fix = interrupted_message(pending)
                    log.warning("%s. To fix: %s", detail, fix)
            info = await TypeInfo.fetch(boot, "vector") if dialect.binary_vectors else None
            if dialect.binary_vectors and info is None:
                raise ExtensionMissing(f"the pgvector extension is installed at {settings.target} but its 'vector' "
                                       "type is not on the search_path; add the extension's schema to search_path")
    finally:
        await boot.close()
    backend = PostgresBackend(settings, Setup(dialect=dialect, vector_info=info))
    await backend._open_pool()
    return backend


@attrs.define(slots=True)
class _Held:
    """The open transaction, shared by every operation awaited inside it."""

    conn: AConn
    #: The serialization failure or deadlock it met: from then on it can only roll back.
    lost: psycopg.Error | None = None

    def check(self) -> None:
        if self.lost is not None:
            raise conflict(self.lost)


def _search_cursor(conn: AConn, reuse: bool) -> psycopg.AsyncCursor[Any]:
    """The cursor for a search's statements: the pooled connection's kept one when the caller
    holds ``conn`` alone (``reuse``), else a new binary cursor."""
    return conn.search_cursor() if reuse and isinstance(conn, PooledConnection) else conn.cursor(binary=True)


def _parts(batch: RecordBatch | BatchParts) -> Iterable[RecordBatch]:
    """The batches to write: a streamed write's parts, validated as they are iterated, or the one batch."""
    return batch if isinstance(batch, BatchParts) else (batch,)


class PostgresBackend:
    name = "postgres"
    capabilities = CAPABILITIES

    def __init__(self, settings: Settings, setup: Setup) -> None:
        self.settings = settings
        #: The cross-cutting layer's default deadline per call: the server cancels a statement
        #: after statement_timeout; 5 s more covers the pool and the round trips.
        self.deadline_hint = settings.statement_timeout + 5.0 if settings.statement_timeout else None
        self.setup = setup
        self.dialect = setup.dialect
        self._held: contextvars.ContextVar[_Held | None] = contextvars.ContextVar(
            f"vectorstore_postgres_txn_{id(self)}", default=None)
        self._sql: dict[str, CollectionSQL] = {}
        # The last spec object seen and its SQL: collections pass the same spec on every call.
        self._last_sql: tuple[CollectionSpec, CollectionSQL] | None = None
        self._default_settings = self.dialect.search_settings(settings.ef_search, MAX_SCAN_TUPLES)
        self._settings_cache: dict[tuple[int | None, int, bool], list[tuple[str, str]]] = {}
        #: Row estimates by collection name: (rows, time.monotonic() when read).
        self._estimates: dict[str, tuple[float, float]] = {}
        self._stage_ids = itertools.count()
        self._pool: AsyncConnectionPool[PooledConnection] = AsyncConnectionPool(
            settings.conninfo, connection_class=PooledConnection, min_size=settings.pool_min,
            max_size=settings.pool_max, kwargs={"autocommit": True, **settings.connect_kwargs()},
            configure=self._configure, timeout=settings.connect_timeout, open=False,
            name=f"vectorstore:{settings.target}")

    async def _open_pool(self) -> None:
        try:
            await self._pool.open(wait=self.settings.pool_min > 0, timeout=self.settings.connect_timeout)
        except Exception as exc:
            await self._pool.close()
            raise unavailable(self.settings, exc) from exc

    async def _configure(self, conn: AConn) -> None:
        remember(conn, self.setup)
        for result in registry.prepare_connection(conn, "postgres"):
            if inspect.isawaitable(result):
                await result
        # Session defaults for searches (see _search_scope): most searches then need no SET.
        calls = ", ".join("set_config(%s, %s, false)" for _ in self._default_settings)
        await conn.execute(f"SELECT {calls}", [v for pair in self._default_settings for v in pair])

    # -- connections -------------------------------------------------------------

    def _q(self, spec: CollectionSpec) -> CollectionSQL:
        last = self._last_sql
        if last is not None and last[0] is spec:
            return last[1]
        found = self._q_lookup(spec)
        self._last_sql = (spec, found)
        return found

    def _q_lookup(self, spec: CollectionSpec) -> CollectionSQL:
        # CollectionSpec holds a dict (unhashable): key the cache by its canonical JSON.
        key = dump_json(spec.to_dict())
        found = self._sql.get(key)
        if found is None:
            found = self._sql[key] = CollectionSQL(self.settings.schema, spec, self.dialect)
        return found

    @contextlib.asynccontextmanager
    async def _connection(self, collection: str | None = None) -> AsyncIterator[AConn]:
        """A connection: the transaction's (inside a savepoint) or a pooled one."""
        with translate_errors(self.settings, collection):
            held = self._held.get()
            if held is not None:
                async with self._savepoint(held) as conn:
                    yield conn
                return
            async with self._pool.connection() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _savepoint(self, held: _Held) -> AsyncIterator[AConn]:
        held.check()
        try:
            async with held.conn.transaction():
                yield held.conn
        except CONFLICTS as exc:
            held.lost = exc
            raise

    @contextlib.asynccontextmanager
    async def transaction(self, serializable: bool = False) -> AsyncIterator[None]:
        held = self._held.get()
        if held is not None:  # nested: a savepoint, at its parent's isolation level
            with translate_errors(self.settings):
                async with self._savepoint(held):
                    yield
            return
        # translate_errors also covers the COMMIT on the way out, where a serializable
        # transaction most often learns that it lost (TransactionConflict).
        with translate_errors(self.settings):
            async with self._pool.connection() as conn, conn.transaction():
                if serializable:
                    # Must precede every query of the transaction; ends with it (the pooled
                    # connection keeps its default level).
                    await conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", prepare=True)
                state = _Held(conn)
                token = self._held.set(state)
                try:
                    yield
                finally:
                    self._held.reset(token)
                # Never commit after a lost race, even when the block caught the TransactionConflict.
                state.check()

    def _table_sql(self) -> sql.Composable:
        return sql.Identifier(self.settings.schema, migrations.CATALOG_TABLE)

    # -- catalog ---------------------------------------------------------------

    async def create_collection(self, spec: CollectionSpec) -> None:
        q = self._q(spec)
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(sql.SQL(
                "INSERT INTO {} (name, spec, table_name) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING "
                "RETURNING name").format(self._table_sql()), [spec.name, Jsonb(spec.to_dict()), table_name(spec.name)])
            if await cur.fetchone() is None:
                raise CollectionExists(f"collection {spec.name!r} already exists")
            await conn.execute(q.create_table())
            for statement in q.create_field_indexes():
                await conn.execute(statement)
            index = q.create_index()
            if index is not None:
                await conn.execute(index)

    async def get_collection(self, name: str) -> CollectionSpec:
        async with self._connection() as conn:
            cur = await conn.execute(sql.SQL("SELECT spec FROM {} WHERE name = %s").format(self._table_sql()),
                                     [name], prepare=True)
            row = await cur.fetchone()
        if row is None:
            raise CollectionNotFound.named(name)
        return CollectionSpec.from_dict(row[0])

    async def list_collections(self) -> list[CollectionSpec]:
        async with self._connection() as conn:
            cur = await conn.execute(sql.SQL("SELECT spec FROM {} ORDER BY name").format(self._table_sql()))
            rows = await cur.fetchall()
        return [CollectionSpec.from_dict(row[0]) for row in rows]

    async def drop_collection(self, name: str) -> bool:
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s RETURNING table_name").format(
                self._table_sql()), [name])
            row = await cur.fetchone()
            if row is None:
                return False
            await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.Identifier(self.settings.schema, row[0])))
            await conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(
                sql.Identifier(self.settings.schema, "vs_sequences")), [name])
        # Forget cached SQL of any spec with this name (a re-created one may differ).
        for key in [key for key, q in self._sql.items() if q.spec.name == name]:
            del self._sql[key]
        self._last_sql = None
        self._estimates.pop(name, None)
        return True

    async def allocate_ids(self, spec: CollectionSpec, n: int, after: int) -> list[int]:
        # One statement: the row lock on the sequence serialises concurrent allocations
        # until the surrounding transaction ends.
        q = self._q(spec)
        statement = sql.SQL(
            "INSERT INTO {seq} AS s (name, last) "
            "VALUES (%(name)s, greatest((SELECT coalesce(max({id}), 0) FROM {table}), %(after)s) + %(n)s) "
            "ON CONFLICT (name) DO UPDATE SET last = greatest(s.last, "
            "(SELECT coalesce(max({id}), 0) FROM {table}), %(after)s) + %(n)s "
            "RETURNING last").format(seq=sql.Identifier(self.settings.schema, "vs_sequences"),
                                    id=sql.Identifier(ID_COLUMN), table=q.table)
        try:
            async with self._connection(spec.name) as conn, conn.transaction():
                cur = await conn.execute(statement, {"name": spec.name, "after": after, "n": n})
                row = await cur.fetchone()
        except psycopg.errors.NumericValueOutOfRange:
            # The sequence would pass bigint: nothing moved (the statement's transaction is gone).
            raise id_space_exhausted(spec.name, n) from None
        assert row is not None
        last = int(row[0])
        if n == 0:
            return []
        return list(range(last - n + 1, last + 1))

    async def last_id(self, spec: CollectionSpec) -> int:
        q = self._q(spec)
        statement = sql.SQL(
            "SELECT greatest((SELECT coalesce(max({id}), 0) FROM {table}), "
            "(SELECT coalesce(max(last), 0) FROM {seq} WHERE name = %s))").format(
            id=sql.Identifier(ID_COLUMN), table=q.table, seq=sql.Identifier(self.settings.schema, "vs_sequences"))
        async with self._connection(spec.name) as conn:
            cur = await conn.execute(statement, [spec.name])
            row = await cur.fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    # -- writes ----------------------------------------------------------------

    def _row(self, spec: CollectionSpec, batch: RecordBatch, i: int) -> list[Any]:
        """One row of :attr:`CollectionSQL.columns`: no vector column without vectors; None (NULL,
        also in COPY) for a record without a vector."""
        row: list[Any] = [batch.ids[i]]
        if spec.dim is not None:
            row.append(self.dialect.encode(batch.vectors[i], spec.dim) if batch.has_vector(i) else None)
        fields = batch.fields[i]
        for name, kind in spec.fields.items():
            value = fields.get(name)
            if kind is FieldType.JSON and value is not None:
                value = Jsonb(value)
            row.append(value)
        row.append(Jsonb(batch.metadata[i]))
        return row

    async def upsert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        await self._write(spec, batch, replace=True)

    async def insert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        await self._write(spec, batch, replace=False)

    async def write_parts(self, spec: CollectionSpec, parts: BatchParts, *, replace: bool) -> None:
        # (The COPY sends each part as it comes: the server stores one while the next is checked.)
        await self._write(spec, parts, replace=replace)

    async def _write(self, spec: CollectionSpec, batch: RecordBatch | BatchParts, *, replace: bool) -> None:
        q = self._q(spec)
        inserted: set[RecordId] = set()
        async with self._connection(spec.name) as conn:
            try:
                async with conn.transaction():
                    if len(batch) >= self.settings.copy_threshold:
                        inserted = await self._write_copy(conn, q, batch, replace=replace)
                    else:
                        inserted = await self._write_rows(conn, q, batch, replace=replace)
                    if not replace and len(inserted) < len(batch):
                        raise _Duplicates()
            except _Duplicates:
                existing = [rid for rid in batch.ids if rid not in inserted]
                raise DuplicateId(
                    f"{len(existing)} id(s) already exist in {spec.name!r}: {existing[:10]!r}; nothing was "
                    "written. Use upsert() to replace records", ids=existing) from None

    async def _write_rows(self, conn: AConn, q: CollectionSQL, batch: RecordBatch | BatchParts, *,
                          replace: bool) -> set[RecordId]:
        rows = [self._row(q.spec, part, i) for part in _parts(batch) for i in range(len(part))]
        async with conn.cursor() as cur:
            if replace:
                # executemany runs in pipeline mode: one round trip for the whole batch.
                await cur.executemany(q.upsert_row, rows)
                return set()
            await cur.executemany(q.insert_row, rows, returning=True)
            inserted: set[RecordId] = set()
            while True:
                inserted.update(r[0] for r in await cur.fetchall())
                if not cur.nextset():
                    break
            return inserted

    async def _write_copy(self, conn: AConn, q: CollectionSQL, batch: RecordBatch | BatchParts, *,
                          replace: bool) -> set[RecordId]:
        n = len(batch)
        # A bulk write is legitimately long (HNSW insertion runs at a few hundred rows/s
        # for 384-d vectors): the statement timeout applies per 1,000 rows of the batch.
        budget = self.settings.statement_timeout * max(1, -(-n // 1000))
        await conn.execute("SELECT set_config('statement_timeout', %s, true)",
                           [f"{round(budget * 1000)}ms" if self.settings.statement_timeout else "0"])
        rebuild = False
        if q.has_index and n >= self.settings.rebuild_index_above:
            cur = await conn.execute(q.estimate_rows_and_index())
            row = await cur.fetchone()
            # Building the graph once is ~4x faster than inserting row by row; worth it
            # when the batch is at least as big as the table (an initial load). It holds
            # an exclusive lock on the table until the transaction commits. Not during a
            # bulk load, which has dropped the index and builds it at its end.
            rebuild = row is not None and float(row[0]) <= n and bool(row[1])
        clock = [time.perf_counter()]
        inserted: set[RecordId] = set()
        async with conn.cursor() as cur:
            if rebuild:  # (the field B-trees too: built once after, as by bulk_load)
                await cur.execute(q.drop_index())
                for statement in q.drop_field_indexes():
                    await cur.execute(statement)
            # The fast path: none of the ids exists yet, so COPY goes straight into the table
            # (in a savepoint: a concurrent writer may still take an id first).
            direct = not await self._any_id_exists(cur, q, batch.ids)
            if direct:
                try:
                    async with conn.transaction():
                        await self._copy(cur, q.copy_table(), q, batch)
                    inserted = set(batch.ids)
                except psycopg.errors.UniqueViolation:
                    direct = False
            clock.append(time.perf_counter())
            if not direct:
                stage = f"vs_stage_{next(self._stage_ids)}"
                await cur.execute(q.create_stage(stage))
                await self._copy(cur, q.copy_stage(stage), q, batch)
                clock[-1] = time.perf_counter()
                await cur.execute(q.merge_stage(stage, replace=replace))
                if not replace:
                    inserted = {r[0] for r in await cur.fetchall()}
                await cur.execute(q.drop_stage(stage))
            clock.append(time.perf_counter())
            if rebuild:
                for statement in q.create_field_indexes():
                    await cur.execute(statement)
                await self._build_index(cur, q, n)
                clock.append(time.perf_counter())
        log.debug("bulk %s of %d rows into %s: copy %.2fs%s, merge %.2fs%s", "upsert" if replace else "insert", n,
                  q.spec.name, clock[1] - clock[0], " (straight into the table)" if direct else "", clock[2] - clock[1],
                  f", index rebuild {clock[3] - clock[2]:.2f}s" if rebuild else "")
        return inserted

    async def _any_id_exists(self, cur: psycopg.AsyncCursor[Any], q: CollectionSQL, ids: list[RecordId]) -> bool:
        """Whether one of ``ids`` is in the table: first one probe for the range the ids span
        (nothing there: an initial load, or ids appended after the existing ones), then, only
        if something is, the exact check."""
        for statement, params in ((q.any_id_between(), [min(ids), max(ids)]), (q.any_id_exists(), [ids])):
            await cur.execute(statement, params, prepare=False)  # once per bulk write: not worth preparing
            row = await cur.fetchone()
            if row is not None and not row[0]:
                return False
        return True

    async def _copy(self, cur: psycopg.AsyncCursor[Any], statement: str, q: CollectionSQL,
                    batch: RecordBatch | BatchParts) -> None:
        """COPY every row of the batch: binary data built a part at a time with NumPy (see
        copyrows), or row by row through psycopg's adapters (text-format dialects, array fields)."""
        binary = self.dialect.copy_format == "binary"
        async with cur.copy(statement) as copy:
            if binary and copyrows.can_encode(q.spec):
                for data in copyrows.encode(_parts(batch)):
                    await copy.write(data)
                return
            if binary:
                copy.set_types(q.copy_types(self.dialect.type_name))  # (array fields: psycopg's dumpers)
            for part in _parts(batch):
                for i in range(len(part)):
                    await copy.write_row(self._row(q.spec, part, i))

    async def _build_index(self, cur: psycopg.AsyncCursor[Any], q: CollectionSQL, rows: int, *,
                           if_not_exists: bool = False) -> None:
        """Build the collection's HNSW index in the current transaction, then ANALYZE the table."""
        index = q.create_index(if_not_exists=if_not_exists)
        assert index is not None
        # Never lower the server's setting; raise it to what the graph needs, up to
        # the index_build_memory option, for this transaction only.
        want = min(self.settings.index_build_memory, _graph_bytes(q.spec, rows))
        await cur.execute(
            "SELECT set_config('maintenance_work_mem', (GREATEST(pg_size_bytes(current_setting("
            "'maintenance_work_mem')), %s::bigint) / 1024)::text || 'kB', true)", [want])
        await cur.execute(index)
        # Fresh statistics: the planner and the search's size gate read them.
        await cur.execute(q.analyze())

    # -- bulk loads ----------------------------------------------------------------
    #
    # A bulk load drops the collection's HNSW index and builds it once at the end. Its state:
    #
    # - ``vs_collections.index_pending_since`` (durable): set in the transaction that drops the
    #   index, cleared in the one that builds it. Crash-safe: the index is absent exactly when set.
    # - a session-level *shared* advisory lock per collection, held by every running bulk load on
    #   a connection of its own (not the pool's): PostgreSQL releases it when that session ends,
    #   so a process that dies inside the block leaves "pending" with no lock holder -- which is
    #   how doctor() and opening the store tell an interrupted load from a running one.
    # - at the end, a load releases its shared lock and builds only if it then gets the
    #   *exclusive* lock (no other bulk load of the collection runs; it is held until the build
    #   commits, so a load starting meanwhile waits for the index and then drops it again).

    def _bulk_key(self, name: str) -> str:
        return bulk_key(self.settings.schema, name)

    async def _dedicated(self) -> AConn:
        """A connection outside the pool, for the lifetime of one bulk load."""
        try:
            conn = await psycopg.AsyncConnection.connect(self.settings.conninfo, autocommit=True,
                                                         **self.settings.connect_kwargs())
        except psycopg.OperationalError as exc:
            raise unavailable(self.settings, exc) from None
        try:
            await self._configure(conn)  # prepared like a pooled one (plugins' hooks run on it too)
        except BaseException:
            await conn.close()
            raise
        return conn

    @contextlib.asynccontextmanager
    async def bulk_load(self, spec: CollectionSpec) -> AsyncIterator[None]:
        q = self._q(spec)
        if not q.has_index:
            yield  # no HNSW index under this dialect / dimension: nothing to defer
            return
        key = self._bulk_key(spec.name)
        lease = await self._dedicated()
        try:
            with translate_errors(self.settings, spec.name):
                async with lease.transaction():
                    # Waits (without a statement timeout) while another load builds the index.
                    await lease.execute("SELECT set_config('statement_timeout', '0', true)")
                    await lease.execute("SELECT pg_advisory_lock_shared(hashtextextended(%s, 0))", [key])
                async with lease.transaction():
                    cur = await lease.execute(sql.SQL(
                        "UPDATE {} SET index_pending_since = coalesce(index_pending_since, now()) "
                        "WHERE name = %s RETURNING spec").format(self._table_sql()), [spec.name])
                    if await cur.fetchone() is None:
                        raise CollectionNotFound.named(spec.name)
                    await lease.execute(q.drop_index())
                    for statement in q.drop_field_indexes():
                        await lease.execute(statement)
            log.info("bulk load of %s: HNSW and field indexes dropped; they are built when the load ends", spec.name)
        except BaseException:
            await lease.close()
            raise
        failed = True
        try:
            yield
            failed = False
        finally:
            try:
                await self._end_bulk_load(lease, spec.name)
            except Exception:
                if not failed:
                    raise
                # Keep the caller's exception; the index stays pending and doctor() reports it.
                log.exception("bulk load of %s: building its HNSW index after the failed load failed too; "
                              "it is still missing (see vectorstore doctor)", spec.name)
            finally:
                await lease.close()

    async def _end_bulk_load(self, lease: AConn, name: str) -> None:
        key = self._bulk_key(name)
        with translate_errors(self.settings, name):
            conn = lease
            try:
                await lease.execute("SELECT pg_advisory_unlock_shared(hashtextextended(%s, 0))", [key])
            except psycopg.OperationalError:
                # The session is gone (and its lock with it): finish on a fresh connection.
                conn = await self._dedicated()
            try:
                built = await self._build_pending(conn, name)
            finally:
                if conn is not lease:
                    await conn.close()
        if built is None:
            log.info("bulk load of %s ended; another bulk load of it still runs and builds the index", name)

    async def _build_pending(self, conn: AConn, name: str) -> bool | None:
        """Build the index if it is pending and no bulk load of the collection runs. Returns True if
        it was built, False if nothing was pending, None if a bulk load still runs."""
        async with conn.transaction():
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                                     [self._bulk_key(name)])
            row = await cur.fetchone()
            if row is None or not row[0]:
                return None
            cur = await conn.execute(sql.SQL(
                "SELECT spec FROM {} WHERE name = %s AND index_pending_since IS NOT NULL FOR UPDATE").format(
                self._table_sql()), [name])
            row = await cur.fetchone()
            if row is None:
                return False  # dropped meanwhile, or built by someone else
            q = self._q(CollectionSpec.from_dict(row[0]))
            if q.has_index:
                # Counted, not estimated: right after a load the planner's estimate and the
                # statistics collector's live-tuple count can both still say ~0.
                cur = await conn.execute(q.count_rows())
                counted = await cur.fetchone()
                rows = int(counted[0]) if counted is not None else 0
                # A build is legitimately long: the statement timeout applies per 1,000 rows.
                budget = self.settings.statement_timeout * max(1, -(-rows // 1000))
                await conn.execute("SELECT set_config('statement_timeout', %s, true)",
                                   [f"{round(budget * 1000)}ms" if self.settings.statement_timeout else "0"])
                start = time.perf_counter()
                for statement in q.create_field_indexes():  # (IF NOT EXISTS: a repair may find some built)
                    await conn.execute(statement)
                async with conn.cursor() as cur:
                    await self._build_index(cur, q, rows, if_not_exists=True)
                log.info("bulk load of %s ended: indexes built over ~%d rows in %.1fs", name, rows,
                         time.perf_counter() - start)
            await conn.execute(sql.SQL("UPDATE {} SET index_pending_since = NULL WHERE name = %s").format(
                self._table_sql()), [name])
        return True

    async def delete(self, spec: CollectionSpec, ids: Sequence[RecordId] | None, where: Filter | None) -> int:
        q = self._q(spec)
        async with self._connection(spec.name) as conn:
            if ids is not None:
                cur = await conn.execute(q.delete_ids, [list(ids)], prepare=True)
            else:
                where = where or MatchAll()
                statement, params = q.delete_where(where)
                # Filtered: planned for its values (a selective filter reads its field's B-tree).
                cur = await conn.execute(statement, params, prepare=isinstance(where, MatchAll))
            return cur.rowcount

    # -- reads -----------------------------------------------------------------

    def _record(self, spec: CollectionSpec, row: Sequence[Any]) -> Record:
        rid, vector, fields, metadata = self._decode(spec, row)
        return Record(id=rid, vector=vector, fields=fields, metadata=metadata)

    def _decode(self, spec: CollectionSpec, row: Sequence[Any]) -> tuple[RecordId, Vector | None, dict[str, Any],
                                                                         dict[str, Any]]:
        fields: dict[str, Any] = {}
        for offset, (name, kind) in enumerate(spec.fields.items(), start=2):
            value = row[offset]
            if kind is FieldType.TIMESTAMP and value is not None:
                value = value.astimezone(dt.UTC)
            fields[name] = value
        # (A collection without vectors selects NULL in the vector's place.)
        vector = None if row[1] is None or spec.dim is None else self.dialect.decode(row[1], spec.dim)
        return row[0], vector, fields, row[-1]

    async def get(self, spec: CollectionSpec, ids: Sequence[RecordId]) -> list[Record]:
        q = self._q(spec)
        async with self._connection(spec.name) as conn:
            cur = conn.cursor(binary=True)
            await cur.execute(q.get, [list(ids)], prepare=True)
            rows = await cur.fetchall()
        found = {row[0]: row for row in rows}
        return [self._record(spec, found[rid]) for rid in ids if rid in found]

    async def count(self, spec: CollectionSpec, where: Filter) -> int:
        statement, params = self._q(spec).count(where)
        async with self._connection(spec.name) as conn:
            # Filtered: planned for its values (a selective filter reads its field's B-tree).
            cur = await conn.execute(statement, params, prepare=isinstance(where, MatchAll))
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def page(self, spec: CollectionSpec, after: RecordId | None, limit: int, where: Filter) -> list[Record]:
        q = self._q(spec)
        async with self._connection(spec.name) as conn:
            cur = conn.cursor(binary=True)
            if not isinstance(where, MatchAll):
                statement, params = q.page_where(where, after is not None)
                await cur.execute(statement, [*([after] if after is not None else []), *params, limit],
                                  prepare=False)  # (planned for its values, as count's)
            elif after is None:
                await cur.execute(q.page_first, [limit], prepare=True)
            else:
                await cur.execute(q.page_after, [after, limit], prepare=True)
            rows = await cur.fetchall()
        return [self._record(spec, row) for row in rows]

    # -- search ----------------------------------------------------------------

    async def search(self, spec: CollectionSpec, queries: Vector, k: int, where: Filter,
                     max_distance: float | None, ef_search: int | None, include_vector: bool) -> list[list[Hit]]:
        if spec.dim is None:  # (the core refuses it first) no record of it is ever a hit
            return [[] for _ in range(len(queries))]
        q = self._q(spec)
        limits = (k + RERANK_MARGIN, k + 1)
        vectors = list(queries)  # (the rows of the matrix, taken once)
        plans = [self.dialect.index_usable(query, limits[1]) for query in vectors]
        rows = await self._run_search(q, vectors, plans, limits, where, ef_search, include_vector)
        results: list[list[Hit] | None] = []
        redo: list[int] = []
        for i, (query, query_rows) in enumerate(zip(vectors, rows, strict=True)):
            hits = self._rank(q, query, query_rows, k, limits, max_distance, include_vector)
            if hits is None:
                redo.append(i)
            results.append(hits)
        if redo:
            # The index answered with too few rows or an unresolved tie: run those exactly.
            exact_rows = await self._run_search(q, [vectors[i] for i in redo], [False] * len(redo), limits, where,
                                                ef_search, include_vector)
            for i, query_rows in zip(redo, exact_rows, strict=True):
                results[i] = self._rank(q, vectors[i], query_rows, k, limits, max_distance, include_vector)
        return [hits or [] for hits in results]

    async def explain_search(self, spec: CollectionSpec, query: Vector, k: int = 10, where: Filter | None = None,
                             *, analyze: bool = True) -> dict[str, Any]:
        """PostgreSQL's plan (``EXPLAIN ... FORMAT JSON``) of the statement :meth:`search` sends
        for one query with the default settings. With ``analyze`` the server runs it, and the
        plan carries its own timings (``"Execution Time"``, in ms) and buffer counts: what a
        search costs the server, without the client or the network."""
        async with self._connection(spec.name) as conn:
            statement, params = await self._search_call(conn, spec, query, k, where)
            options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
            cur = await conn.execute(f"EXPLAIN ({options}) {statement}", params)
            row = await cur.fetchone()
        assert row is not None
        plan: dict[str, Any] = row[0][0]
        return plan

    async def search_sql(self, spec: CollectionSpec, query: Vector, k: int = 10, where: Filter | None = None) -> str:
        """The statement :meth:`search` sends for one query with the default settings, its
        values written in as SQL literals: for tools that cannot bind them (the bench runs it
        from pgbench). Run it in a session with :attr:`search_session_settings`."""
        async with self._connection(spec.name) as conn:
            statement, params = await self._search_call(conn, spec, query, k, where)
            return psycopg.AsyncClientCursor(conn).mogrify(statement, params)

    @property
    def search_session_settings(self) -> list[tuple[str, str]]:
        """The settings every pooled connection starts with, as (name, value): a search with the
        default settings runs under these."""
        return list(self._default_settings)

    async def _search_call(self, conn: AConn, spec: CollectionSpec, query: Vector, k: int,
                           where: Filter | None) -> tuple[str, list[Any]]:
        """The statement and parameters of :meth:`search` for one query with the default settings."""
        q = self._q(spec)
        limits = (k + RERANK_MARGIN, k + 1)
        indexed = self.dialect.index_usable(query, limits[1])
        gated = await self._gated(conn, q) if indexed else False
        statement, fparams, uses_index = q.search(where or MatchAll(), indexed=indexed, limits=limits, gated=gated,
                                                  vector=False)
        return statement, self._params(q, query, fparams, uses_index, gated)

    @contextlib.asynccontextmanager
    async def _search_scope(self, conn: AConn, ef_search: int | None, fetch: int,
                            filtered: bool = False) -> AsyncIterator[None]:
        """The search settings for one batch of statements, sent in one pipeline.

        Every connection starts with the default search settings (the ``ef_search`` option,
        :data:`MAX_SCAN_TUPLES`) as session settings (see :meth:`_configure`), so a search that
        needs nothing else sends its statements alone: no BEGIN, no SET, no COMMIT. Otherwise the
        batch runs in one pipelined transaction whose ``set_config(..., true)`` (= ``SET LOCAL``)
        ends with it, so the session never keeps another value: BEGIN, the settings, the statements
        and COMMIT leave in one flush (COMMIT, not ROLLBACK: psycopg drops every prepared statement
        on ROLLBACK).
        Inside a caller's transaction a rolled-back savepoint ends the settings instead.
        """
        settings = self._search_settings(ef_search, fetch, filtered)
        if settings is self._default_settings:
            async with conn.pipeline():
                yield
            return
        calls = ", ".join("set_config(%s, %s, true)" for _ in settings)
        statement = f"SELECT {calls}"
        values = [v for pair in settings for v in pair]
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            async with conn.pipeline(), conn.transaction(force_rollback=True):
                await conn.execute(statement, values, prepare=True)
                yield
            return
        try:
            async with conn.pipeline():
                await conn.execute("BEGIN")
                await conn.execute(statement, values, prepare=True)
                yield
                await conn.execute("COMMIT")
        except BaseException:
            if conn.info.transaction_status != pq.TransactionStatus.IDLE and not conn.closed:
                await conn.execute("ROLLBACK")
            raise

    def _search_settings(self, ef_search: int | None, fetch: int, filtered: bool = False) -> list[tuple[str, str]]:
        """The settings a search needs; the very list :attr:`_default_settings` when they are the
        session defaults (remembered per ``(ef_search, fetch, filtered)``). A filtered batch
        plans each statement for its values (``plan_cache_mode``: psycopg prepares a statement
        run often enough, and a prepared statement would keep one plan for every value)."""
        key = (ef_search, fetch, filtered)
        found = self._settings_cache.get(key)
        if found is None:
            ef = max(ef_search or self.settings.ef_search, fetch)
            found = self.dialect.search_settings(ef, scan_tuples=max(MAX_SCAN_TUPLES, 50 * fetch))
            if filtered:
                found.append(("plan_cache_mode", "force_custom_plan"))
            if found == self._default_settings:
                found = self._default_settings
            if len(self._settings_cache) < 4096:
                self._settings_cache[key] = found
        return found

    def _params(self, q: CollectionSQL, query: Vector, fparams: list[Any], uses_index: bool,
                gated: bool) -> list[Any]:
        # (In the index branch the distance in the select list takes the vector first.)
        assert q.spec.dim is not None, "a collection without vectors is never searched"
        vec = self.dialect.encode(query, q.spec.dim)
        if uses_index and gated:
            gate = self.settings.exact_search_below
            return [gate, *fparams, vec, vec, gate, *fparams]
        if uses_index:
            return [vec, *fparams]
        return [*fparams, vec]

    async def _gated(self, conn: AConn, q: CollectionSQL) -> bool:
        """Whether the index statement must carry the size gate (the table may be small)."""
        gate = self.settings.exact_search_below
        if gate == 0 or not q.has_index:
            return False
        now = time.monotonic()
        found = self._estimates.get(q.spec.name)
        if found is None or now - found[1] > ESTIMATE_TTL:
            cur = await conn.execute(q.estimate_rows(), prepare=True)
            row = await cur.fetchone()
            found = self._estimates[q.spec.name] = (float(row[0]) if row and row[0] is not None else 0.0, now)
        return found[0] < gate

    async def _run_search(self, q: CollectionSQL, queries: Sequence[Vector], plans: list[bool], limits: tuple[int, int],
                          where: Filter, ef_search: int | None, include_vector: bool) -> list[list[Any]]:
        if self._held.get() is not None:  # inside a transaction: its connection, in a savepoint
            async with self._connection(q.spec.name) as conn:
                return await self._search_on(conn, q, queries, plans, limits, where, ef_search, include_vector,
                                             reuse=False)
        # The hot path: a pooled connection without _connection's two context-manager layers
        # (measured at ~40 us of a ~1 ms search), nor pool.connection()'s (its `async with conn`
        # commits, a no-op in autocommit that still takes the connection's lock); errors
        # translated the same way. putconn() discards a connection left mid-statement.
        try:
            conn = await self._pool.getconn()
            try:
                return await self._search_on(conn, q, queries, plans, limits, where, ef_search, include_vector,
                                             reuse=True)
            finally:
                await self._pool.putconn(conn)
        except Exception as exc:
            typed = translated(exc, self.settings, q.spec.name)
            if typed is None:
                raise
            raise typed from typed.__cause__

    async def _search_on(self, conn: AConn, q: CollectionSQL, queries: Sequence[Vector], plans: list[bool],
                         limits: tuple[int, int], where: Filter, ef_search: int | None,
                         include_vector: bool, *, reuse: bool) -> list[list[Any]]:
        """The candidate rows of each query. With ``reuse`` (the caller holds ``conn`` alone) one
        query runs its prepared statement without a cursor, and a batch sharing one statement
        runs on the connection's kept cursor (both kept by :class:`PooledConnection`)."""
        gated = await self._gated(conn, q) if any(plans) else False
        # A filtered statement is planned for its values on every run: whether the filter passes
        # 1 % of the rows (read them through the field's B-tree, score them exactly) or half of
        # them (walk the HNSW index) is in the values, and a prepared statement's generic plan
        # would assume a third.
        filtered = not isinstance(where, MatchAll)
        calls = []
        for query, indexed in zip(queries, plans, strict=True):
            statement, fparams, uses_index = q.search(where, indexed=indexed, limits=limits, gated=gated,
                                                      vector=include_vector)
            calls.append((statement, self._params(q, query, fparams, uses_index, gated)))
        if len(calls) == 1 and self._search_settings(ef_search, limits[1]) is self._default_settings:
            # The common case (one query, default settings): one statement (prepared unless
            # filtered), one round trip; on a pooled checkout without a cursor.
            if reuse and isinstance(conn, PooledConnection):
                rows = await conn.statements().fetch(*calls[0], prepare=not filtered)
                if rows is not None:
                    return [rows]
            cur = _search_cursor(conn, reuse)
            await cur.execute(*calls[0], prepare=not filtered)
            return [await cur.fetchall()]
        if all(statement == calls[0][0] for statement, _ in calls):
            # One statement for every query (the usual batch): one cursor runs them all, so its
            # dumpers and row loaders are built once, not once per query.
            cur = _search_cursor(conn, reuse)
            async with self._search_scope(conn, ef_search, limits[1], filtered):  # one pipeline
                await cur.executemany(calls[0][0], [params for _, params in calls], returning=True)
            results = [await cur.fetchall()]
            while cur.nextset():
                results.append(await cur.fetchall())
            return results
        cursors: list[psycopg.AsyncCursor[Any]] = []
        async with self._search_scope(conn, ef_search, limits[1], filtered):  # one pipeline
            for statement, params in calls:
                cur = conn.cursor(binary=True)
                await cur.execute(statement, params, prepare=not filtered)
                cursors.append(cur)
        # (The pipeline has synced: every result is already here.)
        return [await cur.fetchall() for cur in cursors]

    def _rank(self, q: CollectionSQL, query: Vector, rows: list[Any], k: int, limits: tuple[int, int],
              max_distance: float | None, include_vector: bool) -> list[Hit] | None:
        """Hits from candidate rows (``vs_path, id, vector, vs_distance, fields..., metadata``),
        or None when the index's answer cannot be trusted."""
        if not rows:
            return []
        spec = q.spec
        metric = spec.metric
        if rows[0][0] == 1:  # the index branch: ranked by the server's distance
            if len(rows) < k:
                return None  # filter or index cap starved the scan
            distances = [row[3] for row in rows]
            if None in distances or not math.isfinite(sum(distances)):  # (NaN and inf carry into the sum)
                return None
            if len(rows) == limits[1] and distances[k - 1] == distances[-1]:
                return None  # the k-th place is tied with rows the index may not have returned
            top = rows[:k] if max_distance is None else list(
                itertools.takewhile(lambda row: row[3] <= max_distance, rows[:k]))
            similarity = metric.similarity
            read_fields = q.read_fields
            if read_fields is not None and not include_vector:
                # The common case, in one comprehension (positional arguments: this runs per hit
                # of every search, and keyword arguments to attrs' __init__ cost twice as much).
                return [Hit(row[1], row[3], similarity(row[3]), read_fields(row), row[-1]) for row in top]
            hits: list[Hit] = []
            for row in top:
                rid, vector, fields, metadata = self._decode(spec, (row[1], row[2], *row[4:]))
                hits.append(Hit(id=rid, distance=row[3], similarity=similarity(row[3]), fields=fields,
                                metadata=metadata, vector=vector if include_vector else None))
            return hits
        # The exact branch: the vectors, ranked here in float64 (pgvector computes in float32).
        decoded = [self._decode(spec, (row[1], row[2], *row[4:])) for row in rows]
        vectors: list[Vector] = []
        for _, vector, _, _ in decoded:
            assert vector is not None  # the search statements skip rows without a vector
            vectors.append(vector)
        dist = exact_distances(metric, np.stack(vectors), query)
        order = sorted(range(len(decoded)), key=lambda i: (dist[i], decoded[i][0]))
        hits = []
        for i in order[:k]:
            d = float(dist[i])
            if max_distance is not None and d > max_distance:
                break
            rid, vector, fields, metadata = decoded[i]
            hits.append(Hit(id=rid, distance=d, similarity=metric.similarity(d), fields=fields,
                            metadata=metadata, vector=vector if include_vector else None))
        return hits

    # -- operations --------------------------------------------------------------

    def in_transaction(self) -> bool:
        return self._held.get() is not None

    async def health(self) -> Health:
        start = time.perf_counter()
        ok = True
        error = ""
        try:
            async with self._connection() as conn:
                await conn.execute("SELECT 1", prepare=True)
        except BackendUnavailable as exc:
            ok, error = False, str(exc)
        latency = (time.perf_counter() - start) * 1000
        stats = self._pool.get_stats()
        details: dict[str, Any] = {
            "target": self.settings.target, "dialect": self.dialect.name,
            "pool": {"min": self.settings.pool_min, "max": self.settings.pool_max,
                     "size": stats.get("pool_size", 0), "available": stats.get("pool_available", 0),
                     "waiting": stats.get("requests_waiting", 0)},
        }
        if error:
            details["error"] = error
        return Health(ok=ok, backend=self.name, latency_ms=latency, details=details)

    async def doctor(self) -> list[Check]:
        checks: list[Check] = []
        try:
            async with self._connection() as conn:
                cur = await conn.execute(
                    "SELECT current_setting('server_version'), current_setting('statement_timeout'), "
                    "current_user, current_database()")
                row = await cur.fetchone()
                assert row is not None
                version, timeout, user, database = row
                tls = conn.pgconn.ssl_in_use
                host = conn.info.host
                cur = await conn.execute(sql.SQL("SELECT spec FROM {}").format(self._table_sql()))
                specs = [CollectionSpec.from_dict(r[0]) for r in await cur.fetchall()]
                pending = await pending_indexes(conn, self.settings.schema)
        except BackendUnavailable as exc:
            return [Check("connection", False, str(exc), "start the server or fix the URL")]
        checks.append(Check("server", True, f"PostgreSQL {version} at {self.settings.target} "
                                            f"(user {user}, database {database})"))
        checks.append(Check("extension", True, f"{self.dialect.extension} {self.dialect.extension_version}"))
        checks.append(Check("dialect", True, self.dialect.describe()))
        checks.append(Check("pool", True, f"min {self.settings.pool_min}, max {self.settings.pool_max}, "
                                          f"connect timeout {self.settings.connect_timeout:g}s"))
        checks.append(Check("statement timeout", True if timeout != "0" else None,
                            f"{timeout} (statement_timeout option: {self.settings.statement_timeout:g}s)",
                            "" if timeout != "0" else "set statement_timeout=10s so a runaway query cannot hang"))
        local = host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")
        if tls:
            checks.append(Check("tls", True, "the connection is encrypted (TLS)"))
        else:
            checks.append(Check("tls", True if local else None, f"the connection to {host} is not encrypted",
                                "" if local else "add ?sslmode=require (or verify-full) to the URL"))
        checks.append(Check("schema", True, f"tables live in schema {self.settings.schema!r}; "
                                            f"{len(specs)} collection(s)"))
        for spec in specs:
            if spec.dim is not None and not self.dialect.can_index(spec.metric, spec.dim):
                checks.append(Check(f"index {spec.name}", None,
                                    f"collection {spec.name!r} ({spec.dim} dimensions, {spec.metric.value}) has no "
                                    f"HNSW index under {self.dialect.name}: searches are exact sequential scans",
                                    "fine for small collections; reduce the dimension (at most 2000 for pgvector "
                                    "HNSW) for large ones"))
        for item in pending:
            if item.running:
                checks.append(Check(f"index {item.name}", None,
                                    f"a bulk load of {item.name!r} is running (since "
                                    f"{item.since.isoformat(timespec='seconds')}); its HNSW index is built when "
                                    "it ends, and searches are exact meanwhile",
                                    "nothing to do unless the loading process is gone"))
            else:
                detail, fix = interrupted_message(item)
                checks.append(Check(f"index {item.name}", False, detail, fix))
        for name, detail, fix in self.dialect.warnings():
            checks.append(Check(name, None, detail, fix))
        return checks

    async def aclose(self) -> None:
        await self._pool.close()

    # -- vectorstore bench (vectorstore.spi.Benchmarkable; the code is in bench.py) -------------

    #: bulk_load() drops the HNSW index and builds it when it ends.
    bench_builds_index = True

    def bench_store_options(self, clients: int) -> dict[str, Any]:
        return bench.store_options(clients)

    async def bench_baseline(self, dim: int, metric: str, workdir: Path) -> bench.RawPostgres:
        return await bench.baseline(self, dim, metric, workdir)

    async def bench_server(self) -> ServerFacts:
        return await bench.server(self)

    async def bench_explain(self, spec: CollectionSpec, query: Vector, k: int) -> ExplainedSearch:
        return await bench.explain(self, spec, query, k)

    async def bench_ceiling(self, spec: CollectionSpec, queries: Vector, k: int) -> CeilingStatements:
        return await bench.ceiling(self, spec, queries, k)

    async def bench_discard(self) -> None:
        await bench.discard(self)


def bulk_key(schema: str, name: str) -> str:
    """The advisory-lock key (hashed by the server) of bulk loads of one collection."""
    return f"vectorstore:bulk:{schema}.{name}"


@attrs.frozen(slots=True)
class PendingIndex:
    """A collection whose HNSW index a bulk load dropped and has not built yet."""

    name: str
    since: dt.datetime
    #: Whether a bulk load of it is running now; False means the load was interrupted.
    running: bool


async def pending_indexes(conn: AConn, schema: str) -> list[PendingIndex]:
    """Collections whose index is pending, each with whether a bulk load of it still runs."""
    cur = await conn.execute(sql.SQL(
        "SELECT name, index_pending_since FROM {} WHERE index_pending_since IS NOT NULL ORDER BY name").format(
        sql.Identifier(schema, migrations.CATALOG_TABLE)))
    out: list[PendingIndex] = []
    for name, since in await cur.fetchall():
        # A bulk load runs exactly while its advisory lock is held (shared while loading, exclusive
        # while building). Looked up in pg_locks rather than probed with a try-lock, which would hold
        # it for an instant and could make a load that ends just then leave the build to nobody.
        # A bigint key shows as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
        cur = await conn.execute(
            "WITH k AS (SELECT hashtextextended(%s, 0) AS k) "
            "SELECT EXISTS (SELECT 1 FROM pg_locks l, k WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.objsubid = 1 AND l.classid = ((k.k >> 32) & 4294967295)::oid "
            "AND l.objid = (k.k & 4294967295)::oid)", [bulk_key(schema, name)])
        row = await cur.fetchone()
        out.append(PendingIndex(name=name, since=since, running=bool(row is not None and row[0])))
    return out


def interrupted_message(pending: PendingIndex) -> tuple[str, str]:
    """What doctor (and the log, when the store opens) says about an interrupted bulk load."""
    detail = (f"collection {pending.name!r} has no HNSW index: a bulk load that dropped it at "
              f"{pending.since.isoformat(timespec='seconds')} was interrupted before building it again; "
              "searches are correct but exact sequential scans (slow on large collections)")
    fix = (f"build it: with store.collection({pending.name!r}).bulk_load(): pass  (an empty bulk load builds "
           "the pending index once when it ends; about a minute per 100,000 384-d vectors, writes to the "
           "collection wait meanwhile)")
    return detail, fix


def _graph_bytes(spec: CollectionSpec, rows: int) -> int:
    """Rough size of pgvector's in-memory HNSW graph: each element holds its vector and
    about 2*m neighbour entries on layer 0 (plus slack for upper layers and headers)."""
    return rows * (4 * (spec.dim or 0) + 2 * spec.index.m * 12 + 256)


class _Duplicates(Exception):
    """Internal: insert met existing ids; raised inside the transaction to roll it back."""


