"""``vectorstore bench`` on PostgreSQL: the backend's side of :class:`vectorstore.spi.Benchmarkable`
(the ``bench_*`` methods of :class:`~vectorstore_postgres.backend.PostgresBackend` call these) and
the raw baseline it is measured against.

The baseline is what a careful user writes by hand: psycopg 3 + pgvector-python, vectors bound as
binary, statements prepared, k written into the statement as pgvector's README does (a ``LIMIT``
parameter would have the server plan each execution again, see ``CollectionSQL.search``),
``hnsw.ef_search`` (and, for filters, pgvector 0.8's iterative scan) set once per session, the load
a binary ``COPY`` with ``write_row`` as pgvector's docs show, then ``CREATE INDEX ... USING hnsw``.
It returns what vectorstore's hits carry: id, the ``bucket`` field, metadata and distance. Its
table lives in the store's own schema, so :func:`discard` (``DROP SCHEMA ... CASCADE``) removes
both sides.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from vectorstore.errors import NotSupported
from vectorstore.records import Vector
from vectorstore.schema import CollectionSpec
from vectorstore.spi import CeilingStatements, ExplainedSearch, ServerFacts

if TYPE_CHECKING:
    from vectorstore_postgres.backend import PostgresBackend

#: The baseline's table, in the store's schema.
TABLE = "raw_items"
#: pgvector's distance operator and HNSW operator class per metric the baseline compares.
_METRICS = {"cosine": ("<=>", "vector_cosine_ops")}


def conninfo(backend: PostgresBackend) -> str:
    """The store's connection string with its libpq parameters (may hold a password: never print it)."""
    return make_conninfo(backend.settings.conninfo, **backend.settings.libpq)


def store_options(clients: int) -> dict[str, Any]:
    """A pool with a connection for every client, and two to spare."""
    return {"pool_max": clients + 2}


async def baseline(backend: PostgresBackend, dim: int, metric: str, workdir: Path) -> RawPostgres:
    if metric not in _METRICS:
        raise NotSupported(f"the PostgreSQL baseline compares {', '.join(_METRICS)} vectors, not {metric!r}; "
                           "benchmark a data set with one of those metrics")
    # The baseline searches with the store's default ef_search (not pgvector's 40): both sides at
    # the same settings, so their latencies and recalls compare.
    raw = RawPostgres(conninfo(backend), backend.settings.schema, dim, metric, backend.settings.index_build_memory,
                      default_ef=backend.settings.ef_search)
    await raw.open()
    return raw


async def explain(backend: PostgresBackend, spec: CollectionSpec, query: Vector, k: int) -> ExplainedSearch:
    """``EXPLAIN (ANALYZE)`` of vectorstore's own search statement (:meth:`PostgresBackend.explain_search`)."""
    plan = await backend.explain_search(spec, query, k)
    return ExplainedSearch(server_ms=float(plan["Execution Time"]), plan=plan)


async def ceiling(backend: PostgresBackend, spec: CollectionSpec, queries: Vector, k: int) -> CeilingStatements:
    """vectorstore's search statements (:meth:`PostgresBackend.search_sql`) under its pool's session settings."""
    statements = tuple([await backend.search_sql(spec, query, k) for query in queries])
    return CeilingStatements(statements=statements, settings=tuple(backend.search_session_settings),
                             conninfo=conninfo(backend))


async def server(backend: PostgresBackend) -> ServerFacts:
    """The server's and pgvector's versions, ``shared_buffers`` and the size of every table and
    index of the store's schema (both sides'), in MB; a note when they do not fit in the buffers."""
    async with await psycopg.AsyncConnection.connect(conninfo(backend), autocommit=True) as conn:
        cur = await conn.execute("SELECT current_setting('server_version'), "
                                 "(SELECT extversion FROM pg_extension WHERE extname = 'vector')")
        versions = await cur.fetchone()
        cur = await conn.execute(
            "SELECT (SELECT setting::bigint * pg_size_bytes(unit) FROM pg_settings WHERE name = 'shared_buffers'), "
            "(SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r')",
            [backend.settings.schema])
        memory = await cur.fetchone()
    assert memory is not None
    facts: dict[str, Any] = {"postgres": str(versions[0]) if versions else "",
                             "pgvector": str(versions[1]) if versions else "",
                             "shared_buffers_mb": float(memory[0]) / 2**20, "tables_mb": float(memory[1]) / 2**20}
    notes: tuple[str, ...] = ()
    if facts["tables_mb"] > facts["shared_buffers_mb"]:
        notes = (f"note: the two sides' tables and indexes ({facts['tables_mb']:,.0f} MB) exceed shared_buffers "
                 f"({facts['shared_buffers_mb']:,.0f} MB): searches read pages from the OS cache and the sides evict "
                 "each other's; latencies then measure the server's memory more than the client",)
    return ServerFacts(facts=facts, notes=notes)


