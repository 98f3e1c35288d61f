"""``bulk_load()`` on a real PostgreSQL server: the HNSW index is dropped for the load and built once
at its end; an interrupted load is detected, reported and repaired. (The conformance suite checks
the backend-independent side: correct searches during and after, exceptions, nesting.)"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from psycopg import sql

import vectorstore
from fixtures.pgstore import open_pg, run
from fixtures.pgtrace import Tracer
from vectorstore.store import AsyncCollection
from vectorstore_postgres.backend import PostgresBackend
from vectorstore_postgres.queries import field_index_name

pytestmark = pytest.mark.postgres


async def field_index_exists(backend: PostgresBackend, collection: str, field: str) -> bool:
    async with backend._pool.connection() as conn:
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", [
            sql.Identifier(backend.settings.schema, field_index_name(collection, field)).as_string()])
        row = await cur.fetchone()
    return bool(row and row[0])


async def index_state(backend: PostgresBackend, name: str) -> tuple[bool, bool]:
    """(the HNSW index exists, the catalog marks it pending)."""
    async with backend._pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
                                 [backend.settings.schema, f"vs_i_{name}"])
        row = await cur.fetchone()
        exists = bool(row and row[0])
        cur = await conn.execute(f'SELECT index_pending_since IS NOT NULL FROM "{backend.settings.schema}".'
                                 "vs_collections WHERE name = %s", [name])
        row = await cur.fetchone()
    return exists, bool(row and row[0])


def _records(n: int, dim: int, seed: int = 0, prefix: str = "r") -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return [{"id": f"{prefix}{i:06d}", "vector": vectors[i], "metadata": {"cat": i % 10}} for i in range(n)]


def _exact(records: list[dict[str, Any]], query: np.ndarray, k: int) -> list[str]:
    matrix = np.stack([r["vector"] for r in records]).astype(np.float64)
    q = query.astype(np.float64)
    dist = 1 - matrix @ q / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q))
    order = sorted(range(len(records)), key=lambda i: (dist[i], records[i]["id"]))
    return [records[i]["id"] for i in order[:k]]


async def _load(col: AsyncCollection, records: list[dict[str, Any]], batch: int) -> None:
    for start in range(0, len(records), batch):
        await col.upsert(records[start:start + batch])


def test_index_is_absent_during_the_load_and_built_once_after(url: str, tracer: Tracer) -> None:
    async def go() -> None:
        # exact_search_below=0: every search takes the index path when there is an index.
        store, backend = await open_pg(url, exact_search_below=0)
        col = await store.create_collection("docs", dim=16, fields={"cat": "int"})
        records = _records(2500, 16)
        await col.upsert(records[:500])
        assert await index_state(backend, "docs") == (True, False)
        assert await field_index_exists(backend, "docs", "cat")
        async with col.bulk_load():
            assert await index_state(backend, "docs") == (False, True)
            assert not await field_index_exists(backend, "docs", "cat")
            await _load(col, records[500:], 250)
            assert await index_state(backend, "docs") == (False, True)
            # No index: the search is an exact scan, so it equals the reference exactly.
            for i in (3, 1700):
                query = records[i]["vector"] + 0.05
                assert [h.id for h in await col.search(query, k=10)] == _exact(records, query, 10)
        assert await index_state(backend, "docs") == (True, False)
        assert await field_index_exists(backend, "docs", "cat")
        trace = tracer.text()
        # Built once, at the end, with the COPY rebuild's memory setting, and analysed.
        # create_collection's two (the B-tree on "cat", the HNSW index), and the two builds
        assert trace.count('CommandComplete\t "CREATE INDEX"') == 4
        end = trace.rindex("CREATE INDEX")
        assert trace.rindex("maintenance_work_mem", 0, end) < end < trace.rindex("ANALYZE")
        async with backend._pool.connection() as conn:
            cur = await conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
                                     [f"{backend.settings.schema}.vs_c_docs"])
            assert (await cur.fetchone()) == (2500.0,)
        hits = await col.search(records[42]["vector"], k=5)
        assert hits[0].id == "r000042" and len(hits) == 5
        await store.aclose()

    run(go())


def test_a_big_copy_batch_inside_the_load_does_not_rebuild_the_index(url: str) -> None:
    """The COPY path rebuilds the index for a big batch into a small table, but not during a bulk
    load, which has dropped it and builds it at its own end."""
    async def go() -> None:
        store, backend = await open_pg(url, copy_threshold=100, rebuild_index_above=1000)
        col = await store.create_collection("big", dim=8)
        async with col.bulk_load():
            await col.upsert(_records(3000, 8))
            assert await index_state(backend, "big") == (False, True)
        assert await index_state(backend, "big") == (True, False)
        await store.aclose()

    run(go())


def test_the_last_of_concurrent_bulk_loads_builds_the_index(url: str) -> None:
    async def go() -> None:
        store, backend = await open_pg(url)
        col = await store.create_collection("twice", dim=8)
        first, second = col.bulk_load(), col.bulk_load()
        await first.__aenter__()
        await second.__aenter__()
        await col.upsert(_records(300, 8))
        await first.__aexit__(None, None, None)
        assert await index_state(backend, "twice") == (False, True)  # the second still runs
        checks = {c.name: c for c in await store.doctor()}
        assert checks["index twice"].ok is None and "is running" in checks["index twice"].detail
        await second.__aexit__(None, None, None)
        assert await index_state(backend, "twice") == (True, False)
        assert "index twice" not in {c.name for c in await store.doctor()}
        await store.aclose()

    run(go())


CRASH = textwrap.dedent("""
    import os, sys
    import numpy as np
    import vectorstore as vs
    store = vs.connect(sys.argv[1])
    col = store.collection("crashy")
    rng = np.random.default_rng(1)
    with col.bulk_load():
        col.upsert([{"id": f"c{i:04d}", "vector": rng.normal(size=8)} for i in range(400)])
        print("loaded", flush=True)
        os._exit(3)  # the process dies inside the block: no __exit__, no finally
