"""Searching: planning each query, running a batch in one round trip, and ranking the hits.

One pipelined round trip per query batch. Every connection starts with the default search
settings (``hnsw.ef_search`` and iterative scans) as session settings, so a search that needs
nothing else sends its statements alone; otherwise a transaction whose ``set_config(..., true)``
(= ``SET LOCAL``) ends with it (:meth:`Search.scope`). Small collections are searched exactly;
larger ones through the HNSW index, re-ranked in float64 (pgvector accumulates in float32), with
an exact re-run when the index returns too few rows (filters never starve results) or a tie may
cross the k-th place. :meth:`Search.explain_search` and :meth:`Search.search_sql` show the
statement a search sends.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import pq

from vectorstore.filters import Filter, MatchAll
from vectorstore.records import Hit, Vector
from vectorstore.schema import CollectionSpec
from vectorstore.scoring import exact_distances
from vectorstore_postgres.catalog import Catalog
from vectorstore_postgres.connection import PooledConnection
from vectorstore_postgres.dialect import Dialect
from vectorstore_postgres.pool import Connections
from vectorstore_postgres.queries import CollectionSQL
from vectorstore_postgres.reads import decode

AConn = psycopg.AsyncConnection[Any]

#: Extra rows fetched beyond k and re-ranked in float64: the server ranks with float32
#: arithmetic, so near-ties around the k-th place can come back in the wrong order.
RERANK_MARGIN = 8
#: hnsw.max_scan_tuples of an iterative index scan (at least 50 per row fetched).
MAX_SCAN_TUPLES = 20_000


def default_settings(dialect: Dialect, ef_search: int) -> list[tuple[str, str]]:
    """The search settings every connection starts its session with (the ``ef_search`` option,
    :data:`MAX_SCAN_TUPLES`): a search that needs no other sends no SET."""
    return dialect.search_settings(ef_search, MAX_SCAN_TUPLES)


def _search_cursor(conn: AConn, reuse: bool) -> psycopg.AsyncCursor[Any]:
    """The cursor for a search's statements: the pooled connection's kept one when the caller
    holds ``conn`` alone (``reuse``), else a new binary cursor."""
    return conn.search_cursor() if reuse and isinstance(conn, PooledConnection) else conn.cursor(binary=True)


class Search:
    """The searches of every collection."""

    def __init__(self, connections: Connections, catalog: Catalog) -> None:
        self.connections = connections
        self.catalog = catalog
        #: The session defaults (:func:`default_settings`), the very list the connections start with.
        self.default_settings = connections.session_settings
        self._settings_cache: dict[tuple[int | None, int, bool], list[tuple[str, str]]] = {}

    # -- search ----------------------------------------------------------------

    async def search(self, spec: CollectionSpec, queries: Vector, k: int, where: Filter,
                     max_distance: float | None, ef_search: int | None, include_vector: bool) -> list[list[Hit]]:
        if spec.dim is None:  # (the core refuses it first) no record of it is ever a hit
            return [[] for _ in range(len(queries))]
        q = self.catalog.q(spec)
        limits = (k + RERANK_MARGIN, k + 1)
        vectors = list(queries)  # (the rows of the matrix, taken once)
        plans = [self.connections.dialect.index_usable(query, limits[1]) for query in vectors]
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
        async with self.connections.connection(spec.name) as conn:
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
        async with self.connections.connection(spec.name) as conn:
            statement, params = await self._search_call(conn, spec, query, k, where)
            return psycopg.AsyncClientCursor(conn).mogrify(statement, params)

    @property
    def search_session_settings(self) -> list[tuple[str, str]]:
        """The settings every pooled connection starts with, as (name, value): a search with the
        default settings runs under these."""
        return list(self.default_settings)

    async def _search_call(self, conn: AConn, spec: CollectionSpec, query: Vector, k: int,
                           where: Filter | None) -> tuple[str, list[Any]]:
        """The statement and parameters of :meth:`search` for one query with the default settings."""
        q = self.catalog.q(spec)
        limits = (k + RERANK_MARGIN, k + 1)
        indexed = self.connections.dialect.index_usable(query, limits[1])
        gated = await self._gated(conn, q) if indexed else False
        statement, fparams, uses_index = q.search(where or MatchAll(), indexed=indexed, limits=limits, gated=gated,
                                                  vector=False)
        return statement, self._params(q, query, fparams, uses_index, gated)

    @contextlib.asynccontextmanager
    async def scope(self, conn: AConn, ef_search: int | None, fetch: int,
                    filtered: bool = False) -> AsyncIterator[None]:
        """The search settings for one batch of statements, sent in one pipeline.

        Every connection starts with the default search settings (the ``ef_search`` option,
        :data:`MAX_SCAN_TUPLES`) as session settings (see :meth:`Connections.configure`), so a search that
        needs nothing else sends its statements alone: no BEGIN, no SET, no COMMIT. Otherwise the
        batch runs in one pipelined transaction whose ``set_config(..., true)`` (= ``SET LOCAL``)
        ends with it, so the session never keeps another value: BEGIN, the settings, the statements
        and COMMIT leave in one flush (COMMIT, not ROLLBACK: psycopg drops every prepared statement
        on ROLLBACK).
        Inside a caller's transaction a rolled-back savepoint ends the settings instead.
        """
        settings = self._search_settings(ef_search, fetch, filtered)
        if settings is self.default_settings:
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
        """The settings a search needs; the very list :attr:`default_settings` when they are the
        session defaults (remembered per ``(ef_search, fetch, filtered)``). A filtered batch
        plans each statement for its values (``plan_cache_mode``: psycopg prepares a statement
        run often enough, and a prepared statement would keep one plan for every value)."""
        key = (ef_search, fetch, filtered)
        found = self._settings_cache.get(key)
        if found is None:
            ef = max(ef_search or self.connections.settings.ef_search, fetch)
            found = self.connections.dialect.search_settings(ef, scan_tuples=max(MAX_SCAN_TUPLES, 50 * fetch))
            if filtered:
                found.append(("plan_cache_mode", "force_custom_plan"))
            if found == self.default_settings:
                found = self.default_settings
            if len(self._settings_cache) < 4096:
                self._settings_cache[key] = found
        return found

    def _params(self, q: CollectionSQL, query: Vector, fparams: list[Any], uses_index: bool,
                gated: bool) -> list[Any]:
        # (In the index branch the distance in the select list takes the vector first.)
        assert q.spec.dim is not None, "a collection without vectors is never searched"
        vec = self.connections.dialect.encode(query, q.spec.dim)
        if uses_index and gated:
            gate = self.connections.settings.exact_search_below
            return [gate, *fparams, vec, vec, gate, *fparams]
        if uses_index:
            return [vec, *fparams]
        return [*fparams, vec]

    async def _gated(self, conn: AConn, q: CollectionSQL) -> bool:
        """Whether the index statement must carry the size gate (the table may be small)."""
        gate = self.connections.settings.exact_search_below
        if gate == 0 or not q.has_index:
            return False
        return await self.catalog.estimated_rows(conn, q) < gate

    async def _run_search(self, q: CollectionSQL, queries: Sequence[Vector], plans: list[bool], limits: tuple[int, int],
                          where: Filter, ef_search: int | None, include_vector: bool) -> list[list[Any]]:
        if self.connections.held.get() is not None:  # inside a transaction: its connection, in a savepoint
            async with self.connections.connection(q.spec.name) as conn:
                return await self._search_on(conn, q, queries, plans, limits, where, ef_search, include_vector,
                                             reuse=False)
        # The hot path: a pooled connection held alone, with no context-manager layers.
        return await self.connections.leased(q.spec.name, lambda conn: self._search_on(
            conn, q, queries, plans, limits, where, ef_search, include_vector, reuse=True))

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
        if len(calls) == 1 and self._search_settings(ef_search, limits[1]) is self.default_settings:
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
            async with self.scope(conn, ef_search, limits[1], filtered):  # one pipeline
                await cur.executemany(calls[0][0], [params for _, params in calls], returning=True)
            results = [await cur.fetchall()]
            while cur.nextset():
                results.append(await cur.fetchall())
            return results
        cursors: list[psycopg.AsyncCursor[Any]] = []
        async with self.scope(conn, ef_search, limits[1], filtered):  # one pipeline
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
                rid, vector, fields, metadata = decode(self.connections.dialect, spec, (row[1], row[2], *row[4:]))
                hits.append(Hit(id=rid, distance=row[3], similarity=similarity(row[3]), fields=fields,
                                metadata=metadata, vector=vector if include_vector else None))
            return hits
        # The exact branch: the vectors, ranked here in float64 (pgvector computes in float32).
        dialect = self.connections.dialect
        decoded = [decode(dialect, spec, (row[1], row[2], *row[4:])) for row in rows]
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