async def discard(backend: PostgresBackend) -> None:
    """Drop the store's schema: its collections, the baseline's tables, the catalog."""
    async with await psycopg.AsyncConnection.connect(conninfo(backend), autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(backend.settings.schema)))


def _metadata(i: int) -> dict[str, int]:
    return {"n": i}


class RawPostgres:
    """One table ``<schema>.raw_items`` driven through psycopg + pgvector (a
    :class:`vectorstore.spi.RawBaseline`)."""

    description = "binary COPY"
    exact = False
    repeat = True

    def __init__(self, conninfo: str, schema: str, dim: int, metric: str, index_build_memory: int, *,
                 default_ef: int) -> None:
        self.conninfo = conninfo
        self.dim = dim
        self.schema = schema
        self.operator, self.opclass = _METRICS[metric]
        self.index_build_memory = index_build_memory
        self.table = sql.Identifier(schema, TABLE)
        self.conn: Any = None
        self.rows = 0
        self.default_ef = default_ef
        self._ef = default_ef
        self._seqscan_on = False
        self._scratch = 0
        self._statements: dict[tuple[bool, int], str] = {}

    def search_sql(self, k: int, filtered: bool = False) -> str:
        """The search statement for ``k`` hits; parameters: the query vector twice, with
        ``filtered`` the bucket bound between them."""
        found = self._statements.get((filtered, k))
        if found is None:
            where = sql.SQL("WHERE bucket < %s ") if filtered else sql.SQL("")
            found = self._statements[(filtered, k)] = sql.SQL(
                "SELECT id, bucket, metadata, embedding {op} %b AS distance FROM {} {}ORDER BY embedding {op} %b "
                "LIMIT {}").format(self.table, where, sql.Literal(int(k)), op=sql.SQL(self.operator)).as_string()
        return found

    async def connect(self, ef_search: int | None = None) -> Any:
        from pgvector.psycopg import register_vector_async

        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        await register_vector_async(conn)
        await conn.execute(f"SET hnsw.ef_search = {int(ef_search or self.default_ef)}")
        await conn.execute("SET hnsw.iterative_scan = strict_order")
        # The baseline's vectors live in TOAST, so its heap is small, and from ef_search ~200 the
        # planner sorts the whole table rather than walk the HNSW index (at 100k x 768: ~0.5 s per
        # query, exact). That measures the planner, not the client: both sides walk their index.
        # (vectorstore's rows keep their vectors, so its planner keeps the index.) Filtered searches
        # turn it back on: the planner's choice for them is part of what is compared.
        await conn.execute("SET enable_seqscan = off")
        return conn

    async def _seqscan(self, enabled: bool) -> None:
        if enabled != self._seqscan_on:
            await self.conn.execute(f"SET enable_seqscan = {'on' if enabled else 'off'}")
            self._seqscan_on = enabled

    async def open(self) -> None:
        self.conn = await self.connect()
        self._ef = self.default_ef
        self._seqscan_on = False

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def load(self, vectors: Vector, buckets: Sequence[int], *, scratch: bool = False) -> float:
        """CREATE TABLE + binary COPY of every row; seconds (of the COPY). A scratch table is dropped after."""
        from psycopg.types.json import Jsonb

        name = TABLE
        if scratch:
            self._scratch += 1
            name = f"raw_load_{self._scratch}"
        target = sql.Identifier(self.schema, name)
        await self.conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, embedding vector({}), "
                                        "bucket bigint, metadata jsonb NOT NULL)").format(
                                            target, sql.Literal(self.dim)))
        start = time.perf_counter()
        async with self.conn.transaction(), self.conn.cursor() as cur:
            copy_sql = sql.SQL("COPY {} (id, embedding, bucket, metadata) FROM STDIN WITH (FORMAT BINARY)").format(
                target)
            async with cur.copy(copy_sql) as copy:
                copy.set_types(["int8", "vector", "int8", "jsonb"])
                for i in range(len(vectors)):
                    await copy.write_row([i + 1, vectors[i], int(buckets[i]), Jsonb(_metadata(i + 1))])
        elapsed = time.perf_counter() - start
        if scratch:
            await self.conn.execute(sql.SQL("DROP TABLE {}").format(target))
        else:
            self.rows = len(vectors)
        return elapsed

    async def build_index(self, spec: CollectionSpec) -> float:
        """``CREATE INDEX ... USING hnsw`` with the collection's ``m`` and ``ef_construction`` and the
        ``maintenance_work_mem`` vectorstore's build gets; seconds (then ANALYZE, untimed)."""
        m, ef_construction = spec.index.m, spec.index.ef_construction
        memory = min(self.index_build_memory, self.rows * (4 * self.dim + 2 * m * 12 + 256))
        await self.conn.execute(f"SET maintenance_work_mem = '{max(memory // 1024, 64 * 1024)}kB'")
        start = time.perf_counter()
        await self.conn.execute(sql.SQL("CREATE INDEX ON {} USING hnsw (embedding {}) WITH (m = {}, "
                                        "ef_construction = {})").format(
            self.table, sql.SQL(self.opclass), sql.Literal(m), sql.Literal(ef_construction)))
        elapsed = time.perf_counter() - start
        await self.conn.execute(sql.SQL("ANALYZE {}").format(self.table))
        await self.conn.execute("RESET maintenance_work_mem")
        return elapsed

    async def set_ef_search(self, ef_search: int | None) -> None:
        ef = self.default_ef if ef_search is None else ef_search
        if ef != self._ef:
            await self.conn.execute(f"SET hnsw.ef_search = {int(ef)}")
            self._ef = ef

    async def search(self, query: Vector, k: int, conn: Any = None) -> list[tuple[Any, ...]]:
        if conn is None:
            await self._seqscan(False)
        cur = await (conn or self.conn).execute(self.search_sql(k), [query, query], prepare=True)
        rows: list[tuple[Any, ...]] = await cur.fetchall()
        return rows

    async def explain(self, query: Vector, k: int) -> ExplainedSearch:
        """``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` of the search statement: the server's own timings."""
        await self._seqscan(False)
        cur = await self.conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + self.search_sql(k), [query, query])
        row = await cur.fetchone()
        plan: dict[str, Any] = row[0][0]
        return ExplainedSearch(server_ms=float(plan["Execution Time"]), plan=plan)

    async def search_filtered(self, query: Vector, k: int, below: int) -> list[tuple[Any, ...]]:
        await self._seqscan(True)
        cur = await self.conn.execute(self.search_sql(k, filtered=True), [query, below, query], prepare=True)
        rows: list[tuple[Any, ...]] = await cur.fetchall()
        return rows

    async def search_many(self, queries: Vector, k: int) -> list[list[tuple[Any, ...]]]:
        """Every query in one pipeline: the hand-written equivalent of search_many."""
        await self._seqscan(False)
        cursors = []
        async with self.conn.pipeline():
            for query in queries:
                cur = self.conn.cursor()
                await cur.execute(self.search_sql(k), [query, query], prepare=True)
                cursors.append(cur)
        return [await cur.fetchall() for cur in cursors]

    @contextlib.asynccontextmanager
    async def clients(self, count: int, queries: Vector,
                      k: int) -> AsyncIterator[Callable[[int, int], Awaitable[float]]]:
        """A psycopg-pool of ``count`` connections (opened full), each configured like :meth:`connect`
        but for the iterative scan (as before: unfiltered searches do not use it); ``count`` asyncio
        tasks search through it. (Without ``enable_seqscan = off`` here, the concurrent searches at
        100k x 768 sorted the whole table, ~0.5 s each, and the run seemed to hang.)"""
        from pgvector.psycopg import register_vector_async
        from psycopg_pool import AsyncConnectionPool

        from vectorstore.bench import measure

        ef = self._ef

        async def configure(conn: Any) -> None:
            await register_vector_async(conn)
            await conn.execute(f"SET hnsw.ef_search = {int(ef)}")
            await conn.execute("SET enable_seqscan = off")  # (as connect() does: it walks its index)

        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.conninfo, min_size=count, max_size=count, open=False, configure=configure,
            kwargs={"autocommit": True})
        await pool.open(wait=True)
        nq = len(queries)

        async def call(i: int) -> Any:
            async with pool.connection() as conn:
                return await self.search(queries[i % nq], k, conn)

        async def rate(total: int, warmup: int) -> float:
            return await measure.closed_loop_async(call, count, total, warmup)

        try:
            yield rate
        finally:
            await pool.close()
