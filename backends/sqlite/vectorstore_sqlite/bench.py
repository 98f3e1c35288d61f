"""``vectorstore bench`` on SQLite: the backend's side of :class:`vectorstore.spi.Benchmarkable`
(the ``bench_*`` methods of :class:`~vectorstore_sqlite.backend.SqliteBackend` call these) and the
raw baseline it is measured against.

The baseline is sqlite-vec's ``vec0`` table (float vectors, ``bucket`` as a vec0 metadata column,
so filters run inside the KNN) joined to a row table for the payload, in its own file under the
bench's work directory, on the same SQLite module vectorstore uses (the stdlib ``sqlite3`` when it
can load extensions, else ``sqlean``). It returns what vectorstore's hits carry: id, the
``bucket`` field, metadata and distance. Its search is sqlite-vec's exact brute force.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from vectorstore.errors import NotSupported
from vectorstore.records import Vector
from vectorstore.schema import CollectionSpec
from vectorstore.spi import ServerFacts
from vectorstore_sqlite.driver import Driver, load_sqlite_vec

#: sqlite-vec's ``distance_metric`` per metric the baseline compares.
_METRICS = {"cosine": "cosine"}


def baseline(drv: Driver, dim: int, metric: str, workdir: Path) -> RawSqlite:
    if metric not in _METRICS:
        raise NotSupported(f"the SQLite baseline compares {', '.join(_METRICS)} vectors, not {metric!r}; "
                           "benchmark a data set with one of those metrics")
    raw = RawSqlite(drv, workdir / "raw.db", dim, _METRICS[metric])
    raw.open()
    return raw


def server(drv: Driver) -> ServerFacts:
    """The SQLite module in use (``sqlite3`` or ``sqlean``)."""
    return ServerFacts(facts={"module": drv.name})


def _metadata(i: int) -> dict[str, int]:
    return {"n": i}


class RawSqlite:
    """sqlite-vec's vec0 (float vectors, ``bucket`` metadata column) plus a row table (a
    :class:`vectorstore.spi.RawBaseline`)."""

    description = "vec0 + row table"
    exact = True
    repeat = False

    def __init__(self, drv: Driver, path: Path, dim: int, distance: str) -> None:
        self.driver = drv
        self.path = path
        self.dim = dim
        self.distance = distance
        self.conn: Any = None
        self._scratch = 0
        self.search_sql = (
            "WITH knn AS (SELECT rowid, distance FROM vec_items WHERE embedding MATCH ? AND k = ?) "
            "SELECT i.id, i.bucket, i.metadata, knn.distance FROM knn JOIN items AS i ON i.id = knn.rowid "
            "ORDER BY knn.distance")
        self.filtered_sql = (
            "WITH knn AS (SELECT rowid, distance FROM vec_items WHERE embedding MATCH ? AND k = ? AND bucket < ?) "
            "SELECT i.id, i.bucket, i.metadata, knn.distance FROM knn JOIN items AS i ON i.id = knn.rowid "
            "ORDER BY knn.distance")

    def connect(self) -> Any:
        conn = self.driver.module.connect(str(self.path), check_same_thread=False)
        load_sqlite_vec(conn)
        conn.execute("PRAGMA journal_mode = WAL")
        return conn

    def open(self) -> None:
        self.conn = self.connect()

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    async def load(self, vectors: Vector, buckets: Sequence[int], *, scratch: bool = False) -> float:
        """The row table and the vec0 table, filled in one transaction; seconds (of the inserts).
        Scratch tables are dropped after."""
        conn = self.conn
        items, vec_items = "items", "vec_items"
        if scratch:
            self._scratch += 1
            items, vec_items = f"items_{self._scratch}", f"vec_items_{self._scratch}"
        conn.execute(f"CREATE TABLE {items} (id INTEGER PRIMARY KEY, bucket INTEGER NOT NULL, metadata TEXT NOT NULL)")
        conn.execute(f"CREATE VIRTUAL TABLE {vec_items} USING vec0(embedding float[{self.dim}] "
                     f"distance_metric={self.distance}, bucket integer)")
        start = time.perf_counter()
        with conn:
            conn.executemany(f"INSERT INTO {items} (id, bucket, metadata) VALUES (?, ?, ?)",
                             ((i + 1, buckets[i], json.dumps(_metadata(i + 1))) for i in range(len(vectors))))
            conn.executemany(f"INSERT INTO {vec_items} (rowid, embedding, bucket) VALUES (?, ?, ?)",
                             ((i + 1, vectors[i].tobytes(), buckets[i]) for i in range(len(vectors))))
        elapsed = time.perf_counter() - start
        if scratch:
            conn.execute(f"DROP TABLE {vec_items}")
            conn.execute(f"DROP TABLE {items}")
        return elapsed

    async def build_index(self, spec: CollectionSpec) -> None:
        """Nothing: vec0 searches by brute force."""
        return None

    async def set_ef_search(self, ef_search: int | None) -> None:
        """Nothing to set: the search is exact."""

    async def explain(self, query: Vector, k: int) -> None:
        """SQLite has no server whose time could be told apart from the caller's."""
        return None

    def _search(self, conn: Any, query: Vector, k: int) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = conn.execute(self.search_sql, [query.tobytes(), k]).fetchall()
        return rows

    async def search(self, query: Vector, k: int) -> list[tuple[Any, ...]]:
        return self._search(self.conn, query, k)

    async def search_filtered(self, query: Vector, k: int, below: int) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.conn.execute(self.filtered_sql, [query.tobytes(), k, below]).fetchall()
        return rows

    async def search_many(self, queries: Vector, k: int) -> list[list[tuple[Any, ...]]]:
        """sqlite-vec has no batch query: a loop."""
        return [self._search(self.conn, query, k) for query in queries]

    @contextlib.asynccontextmanager
    async def clients(self, count: int, queries: Vector,
                      k: int) -> AsyncIterator[Callable[[int, int], Awaitable[float]]]:
        """``count`` threads, each with a connection of its own (SQLite calls block)."""
        from vectorstore.bench import measure

        conns = [self.connect() for _ in range(count)]
        nq = len(queries)
        spare = iter(conns)

        def make_client() -> Callable[[int], Any]:
            conn = next(spare)
            return lambda i: self._search(conn, queries[i % nq], k)

        async def rate(total: int, warmup: int) -> float:
            nonlocal spare
            if warmup:
                spare = iter(conns)
                await asyncio.to_thread(measure.closed_loop_threads, make_client, count, warmup)
            spare = iter(conns)
            return await asyncio.to_thread(measure.closed_loop_threads, make_client, count, total)

        try:
            yield rate
        finally:
            for conn in conns:
                conn.close()
