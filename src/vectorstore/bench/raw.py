"""The baselines: what a careful user writes by hand with the raw drivers.

PostgreSQL: psycopg 3 + pgvector-python, vectors bound as binary, statements
prepared, k written into the statement as pgvector's README does (a ``LIMIT``
parameter would have the server plan each execution again, see
``CollectionSQL.search``), ``hnsw.ef_search`` (and, for filters, pgvector 0.8's
iterative scan) set once per session, the load a binary ``COPY`` with ``write_row`` as pgvector's docs
show, then ``CREATE INDEX ... USING hnsw``. SQLite: sqlite-vec's ``vec0`` table
(with ``bucket`` as a vec0 metadata column, so filters run inside the KNN) joined to
a row table for the payload. Both return the same payload as vectorstore's hits:
id, the ``bucket`` field, metadata and distance.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from vectorstore.bench.datasets import Dataset

PG_TABLE = "raw_items"


def _metadata(i: int) -> dict[str, int]:
    return {"n": i}


class RawPostgres:
    """One table ``<schema>.raw_items`` driven through psycopg + pgvector."""

    def __init__(self, conninfo: str, schema: str, dim: int) -> None:
        from psycopg import sql

        self.conninfo = conninfo
        self.dim = dim
        self.table = sql.Identifier(schema, PG_TABLE)
        self.schema = schema
        self.conn: Any = None
        self._ef: int | None = None
        self._statements: dict[tuple[bool, int], str] = {}

    def search_sql(self, k: int, filtered: bool = False) -> str:
        """The search statement for ``k`` hits; parameters: the query vector twice, with
        ``filtered`` the bucket bound between them."""
        found = self._statements.get((filtered, k))
        if found is None:
            from psycopg import sql  # (only to compose a statement; every search calls this)

            where = sql.SQL("WHERE bucket < %s ") if filtered else sql.SQL("")
            found = self._statements[(filtered, k)] = sql.SQL(
                "SELECT id, bucket, metadata, embedding <=> %b AS distance FROM {} {}ORDER BY embedding <=> %b "
                "LIMIT {}").format(self.table, where, sql.Literal(int(k))).as_string()
        return found

    async def connect(self, ef_search: int = 40) -> Any:
        import psycopg
        from pgvector.psycopg import register_vector_async

        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        await register_vector_async(conn)
        await conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")
        await conn.execute("SET hnsw.iterative_scan = strict_order")
        return conn

    async def open(self) -> None:
        self.conn = await self.connect()
        self._ef = 40

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def load(self, data: Dataset, table: str = PG_TABLE) -> float:
        """CREATE TABLE + binary COPY of every row; seconds (of the COPY)."""
        from psycopg import sql
        from psycopg.types.json import Jsonb

        target = sql.Identifier(self.schema, table)
        await self.conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, embedding vector({}), "
                                        "bucket bigint, metadata jsonb NOT NULL)").format(
                                            target, sql.Literal(self.dim)))
        buckets = data.buckets()
        start = time.perf_counter()
        async with self.conn.transaction(), self.conn.cursor() as cur:
            copy_sql = sql.SQL("COPY {} (id, embedding, bucket, metadata) FROM STDIN WITH (FORMAT BINARY)").format(
                target)
            async with cur.copy(copy_sql) as copy:
                copy.set_types(["int8", "vector", "int8", "jsonb"])
                for i in range(data.n):
                    await copy.write_row([i + 1, data.vectors[i], int(buckets[i]), Jsonb(_metadata(i + 1))])
        return time.perf_counter() - start

    async def drop(self, table: str) -> None:
        from psycopg import sql

        await self.conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(self.schema, table)))

    async def build_index(self, m: int, ef_construction: int, memory_bytes: int) -> float:
        from psycopg import sql

        await self.conn.execute(f"SET maintenance_work_mem = '{max(memory_bytes // 1024, 64 * 1024)}kB'")
        start = time.perf_counter()
        await self.conn.execute(sql.SQL(
            "CREATE INDEX ON {} USING hnsw (embedding vector_cosine_ops) WITH (m = {}, ef_construction = {})").format(
                self.table, sql.Literal(m), sql.Literal(ef_construction)))
        elapsed = time.perf_counter() - start
        await self.conn.execute(sql.SQL("ANALYZE {}").format(self.table))
        await self.conn.execute("RESET maintenance_work_mem")
        return elapsed

    async def set_ef(self, ef_search: int) -> None:
        if ef_search != self._ef:
            await self.conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")
            self._ef = ef_search

    async def search(self, query: np.ndarray[Any, Any], k: int, conn: Any = None) -> list[tuple[Any, ...]]:
        cur = await (conn or self.conn).execute(self.search_sql(k), [query, query], prepare=True)
        rows: list[tuple[Any, ...]] = await cur.fetchall()
        return rows

    async def explain(self, query: np.ndarray[Any, Any], k: int) -> dict[str, Any]:
        """``EXPLAIN (ANALYZE, FORMAT JSON)`` of the search statement: the server's own timings."""
        cur = await self.conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + self.search_sql(k), [query, query])
        row = await cur.fetchone()
        plan: dict[str, Any] = row[0][0]
        return plan

    async def search_filtered(self, query: np.ndarray[Any, Any], k: int, below: int) -> list[tuple[Any, ...]]:
        cur = await self.conn.execute(self.search_sql(k, filtered=True), [query, below, query], prepare=True)
        rows: list[tuple[Any, ...]] = await cur.fetchall()
        return rows

    async def search_pipelined(self, queries: np.ndarray[Any, Any], k: int) -> list[list[tuple[Any, ...]]]:
        """Every query in one pipeline: the hand-written equivalent of search_many."""
        cursors = []
        async with self.conn.pipeline():
            for query in queries:
                cur = self.conn.cursor()
                await cur.execute(self.search_sql(k), [query, query], prepare=True)
                cursors.append(cur)
        return [await cur.fetchall() for cur in cursors]

    async def pool(self, size: int) -> Any:
        from pgvector.psycopg import register_vector_async
        from psycopg_pool import AsyncConnectionPool

        async def configure(conn: Any) -> None:
            await register_vector_async(conn)
            await conn.execute(f"SET hnsw.ef_search = {int(self._ef or 40)}")

        pool = AsyncConnectionPool(self.conninfo, min_size=size, max_size=size, open=False, configure=configure,
                                   kwargs={"autocommit": True})
        await pool.open(wait=True)
        return pool


