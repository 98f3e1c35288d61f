"""Index lifecycle: building a collection's HNSW index, and bulk loads, which drop the HNSW and
field indexes and build them once when they end (with the bookkeeping that finds and repairs an
interrupted one).

A bulk load's state:

- ``vs_collections.index_pending_since`` (durable): set in the transaction that drops the
  index, cleared in the one that builds it. Crash-safe: the index is absent exactly when set.
- a session-level *shared* advisory lock per collection (:func:`bulk_key`), held by every running
  bulk load on a connection of its own (not the pool's): PostgreSQL releases it when that session
  ends, so a process that dies inside the block leaves "pending" with no lock holder -- which is
  how doctor() and opening the store tell an interrupted load from a running one
  (:func:`pending_indexes`).
- at the end, a load releases its shared lock and builds only if it then gets the
  *exclusive* lock (no other bulk load of the collection runs; it is held until the build
  commits, so a load starting meanwhile waits for the index and then drops it again).

A collection without an HNSW index (no vectors, or a dimension the dialect cannot index) has
nothing to defer: its bulk load does nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import psycopg
from psycopg import sql

from vectorstore.errors import CollectionNotFound
from vectorstore.schema import CollectionSpec
from vectorstore_postgres.catalog import Catalog, catalog_table
from vectorstore_postgres.connection import Settings
from vectorstore_postgres.pool import Connections, translate_errors
from vectorstore_postgres.queries import CollectionSQL

log = logging.getLogger("vectorstore.postgres")

AConn = psycopg.AsyncConnection[Any]


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
        catalog_table(schema)))
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


def graph_bytes(spec: CollectionSpec, rows: int) -> int:
    """Rough size of pgvector's in-memory HNSW graph: each element holds its vector and
    about 2*m neighbour entries on layer 0 (plus slack for upper layers and headers)."""
    return rows * (4 * (spec.dim or 0) + 2 * spec.index.m * 12 + 256)


async def build_index(cur: psycopg.AsyncCursor[Any], settings: Settings, q: CollectionSQL, rows: int, *,
                      if_not_exists: bool = False) -> None:
    """Build the collection's HNSW index in the current transaction, then ANALYZE the table."""
    index = q.create_index(if_not_exists=if_not_exists)
    assert index is not None
    # Never lower the server's setting; raise it to what the graph needs, up to
    # the index_build_memory option, for this transaction only.
    want = min(settings.index_build_memory, graph_bytes(q.spec, rows))
    await cur.execute(
        "SELECT set_config('maintenance_work_mem', (GREATEST(pg_size_bytes(current_setting("
        "'maintenance_work_mem')), %s::bigint) / 1024)::text || 'kB', true)", [want])
    await cur.execute(index)
    # Fresh statistics: the planner and the search's size gate read them.
    await cur.execute(q.analyze())


class BulkLoads:
    """``bulk_load()``: drop a collection's indexes, build them once when the last load ends."""

    def __init__(self, connections: Connections, catalog: Catalog) -> None:
        self.connections = connections
        self.catalog = catalog

    def _bulk_key(self, name: str) -> str:
        return bulk_key(self.connections.settings.schema, name)

    @contextlib.asynccontextmanager
    async def bulk_load(self, spec: CollectionSpec) -> AsyncIterator[None]:
        q = self.catalog.q(spec)
        if not q.has_index:
            yield  # no HNSW index under this dialect / dimension: nothing to defer
            return
        key = self._bulk_key(spec.name)
        lease = await self.connections.dedicated()
        try:
            with translate_errors(self.connections.settings, spec.name):
                async with lease.transaction():
                    # Waits (without a statement timeout) while another load builds the index.
                    await lease.execute("SELECT set_config('statement_timeout', '0', true)")
                    await lease.execute("SELECT pg_advisory_lock_shared(hashtextextended(%s, 0))", [key])
                async with lease.transaction():
                    cur = await lease.execute(sql.SQL(
                        "UPDATE {} SET index_pending_since = coalesce(index_pending_since, now()) "
                        "WHERE name = %s RETURNING spec").format(self.catalog.table), [spec.name])
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
        with translate_errors(self.connections.settings, name):
            conn = lease
            try:
                await lease.execute("SELECT pg_advisory_unlock_shared(hashtextextended(%s, 0))", [key])
            except psycopg.OperationalError:
                # The session is gone (and its lock with it): finish on a fresh connection.
                conn = await self.connections.dedicated()
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
        settings = self.connections.settings
        async with conn.transaction():
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                                     [self._bulk_key(name)])
            row = await cur.fetchone()
            if row is None or not row[0]:
                return None
            cur = await conn.execute(sql.SQL(
                "SELECT spec FROM {} WHERE name = %s AND index_pending_since IS NOT NULL FOR UPDATE").format(
                self.catalog.table), [name])
            row = await cur.fetchone()
            if row is None:
                return False  # dropped meanwhile, or built by someone else
            q = self.catalog.q(CollectionSpec.from_dict(row[0]))
            if q.has_index:
                # Counted, not estimated: right after a load the planner's estimate and the
                # statistics collector's live-tuple count can both still say ~0.
                cur = await conn.execute(q.count_rows())
                counted = await cur.fetchone()
                rows = int(counted[0]) if counted is not None else 0
                # A build is legitimately long: the statement timeout applies per 1,000 rows.
                budget = settings.statement_timeout * max(1, -(-rows // 1000))
                await conn.execute("SELECT set_config('statement_timeout', %s, true)",
                                   [f"{round(budget * 1000)}ms" if settings.statement_timeout else "0"])
                start = time.perf_counter()
                for statement in q.create_field_indexes():  # (IF NOT EXISTS: a repair may find some built)
                    await conn.execute(statement)
                async with conn.cursor() as cur:
                    await build_index(cur, settings, q, rows, if_not_exists=True)
                log.info("bulk load of %s ended: indexes built over ~%d rows in %.1fs", name, rows,
                         time.perf_counter() - start)
            await conn.execute(sql.SQL("UPDATE {} SET index_pending_since = NULL WHERE name = %s").format(
                self.catalog.table), [name])
        return True
