"""The PostgreSQL backend: psycopg 3 (async) + psycopg-pool, pgvector or ruvector.

:class:`PostgresBackend` implements the backend SPI (:class:`vectorstore.spi.Backend`) by
delegating each call to the part of the backend that owns it; every part shares one
:class:`~vectorstore_postgres.pool.Connections`. Where to look:

- :mod:`~vectorstore_postgres.opening`: whether a store exists, and the connection that
  prepares the database before the pool opens (dialect detection, migrations).
- :mod:`~vectorstore_postgres.pool`: the pool and its policy, per-connection configuration,
  transactions (one connection held in a contextvar; savepoints; SERIALIZABLE), leased and
  dedicated connections, and the translation of driver errors into typed ones.
- :mod:`~vectorstore_postgres.catalog`: the collections table, each collection's SQL (cached),
  id sequences and row estimates.
- :mod:`~vectorstore_postgres.writes`: upsert, insert, streamed writes and delete; small batches
  pipelined, large ones through ``COPY`` (encoded by :mod:`~vectorstore_postgres.copyrows`).
- :mod:`~vectorstore_postgres.reads`: get, count, page, and decoding rows into records.
- :mod:`~vectorstore_postgres.indexes`: HNSW index builds, ``bulk_load()`` and the bookkeeping
  that reports and repairs an interrupted one.
- :mod:`~vectorstore_postgres.search`: search planning and execution, search settings,
  ``explain_search`` / ``search_sql``.

Below them: :mod:`~vectorstore_postgres.connection` (settings, per-connection set-up),
:mod:`~vectorstore_postgres.queries` (the SQL of a collection, no connection),
:mod:`~vectorstore_postgres.dialect` (pgvector vs ruvector), :mod:`~vectorstore_postgres.prepared`,
:mod:`~vectorstore_postgres.codecs` and :mod:`~vectorstore_postgres.migrations`. This module
also keeps :meth:`~PostgresBackend.health`, :meth:`~PostgresBackend.doctor` and the ``bench_*``
members (their code is in :mod:`~vectorstore_postgres.bench`).

**Collections without vectors** (``dim=None``): a table with no vector column and no HNSW
index (see :mod:`vectorstore_postgres.queries`); every read and write path leaves the vector
out, bulk loads have nothing to defer, and a search finds nothing (the core refuses it first).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from vectorstore.config import StoreConfig
from vectorstore.errors import BackendUnavailable, ConfigError
from vectorstore.filters import Filter
from vectorstore.records import BatchParts, Hit, Record, RecordBatch, RecordId, Vector
from vectorstore.schema import CollectionSpec
from vectorstore.spi import CeilingStatements, Check, ExplainedSearch, Health, ServerFacts
from vectorstore_postgres import bench
from vectorstore_postgres.catalog import ESTIMATE_TTL, Catalog
from vectorstore_postgres.connection import PooledConnection, Settings, Setup
from vectorstore_postgres.dialect import Dialect
from vectorstore_postgres.indexes import BulkLoads, PendingIndex, bulk_key, interrupted_message, pending_indexes
from vectorstore_postgres.opening import detect_dialect, prepare_database, store_exists
from vectorstore_postgres.plugin import CAPABILITIES
from vectorstore_postgres.pool import AConn, Connections, Held
from vectorstore_postgres.queries import CollectionSQL
from vectorstore_postgres.reads import Reads
from vectorstore_postgres.search import MAX_SCAN_TUPLES, RERANK_MARGIN, Search, default_settings
from vectorstore_postgres.writes import Writes

__all__ = [
    "PostgresBackend", "open_backend", "store_exists", "detect_dialect",
    "bulk_key", "PendingIndex", "pending_indexes", "interrupted_message",
    "RERANK_MARGIN", "MAX_SCAN_TUPLES", "ESTIMATE_TTL", "AConn",
]


def tls_check(host: str, tls: bool, sslmode: str) -> Check:
    """doctor's verdict on a connection's encryption: a warning when a connection that leaves this
    machine is not encrypted, or is encrypted without checking whose certificate it is (sslmode
    below verify-full lets anyone on the path pose as the server)."""
    local = host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")
    if tls and sslmode == "verify-full":
        return Check("tls", True, "the connection is encrypted (TLS) and the server's certificate and name verified")
    if tls:
        mode = sslmode or "prefer"
        return Check("tls", True if local else None,
                     f"the connection is encrypted (TLS) but the server is not verified (sslmode={mode})",
                     "" if local else "use ?sslmode=verify-full&sslrootcert=/path/to/ca.crt so only the real "
                                      "server is accepted")
    return Check("tls", True if local else None, f"the connection to {host} is not encrypted",
                 "" if local else "add ?sslmode=verify-full&sslrootcert=/path/to/ca.crt to the URL")


async def open_backend(config: StoreConfig) -> PostgresBackend:
    """Connect, detect the dialect, migrate, and open the pool."""
    settings, setup = await prepare_database(config)
    backend = PostgresBackend(settings, setup)
    await backend._connections.open()
    return backend


class PostgresBackend:
    name = "postgres"
    capabilities = CAPABILITIES

    def __init__(self, settings: Settings, setup: Setup) -> None:
        self.settings = settings
        self.setup = setup
        #: The cross-cutting layer's default deadline per call: the server cancels a statement
        #: after statement_timeout; 5 s more covers the pool and the round trips.
        self.deadline_hint = settings.statement_timeout + 5.0 if settings.statement_timeout else None
        self._connections = Connections(settings, setup, default_settings(setup.dialect, settings.ef_search))
        self._catalog = Catalog(self._connections)
        self._writes = Writes(self._connections, self._catalog)
        self._reads = Reads(self._connections, self._catalog)
        self._bulk_loads = BulkLoads(self._connections, self._catalog)
        self._search = Search(self._connections, self._catalog)

    @property
    def dialect(self) -> Dialect:
        return self._connections.dialect

    @dialect.setter
    def dialect(self, dialect: Dialect) -> None:
        # (Tests act as another extension version this way; clear the SQL cache, _sql, too.)
        self._connections.dialect = dialect

    # -- internals the tests reach into -------------------------------------------

    @property
    def _pool(self) -> AsyncConnectionPool[PooledConnection]:
        return self._connections.pool

    @property
    def _held(self) -> contextvars.ContextVar[Held | None]:
        return self._connections.held

    @property
    def _sql(self) -> dict[str, CollectionSQL]:
        return self._catalog.sql

    def _q(self, spec: CollectionSpec) -> CollectionSQL:
        return self._catalog.q(spec)

    def _search_scope(self, conn: AConn, ef_search: int | None, fetch: int,
                      filtered: bool = False) -> contextlib.AbstractAsyncContextManager[None]:
        return self._search.scope(conn, ef_search, fetch, filtered)

    # -- catalog -------------------------------------------------------------------

    async def create_collection(self, spec: CollectionSpec) -> None:
        await self._catalog.create_collection(spec)

    async def get_collection(self, name: str) -> CollectionSpec:
        return await self._catalog.get_collection(name)

    async def list_collections(self) -> list[CollectionSpec]:
        return await self._catalog.list_collections()

    async def drop_collection(self, name: str) -> bool:
        return await self._catalog.drop_collection(name)

    async def allocate_ids(self, spec: CollectionSpec, n: int, after: int) -> list[int]:
        return await self._catalog.allocate_ids(spec, n, after)

    async def last_id(self, spec: CollectionSpec) -> int:
        return await self._catalog.last_id(spec)

    # -- records -------------------------------------------------------------------

    async def upsert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        await self._writes.upsert(spec, batch)

    async def insert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        await self._writes.insert(spec, batch)

    async def write_parts(self, spec: CollectionSpec, parts: BatchParts, *, replace: bool) -> None:
        await self._writes.write_parts(spec, parts, replace=replace)

    async def delete(self, spec: CollectionSpec, ids: Sequence[RecordId] | None, where: Filter | None) -> int:
        return await self._writes.delete(spec, ids, where)

    async def get(self, spec: CollectionSpec, ids: Sequence[RecordId]) -> list[Record]:
        return await self._reads.get(spec, ids)

    async def count(self, spec: CollectionSpec, where: Filter) -> int:
        return await self._reads.count(spec, where)

    async def page(self, spec: CollectionSpec, after: RecordId | None, limit: int, where: Filter) -> list[Record]:
        return await self._reads.page(spec, after, limit, where)

    def bulk_load(self, spec: CollectionSpec) -> contextlib.AbstractAsyncContextManager[None]:
        return self._bulk_loads.bulk_load(spec)

    # -- search --------------------------------------------------------------------

    async def search(self, spec: CollectionSpec, queries: Vector, k: int, where: Filter,
                     max_distance: float | None, ef_search: int | None, include_vector: bool) -> list[list[Hit]]:
        return await self._search.search(spec, queries, k, where, max_distance, ef_search, include_vector)

    async def explain_search(self, spec: CollectionSpec, query: Vector, k: int = 10, where: Filter | None = None,
                             *, analyze: bool = True) -> dict[str, Any]:
        """PostgreSQL's plan (``EXPLAIN ... FORMAT JSON``) of the statement :meth:`search` sends
        for one query with the default settings (see :meth:`Search.explain_search`)."""
        return await self._search.explain_search(spec, query, k, where, analyze=analyze)

    async def search_sql(self, spec: CollectionSpec, query: Vector, k: int = 10, where: Filter | None = None) -> str:
        """The statement :meth:`search` sends for one query with the default settings, its values
        written in as SQL literals (see :meth:`Search.search_sql`)."""
        return await self._search.search_sql(spec, query, k, where)

    @property
    def search_session_settings(self) -> list[tuple[str, str]]:
        """The settings every pooled connection starts with, as (name, value): a search with the
        default settings runs under these."""
        return self._search.search_session_settings

    # -- transactions and the store ------------------------------------------------

    def transaction(self, serializable: bool = False) -> contextlib.AbstractAsyncContextManager[None]:
        return self._connections.transaction(serializable)

    def in_transaction(self) -> bool:
        return self._connections.in_transaction()

    async def health(self) -> Health:
        start = time.perf_counter()
        ok = True
        error = ""
        try:
            async with self._connections.connection() as conn:
                await conn.execute("SELECT 1", prepare=True)
        except (BackendUnavailable, ConfigError) as exc:
            ok, error = False, str(exc)
        latency = (time.perf_counter() - start) * 1000
        details: dict[str, Any] = {
            "target": self.settings.target, "dialect": self.dialect.name,
            "pool": {"min": self.settings.pool_min, "max": self.settings.pool_max, **self.pool_stats()},
        }
        if error:
            details["error"] = error
        return Health(ok=ok, backend=self.name, latency_ms=latency, details=details)

    def pool_stats(self) -> dict[str, int]:
        """The pool's connections by state: size, idle, in_use, waiting (read by the metrics)."""
        return self._connections.stats()

    async def doctor(self) -> list[Check]:
        checks: list[Check] = []
        try:
            async with self._connections.connection() as conn:
                cur = await conn.execute(
                    "SELECT current_setting('server_version'), current_setting('statement_timeout'), "
                    "current_user, current_database()")
                row = await cur.fetchone()
                assert row is not None
                version, timeout, user, database = row
                tls = conn.pgconn.ssl_in_use
                host = conn.info.host
                sslmode = next((o.val.decode() for o in conn.pgconn.info if o.keyword == b"sslmode" and o.val), "")
                cur = await conn.execute(sql.SQL("SELECT spec FROM {}").format(self._catalog.table))
                specs = [CollectionSpec.from_dict(r[0]) for r in await cur.fetchall()]
                pending = await pending_indexes(conn, self.settings.schema)
        except (BackendUnavailable, ConfigError) as exc:
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
        checks.append(tls_check(host, tls, sslmode))
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
        await self._connections.close()

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
