"""B-tree indexes on declared fields, and filtered searches planned for their values, on a real
PostgreSQL server: a filter passing few rows is answered from those rows, not by an HNSW scan
discarding the rest. (The conformance suite checks that filtered searches return what they
must on every backend; these tests check how PostgreSQL gets there.)"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from fixtures.pgstore import open_pg, run
from vectorstore_postgres import migrations
from vectorstore_postgres.backend import PostgresBackend
from vectorstore_postgres.queries import field_index_name

pytestmark = pytest.mark.postgres

DIM = 16


def _records(n: int) -> list[dict[str, Any]]:
    vectors = np.random.default_rng(3).normal(size=(n, DIM)).astype(np.float32)
    return [{"id": i + 1, "vector": vectors[i], "fields": {"cat": i % 100}} for i in range(n)]


def _exact(records: list[dict[str, Any]], query: np.ndarray, k: int, below: int) -> list[int]:
    kept = [r for r in records if r["fields"]["cat"] < below]
    matrix = np.stack([r["vector"] for r in kept]).astype(np.float64)
    q = query.astype(np.float64)
    dist = 1 - matrix @ q / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q))
    order = sorted(range(len(kept)), key=lambda i: (dist[i], kept[i]["id"]))
    return [kept[i]["id"] for i in order[:k]]


async def _field_indexes(backend: PostgresBackend, table: str) -> set[str]:
    async with backend._pool.connection() as conn:
        cur = await conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s "
                                 "AND indexname LIKE 'vs\\_f\\_%%'", [backend.settings.schema, table])
        return {row[0] for row in await cur.fetchall()}


async def _index_scans(backend: PostgresBackend, index: str) -> int:
    """Scans of ``index`` so far, as the statistics know them once every backend of the pool
    (pool_max=1: the one that ran the searches) has reported its own."""
    async with backend._pool.connection() as conn:
        await conn.execute("SELECT pg_stat_force_next_flush()")  # (when this backend next goes idle)
    async with backend._pool.connection() as conn:
        cur = await conn.execute("SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes "
                                 "WHERE schemaname = %s AND indexrelname = %s", [backend.settings.schema, index])
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def test_declared_fields_of_orderable_types_get_a_btree_index(url: str) -> None:
    """int, float, date and timestamp fields get one each, named after collection and field (two
    48-character names still fit PostgreSQL's 63); text, bool, json and array fields none. A text
    value too long for a B-tree entry is stored (an index on the field would refuse it)."""
    async def go() -> None:
        store, backend = await open_pg(url)
        long_name = "c" * 48
        fields = {"title": "text", "year": "int", "score": "float", "day": "date", "at": "timestamp",
                  "seen": "bool", "extra": "json", "tags": "text[]", "ids": "int[]", "f" * 48: "int"}
        await store.create_collection(long_name, dim=DIM, fields=fields)
        await store.create_collection("other", dim=DIM, fields={"year": "int"})
        want = {field_index_name(long_name, f) for f in ("year", "score", "day", "at", "f" * 48)}
        assert await _field_indexes(backend, f"vs_c_{long_name}") == want
        col = await store.collection(long_name)
        text = "".join(chr(0x4E00 + i % 20000) for i in range(4000))  # ~12 kB, hardly compressible
        await col.upsert([{"id": "a", "vector": np.ones(DIM, dtype=np.float32), "fields": {"title": text}}])
        assert (await col.get(["a"]))[0].fields["title"] == text
        assert await _field_indexes(backend, "vs_c_other") == {field_index_name("other", "year")}
        assert field_index_name("other", "year") != field_index_name(long_name, "year")
        await store.drop_collection("other")
        assert await _field_indexes(backend, "vs_c_other") == set()
        await store.aclose()

    run(go())


def test_a_selective_filter_reads_the_field_index_even_after_many_searches(url: str) -> None:
    """One statement serves ``cat < 50`` (half the rows) and ``cat < 1`` (1 %). Prepared, it
    would settle on one plan for both after five runs; run unprepared (one search) or under
    ``plan_cache_mode = force_custom_plan`` (search_many), each run is planned for its values,
    and the 1 % ones read the B-tree: as many index scans as such searches, after a dozen at
    50 % first. Every answer is the exact one."""
    records = _records(10_000)  # (below ~10,000 rows the planner prefers the HNSW scan even at 1 %)
    index = field_index_name("docs", "cat")

    async def go() -> None:
        store, backend = await open_pg(url, pool_max=1, exact_search_below=0)
        col = await store.create_collection("docs", dim=DIM, id_type="int", fields={"cat": "int"})
        async with col.bulk_load():
            await col.upsert(records)
        queries = [records[i]["vector"] + np.float32(0.1) for i in range(12)]
        for query in queries:
            hits = await col.search(query, k=5, where={"cat": {"$lt": 50}})
            assert len(hits) == 5
        before = await _index_scans(backend, index)
        for query in queries:
            hits = await col.search(query, k=5, where={"cat": {"$lt": 1}})
            assert [h.id for h in hits] == _exact(records, query, 5, 1)
        after_search = await _index_scans(backend, index)
        assert after_search - before >= len(queries)
        many = await col.search_many(np.stack(queries), k=5, where={"cat": {"$lt": 1}})
        assert [[h.id for h in hits] for hits in many] == [_exact(records, q, 5, 1) for q in queries]
        assert await _index_scans(backend, index) - after_search >= len(queries)
        await store.aclose()

    run(go())


def test_filtered_count_page_and_delete_are_planned_for_their_values(url: str) -> None:
    """count, page and delete with a filter are never prepared (so never run a generic plan), and
    after a dozen counts passing half the rows, those passing 1 % read the field's B-tree."""
    records = _records(10_000)
    index = field_index_name("docs", "cat")

    async def go() -> None:
        store, backend = await open_pg(url, pool_max=1)
        col = await store.create_collection("docs", dim=DIM, id_type="int", fields={"cat": "int"})
        async with col.bulk_load():
            await col.upsert(records)
        for _ in range(12):
            assert await col.count({"cat": {"$lt": 50}}) == 5000
        before = await _index_scans(backend, index)
        for _ in range(12):
            assert await col.count({"cat": {"$lt": 1}}) == 100
        for _ in range(7):  # (psycopg would prepare it from the sixth run on)
            page = [r.id for r in await col.page(limit=1000, where={"cat": {"$lt": 1}})]
            assert page == [r["id"] for r in records if r["fields"]["cat"] < 1]
        assert await col.delete(where={"cat": {"$lt": 1}}) == 100
        assert await _index_scans(backend, index) - before >= 14
        assert await col.count({"cat": {"$lt": 1}}) == 0
        async with backend._pool.connection() as conn:  # (pool_max=1: the connection that ran them)
            cur = await conn.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [row[0] for row in await cur.fetchall()]
        assert not [statement for statement in prepared if '"cat" <' in statement], prepared
        await store.aclose()

    run(go())


def test_migration_6_indexes_the_fields_of_existing_collections(url: str, server_url: str) -> None:
    """A store from before migration 6: its collections get their field indexes when it is next
    opened (a table dropped by hand is skipped), under the names new collections use, whether the
    catalog lists fields as pairs or, as older catalogs do, as an object."""
    async def go() -> None:
        store, backend = await open_pg(url)
        schema = backend.settings.schema
        await store.create_collection("films", dim=DIM, fields={"year": "int", "rating": "float", "genre": "text"})
        await store.create_collection("gone", dim=DIM, fields={"year": "int"})
        await store.create_collection("shows", dim=DIM, fields={"season": "int", "title": "text"})
        await store.aclose()
        names = [field_index_name("films", "year"), field_index_name("films", "rating")]
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, field_index_name("shows", "season"))))
            conn.execute(sql.SQL("UPDATE {} SET spec = jsonb_set(spec, '{{fields}}', %s) WHERE name = 'shows'").format(
                sql.Identifier(schema, migrations.CATALOG_TABLE)), [Jsonb({"season": "int", "title": "text"})])
            for name in names:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, name)))
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, "vs_c_gone")))
            conn.execute(sql.SQL("DELETE FROM {} WHERE version = 6").format(
                sql.Identifier(schema, migrations.VERSION_TABLE)))
        store, backend = await open_pg(url)
        assert await _field_indexes(backend, "vs_c_films") == set(names)
        assert await _field_indexes(backend, "vs_c_shows") == {field_index_name("shows", "season")}
        assert set((await store.collection("shows")).spec.fields) == {"season", "title"}
        await store.aclose()

    run(go())