def sqlite_module() -> Any:
    """The stdlib sqlite3 when it can load extensions, else sqlean (as vectorstore does)."""
    import sqlite3

    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    import sqlean

    return sqlean


class RawSqlite:
    """sqlite-vec's vec0 (float vectors, ``bucket`` metadata column) plus a row table."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self.conn: Any = None
        self.search_sql = (
            "WITH knn AS (SELECT rowid, distance FROM vec_items WHERE embedding MATCH ? AND k = ?) "
            "SELECT i.id, i.bucket, i.metadata, knn.distance FROM knn JOIN items AS i ON i.id = knn.rowid "
            "ORDER BY knn.distance")
        self.filtered_sql = (
            "WITH knn AS (SELECT rowid, distance FROM vec_items WHERE embedding MATCH ? AND k = ? AND bucket < ?) "
            "SELECT i.id, i.bucket, i.metadata, knn.distance FROM knn JOIN items AS i ON i.id = knn.rowid "
            "ORDER BY knn.distance")

    def connect(self) -> Any:
        import sqlite_vec

        conn = sqlite_module().connect(str(self.path), check_same_thread=False)
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        conn.execute("PRAGMA journal_mode = WAL")
        return conn

    def open(self) -> None:
        self.conn = self.connect()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def load(self, data: Dataset) -> float:
        conn = self.conn
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, bucket INTEGER NOT NULL, metadata TEXT NOT NULL)")
        conn.execute(f"CREATE VIRTUAL TABLE vec_items USING vec0(embedding float[{self.dim}] "
                     "distance_metric=cosine, bucket integer)")
        buckets = data.buckets().tolist()
        start = time.perf_counter()
        with conn:
            conn.executemany("INSERT INTO items (id, bucket, metadata) VALUES (?, ?, ?)",
                             ((i + 1, buckets[i], json.dumps(_metadata(i + 1))) for i in range(data.n)))
            conn.executemany("INSERT INTO vec_items (rowid, embedding, bucket) VALUES (?, ?, ?)",
                             ((i + 1, data.vectors[i].tobytes(), buckets[i]) for i in range(data.n)))
        return time.perf_counter() - start

    def search(self, query: np.ndarray[Any, Any], k: int, conn: Any = None) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = (conn or self.conn).execute(self.search_sql, [query.tobytes(), k]).fetchall()
        return rows

    def search_filtered(self, query: np.ndarray[Any, Any], k: int, below: int) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.conn.execute(self.filtered_sql, [query.tobytes(), k, below]).fetchall()
        return rows