""")


def test_an_interrupted_bulk_load_is_reported_and_repaired(url: str, caplog: pytest.LogCaptureFixture) -> None:
    async def setup() -> None:
        store, _ = await open_pg(url)
        col = await store.create_collection("crashy", dim=8, fields={"cat": "int"})
        await col.upsert(_records(100, 8))
        await store.aclose()

    run(setup())
    done = subprocess.run([sys.executable, "-c", CRASH, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "loaded" in done.stdout, done.stderr

    async def check() -> None:
        with caplog.at_level(logging.WARNING, logger="vectorstore.postgres"):
            store, backend = await open_pg(url)
        # Opening the store reports it.
        assert any("'crashy' has no HNSW index" in r.getMessage() and "bulk_load()" in r.getMessage()
                   for r in caplog.records)
        assert await index_state(backend, "crashy") == (False, True)
        assert not await field_index_exists(backend, "crashy", "cat")
        # doctor() reports it as a problem, with the fix.
        checks = {c.name: c for c in await store.doctor()}
        bad = checks["index crashy"]
        assert bad.ok is False and "interrupted" in bad.detail and "bulk_load()" in bad.fix
        # Searches are still correct (exact).
        col = await store.collection("crashy")
        assert await col.count() == 500
        got = (await col.get(["c0123"]))[0]
        assert got.vector is not None
        assert (await col.search(got.vector, k=1))[0].id == "c0123"
        # The repair: an empty bulk load builds the pending index.
        async with col.bulk_load():
            pass
        assert await index_state(backend, "crashy") == (True, False)
        assert await field_index_exists(backend, "crashy", "cat")
        assert "index crashy" not in {c.name for c in await store.doctor()}
        await store.aclose()

    run(check())


def test_a_dropped_collection_ends_its_bulk_load_quietly(url: str) -> None:
    async def go() -> None:
        store, _ = await open_pg(url)
        col = await store.create_collection("gone", dim=4)
        async with col.bulk_load():
            await col.upsert(_records(10, 4))
            assert await store.drop_collection("gone")
        with pytest.raises(vectorstore.CollectionNotFound):
            async with col.bulk_load():
                pass
        await store.aclose()

    run(go())


def test_the_index_build_gets_a_budget_for_the_rows_loaded(url: str) -> None:
    """The build at the end of a load runs with statement_timeout per 1,000 rows, counted (right after
    the load the planner's estimate and the statistics collector's count can still say ~0): a build
    longer than one statement_timeout completes."""
    records = _records(6_000, 64, seed=9)  # (a build of ~3 s here: three statement timeouts, budget six)

    async def go() -> None:
        store, backend = await open_pg(url, statement_timeout="1s")
        col = await store.create_collection("budget", dim=64)
        async with col.bulk_load():
            await _load(col, records, 2000)
        assert await index_state(backend, "budget") == (True, False)
        assert [h.id for h in await col.search(records[7]["vector"], k=1)] == [records[7]["id"]]
        await store.aclose()

    run(go())
