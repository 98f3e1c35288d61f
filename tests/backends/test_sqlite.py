"""SQLite backend specifics, on real database files (no mocks).

The shared behaviour is the conformance suite's job; these tests pin what only
the SQLite backend has: the driver choice, WAL, the file and its schema, the
vec0 mirror, the exactness argument of the search (second pass, exhaustive
fallback), the locking model and its errors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vectorstore as vs
from fixtures.sqlite_files import backend_of, raw, url
from vectorstore.config import resolve
from vectorstore.filters import parse_filter
from vectorstore.sqlfilter import compile_filter
from vectorstore_conformance.helpers import reference_distances
from vectorstore_sqlite import driver as drv
from vectorstore_sqlite.backend import WRITER_CACHE_KIB, parse_settings
from vectorstore_sqlite.sql import DIALECT, MIGRATIONS


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(db: Path) -> Any:
    s = vs.connect(url(db))
    yield s
    s.close()






# -- driver --------------------------------------------------------------------


def test_sqlite_driver_choice_follows_extension_support() -> None:
    stdlib_ok = hasattr(sqlite3.Connection, "enable_load_extension")
    chosen = drv.choose_driver({})
    if stdlib_ok:
        assert (chosen.name, chosen.label) == ("sqlite3", "stdlib sqlite3")
    else:
        assert chosen.name == "sqlean"
        assert "cannot load extensions" in chosen.reason
        assert chosen.label.startswith("sqlean.py")
    assert chosen.module.sqlite_version == chosen.sqlite_version


def test_sqlite_driver_can_be_forced() -> None:
    forced = drv.choose_driver({drv.ENV_VAR: "sqlean"})
    assert forced.name == "sqlean" and forced.module is importlib.import_module("sqlean")
    assert drv.ENV_VAR in forced.reason
    with pytest.raises(vs.ConfigError, match="'sqlite3' or 'sqlean'"):
        drv.choose_driver({drv.ENV_VAR: "pysqlite"})
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        assert drv.choose_driver({drv.ENV_VAR: "sqlite3"}).name == "sqlite3"
    else:
        with pytest.raises(vs.ConfigError, match="cannot load extensions"):
            drv.choose_driver({drv.ENV_VAR: "sqlite3"})


def test_sqlite_doctor_reports_module_versions_and_wal(store: vs.Store, db: Path) -> None:
    checks = {c.name: c for c in store.doctor()}
    chosen = drv.driver()
    assert checks["backend"].detail == f"sqlite: {db}"
    assert chosen.label in checks["sqlite module"].detail and chosen.reason in checks["sqlite module"].detail
    assert checks["sqlite version"].detail == f"SQLite {chosen.sqlite_version}"
    assert checks["sqlite-vec"].detail.startswith("sqlite-vec v")
    assert checks["journal mode"].ok is True and "wal" in checks["journal mode"].detail
    assert all(c.ok is not False for c in checks.values()), checks
    health = store.health()
    assert health.ok and health.details["journal_mode"] == "wal" and health.details["module"] == chosen.name


ALL_VERSIONS = [(version,) for version, _ in MIGRATIONS]


# -- URLs, file, schema --------------------------------------------------------


def test_sqlite_wal_and_pragmas_on_the_file(store: vs.Store, db: Path) -> None:
    store.create_collection("docs", dim=2)
    conn = raw(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        assert {"vs_collections", "vs_schema_version", "docs", "docs__vec"} <= tables
        assert conn.execute("SELECT version FROM vs_schema_version ORDER BY version").fetchall() == ALL_VERSIONS
    finally:
        conn.close()
    backend = backend_of(store)
    assert store.run(backend._writer.fetchall("PRAGMA cache_size")) == [(-WRITER_CACHE_KIB,)]


def test_sqlite_relative_url_and_missing_parent_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with vs.connect("sqlite:///nested/dir/rel.db") as s:
        s.create_collection("c", dim=2)
        assert backend_of(s).settings.path == tmp_path / "nested" / "dir" / "rel.db"
    assert (tmp_path / "nested" / "dir" / "rel.db").is_file()


def test_sqlite_url_options() -> None:
    settings = parse_settings(resolve("sqlite:////tmp/x.db?timeout=250ms&readers=3"))
    assert (settings.path, settings.timeout, settings.readers) == (Path("/tmp/x.db"), 0.25, 3)
    assert parse_settings(resolve("sqlite:////tmp/x.db?timeout=1s", {"timeout": 9})).timeout == 9.0
    with pytest.raises(vs.ConfigError, match=r"unknown option.*journal"):
        parse_settings(resolve("sqlite:////tmp/x.db?journal=delete"))
    with pytest.raises(vs.ConfigError, match="no host"):
        parse_settings(resolve("sqlite://server/x.db"))
    with pytest.raises(vs.ConfigError, match="memory://"):
        parse_settings(resolve("sqlite:///:memory:"))


def test_sqlite_migrations_are_idempotent_and_refuse_newer_files(db: Path) -> None:
    for _ in range(3):
        vs.connect(url(db)).close()
    conn = raw(db)
    assert conn.execute("SELECT version FROM vs_schema_version ORDER BY version").fetchall() == ALL_VERSIONS
    conn.execute("INSERT INTO vs_schema_version VALUES (99, 'future')")
    conn.close()
    with pytest.raises(vs.BackendUnavailable, match="newer vectorstore"):
        vs.connect(url(db))


#: A store file as vectorstore wrote it before records could lack a vector (schema version 2):
#: the DDL of that release, verbatim, with one vec0-mirrored collection and one without.
_V2_COLLECTIONS = {
    "docs": {"name": "docs", "dim": 2, "metric": "l2", "fields": {"n": "int"},
             "index": {"m": 16, "ef_construction": 64}, "id_type": "text"},
    "dots": {"name": "dots", "dim": 2, "metric": "inner_product", "fields": {},
             "index": {"m": 16, "ef_construction": 64}, "id_type": "text"},
}
_V2_SCHEMA = [
    'CREATE TABLE "vs_schema_version" (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)',
    'CREATE TABLE IF NOT EXISTS "vs_collections" (name TEXT PRIMARY KEY NOT NULL, '
    "spec TEXT NOT NULL CHECK (json_valid(spec)), created_at TEXT NOT NULL)",
    'CREATE TABLE IF NOT EXISTS "vs_sequences" (name TEXT PRIMARY KEY NOT NULL, last INTEGER NOT NULL)',
    "INSERT INTO vs_schema_version VALUES (1, '2025-01-01T00:00:00+00:00'), (2, '2025-01-01T00:00:00+00:00')",
    'CREATE TABLE "docs" (_key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "n" INTEGER, _norm REAL NOT NULL, '
    "_vector BLOB NOT NULL, _metadata TEXT NOT NULL)",
    'CREATE INDEX "docs__norm" ON "docs" (_norm)',
    'CREATE VIRTUAL TABLE "docs__vec" USING vec0(embedding float[2] distance_metric=l2)',
    'CREATE TRIGGER "docs__au" AFTER UPDATE OF _vector ON "docs" BEGIN UPDATE "docs__vec" SET embedding = '
    "NEW._vector WHERE rowid = NEW._key; END",
    'CREATE TRIGGER "docs__ad" AFTER DELETE ON "docs" BEGIN DELETE FROM "docs__vec" WHERE rowid = OLD._key; END',
    'CREATE TABLE "dots" (_key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, _norm REAL NOT NULL, '
    "_vector BLOB NOT NULL, _metadata TEXT NOT NULL)",
    'CREATE INDEX "dots__norm" ON "dots" (_norm)',
]


def _v2_file(path: Path) -> None:
    conn = raw(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in _V2_SCHEMA:
            conn.execute(statement)
        for name, spec in _V2_COLLECTIONS.items():
            conn.execute("INSERT INTO vs_collections VALUES (?, ?, '2025-01-01T00:00:00+00:00')",
                         [name, json.dumps(spec)])
        # Keys with gaps (deleted rows): the migration must keep them, they are the vec0 rowids.
        for key, rid, vec in [(3, "a", [1.0, 0.0]), (7, "b", [0.0, 1.0]), (8, "c", [3.0, 4.0])]:
            blob = np.array(vec, dtype=np.float32).tobytes()
            for table in ("docs", "dots"):
                fields = ', "n"' if table == "docs" else ""
                conn.execute(f'INSERT INTO "{table}" (_key, id{fields}, _norm, _vector, _metadata) VALUES '
                             f"(?, ?{', ?' if fields else ''}, ?, ?, ?)",
                             [key, rid, *([key] if fields else []), float(np.linalg.norm(vec)), blob, "{}"])
            conn.execute('INSERT INTO "docs__vec" (rowid, embedding) VALUES (?, ?)', [key, blob])
    finally:
        conn.close()


def _columns(conn: Any, table: str) -> dict[str, int]:
    """Column name -> NOT NULL flag."""
    return {row[1]: row[3] for row in conn.execute(f'PRAGMA table_info("{table}")')}


def test_sqlite_file_from_before_vectorless_records_is_migrated(db: Path) -> None:
    """A file written before records could lack a vector declares the vector NOT NULL and has a
    vec0 trigger that cannot handle NULL. Opening it rebuilds its collection tables once (keys,
    rows and the vec0 mirror kept); it then takes records without vectors like a new file."""
    _v2_file(db)
    conn = raw(db)
    try:
        assert _columns(conn, "docs")["_vector"] == 1
    finally:
        conn.close()
    with vs.connect(url(db)) as s:
        conn = raw(db)
        try:
            assert conn.execute("SELECT version FROM vs_schema_version ORDER BY version").fetchall() == ALL_VERSIONS
            for table in ("docs", "dots"):
                cols = _columns(conn, table)
                assert (cols["_vector"], cols["_norm"], cols["_metadata"], cols["id"]) == (0, 0, 1, 1)
                assert conn.execute(f'SELECT _key, id FROM "{table}" ORDER BY _key').fetchall() == [
                    (3, "a"), (7, "b"), (8, "c")]
            assert conn.execute("SELECT rowid FROM docs__vec ORDER BY rowid").fetchall() == [(3,), (7,), (8,)]
            objects = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE tbl_name = 'docs'")}
            assert {"docs__cover", "docs__au", "docs__av", "docs__an", "docs__ad"} <= objects
            # The covering index leads with _norm; the index on _norm alone went (migration 5). A
            # collection without a vec0 mirror has no covering index and keeps it.
            assert "docs__norm" not in objects
            assert conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'dots__norm'").fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'vs_rebuild'").fetchone() == (0,)
        finally:
            conn.close()
        docs, dots = s.collection("docs"), s.collection("dots")
        assert [r.fields for r in docs.get(["a", "b", "c"])] == [{"n": 3}, {"n": 7}, {"n": 8}]
        assert [h.id for h in docs.search([0, 1], k=3)] == ["b", "a", "c"]
        docs.upsert([{"id": "a", "vector": None, "fields": {"n": 3}}, {"id": "d", "vector": None}])
        dots.upsert([{"id": "b", "vector": None}, {"id": "d", "vector": None}])
        assert [h.id for h in docs.search([0, 1], k=10)] == ["b", "c"]
        assert [h.id for h in dots.search([0, 1], k=10)] == ["c", "a"]
        assert docs.get(["a"])[0].vector is None and docs.count() == 4
    with vs.connect(url(db)) as s:  # already migrated: opening again changes nothing
        assert s.collection("docs").count() == 4
    conn = raw(db)
    try:
        assert conn.execute("SELECT version FROM vs_schema_version ORDER BY version").fetchall() == ALL_VERSIONS
        mirrored = conn.execute("SELECT rowid FROM docs__vec ORDER BY rowid").fetchall()
        with_vector = conn.execute("SELECT _key FROM docs WHERE _vector IS NOT NULL ORDER BY _key").fetchall()
        assert mirrored == with_vector == [(7,), (8,)]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


@pytest.mark.parametrize("metric", ["cosine", "inner_product"])
def test_sqlite_norm_range_comes_from_an_index(store: vs.Store, db: Path, metric: str) -> None:
    """The exact search reads min and max ``_norm`` per query: from the covering index where the
    collection has one (it leads with ``_norm``; no second index on ``_norm`` alone, which slowed
    loads), else from the index on ``_norm``. Never a scan of the table."""
    col = store.create_collection("n", dim=3, metric=metric, fields={"kind": "text"})
    col.upsert([{"id": f"r{i}", "vector": [i + 1.0, 0.0, 1.0], "fields": {"kind": "a"}} for i in range(20)])
    conn = raw(db)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'n'")}
        expected = "n__cover" if metric == "cosine" else "n__norm"
        assert expected in names and ({"n__cover", "n__norm"} - {expected}).isdisjoint(names)
        for statement in ("SELECT min(_norm) FROM n WHERE _norm > 0", "SELECT max(_norm) FROM n"):
            plan = str(conn.execute("EXPLAIN QUERY PLAN " + statement).fetchall())
            assert expected in plan and "SCAN n" not in plan.replace("COVERING INDEX", ""), plan
    finally:
        conn.close()
    assert [h.id for h in col.search([20.0, 0.0, 1.0], k=2)][:1] == ["r19"]


def test_sqlite_persistence_of_every_field_type(db: Path) -> None:
    fields = {"t": "text", "i": "int", "f": "float", "b": "bool", "d": "date", "ts": "timestamp",
              "j": "json", "ia": "int[]", "ta": "text[]"}
    values = {"t": "é'\"x", "i": -(2**63), "f": 2, "b": False, "d": dt.date(1, 1, 1),
              "ts": dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
              "j": {"nested": [1, 2.5, None, "s"]}, "ia": [2**63 - 1, 0], "ta": ["a", "ü"]}
    vec = np.array([0.1, -3.4028235e38, 1e-45], dtype=np.float32)
    with vs.connect(url(db)) as s:
        col = s.create_collection("all_types", dim=3, metric="l2", fields=fields, id_type="int")
        col.upsert([{"id": 7, "vector": vec, "fields": values, "metadata": {"k": [1, {"x": None}]}},
                    {"id": 8, "vector": vec}])
    with vs.connect(url(db)) as s:
        assert [c.name for c in s.list_collections()] == ["all_types"]
        rec, empty = s.collection("all_types").get([7, 8])
    got = dict(rec.fields)
    assert got["ts"] == dt.datetime(2024, 3, 1, 4, 59, 59, 999999, tzinfo=dt.UTC)
    assert got["ts"].tzinfo == dt.UTC
    assert got == {**values, "f": 2.0, "ts": got["ts"]}
    assert {k: type(v) for k, v in got.items()} == {
        "t": str, "i": int, "f": float, "b": bool, "d": dt.date, "ts": dt.datetime, "j": dict, "ia": list,
        "ta": list}
    assert rec.metadata == {"k": [1, {"x": None}]}
    assert rec.vector.dtype == np.float32 and rec.vector.tobytes() == vec.tobytes()
    assert empty.fields == dict.fromkeys(fields) and empty.metadata == {}


# -- vec0 mirror ----------------------------------------------------------------


def test_sqlite_vec0_mirror_follows_upsert_replace_and_delete(store: vs.Store, db: Path) -> None:
    col = store.create_collection("mirror", dim=2, metric="l2")
    col.upsert([{"id": f"r{i}", "vector": [i, 0]} for i in range(10)])
    col.upsert([{"id": "r0", "vector": [100, 0]}, {"id": "new", "vector": [50, 0]}])
    col.delete(["r1"])
    conn = raw(db)
    try:
        mirrored = dict(conn.execute("SELECT rowid, embedding FROM mirror__vec").fetchall())
        rows = dict(conn.execute("SELECT _key, _vector FROM mirror").fetchall())
    finally:
        conn.close()
    assert mirrored == rows and len(rows) == 10
    assert [h.id for h in col.search([99, 0], k=2)] == ["r0", "new"]
    assert backend_of(store).search_passes["vec0"] >= 1


def test_sqlite_vec0_mirror_has_no_rows_for_records_without_vectors(store: vs.Store, db: Path) -> None:
    col = store.create_collection("holes", dim=2, metric="l2")
    col.upsert([{"id": f"r{i}", "vector": [i, 1] if i % 2 else None} for i in range(6)])  # r1 r3 r5
    col.upsert([{"id": "r1", "vector": None}, {"id": "r2", "vector": [2, 1]}, {"id": "r3", "vector": [30, 1]},
                {"id": "r6", "vector": None}])
    col.delete(["r0", "r5"])
    conn = raw(db)
    try:
        mirrored = dict(conn.execute("SELECT rowid, embedding FROM holes__vec").fetchall())
        with_vector = dict(conn.execute("SELECT _key, _vector FROM holes WHERE _vector IS NOT NULL").fetchall())
        ids = [r[0] for r in conn.execute("SELECT id FROM holes JOIN holes__vec ON holes__vec.rowid = _key "
                                          "ORDER BY id")]
        without = conn.execute("SELECT id, _norm FROM holes WHERE _vector IS NULL ORDER BY id").fetchall()
    finally:
        conn.close()
    assert mirrored == with_vector and ids == ["r2", "r3"]
    assert without == [("r1", None), ("r4", None), ("r6", None)]  # no norm either
    before = backend_of(store).search_passes["vec0"]
    assert [h.id for h in col.search([30, 1], k=10)] == ["r3", "r2"]
    assert backend_of(store).search_passes["vec0"] == before + 1
    col.upsert([{"id": "r2", "vector": None}, {"id": "r3", "vector": None}])
    assert col.search([30, 1], k=10) == [] and col.count() == 5
    conn = raw(db)
    try:
        assert conn.execute("SELECT count(*) FROM holes__vec").fetchone() == (0,)
    finally:
        conn.close()


# -- search exactness -------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
def test_sqlite_ties_at_k_take_the_second_pass(store: vs.Store, metric: str) -> None:
    """40 identical vectors nearest to the query, inserted in shuffled id order: the first SQL pass
    (k + 16 candidates) cannot know which tied rows have the smallest ids; the second pass must."""
    col = store.create_collection("ties", dim=3, metric=metric)
    order = np.random.default_rng(7).permutation(40)
    for i in order:  # one call each, so storage order is the shuffled order
        col.upsert([{"id": f"t{i:02d}", "vector": [1, 2, 3]}])
    col.upsert([{"id": f"f{i:02d}", "vector": [-1, -i, -3]} for i in range(50)])
    backend = backend_of(store)
    before = backend.search_passes["second"]
    hits = col.search([1, 2, 3], k=5)
    assert [h.id for h in hits] == [f"t{i:02d}" for i in range(5)]
    assert backend.search_passes["second"] == before + 1


def test_sqlite_filtered_search_never_starves(store: vs.Store) -> None:
    """1000 records right at the query are excluded by the filter; the 12 matching ones are far.
    Nearest-first-then-filter (vec0 KNN, then WHERE) would return none of them."""
    col = store.create_collection("starve", dim=4, metric="cosine", fields={"kind": "text"})
    rng = np.random.default_rng(3)
    near = np.array([1, 0, 0, 0], dtype=np.float32) + rng.normal(0, 0.01, (1000, 4)).astype(np.float32)
    far = np.array([0, 1, 0, 0], dtype=np.float32) + rng.normal(0, 0.3, (12, 4)).astype(np.float32)
    col.upsert([{"id": f"n{i:04d}", "vector": v, "fields": {"kind": "near"}} for i, v in enumerate(near)])
    col.upsert([{"id": f"f{i:02d}", "vector": v, "fields": {"kind": "far"}} for i, v in enumerate(far)])
    q = np.array([1, 0, 0, 0], dtype=np.float32)
    hits = col.search(q, k=10, where={"kind": "far"})
    dist = reference_distances(vs.Metric.COSINE, far, q)
    expected = sorted(range(12), key=lambda i: (dist[i], i))[:10]
    assert [h.id for h in hits] == [f"f{i:02d}" for i in expected]
    assert col.search(q, k=50, where={"kind": "far"}).__len__() == 12


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
def test_sqlite_scores_match_numpy(store: vs.Store, metric: str) -> None:
    """Mixed norms (and a zero vector where allowed): distances within 1e-6 * max(1, |q||x|) of float64
    NumPy, ranking exactly the reference's (distance, then id), filtered and not, with thresholds."""
    rng = np.random.default_rng(11)
    n, dim = 500, 64
    data = (rng.normal(size=(n, dim)) * rng.uniform(0.01, 50, size=(n, 1))).astype(np.float32)
    if metric != "cosine":
        data[17] = 0.0
    ids = [f"v{i:03d}" for i in range(n)]
    col = store.create_collection("ref", dim=dim, metric=metric, fields={"even": "bool"})
    col.upsert([{"id": rid, "vector": v, "fields": {"even": i % 2 == 0}}
                for i, (rid, v) in enumerate(zip(ids, data, strict=True))])
    m = vs.Metric.parse(metric)
    for q in rng.normal(size=(4, dim)).astype(np.float32) * 3:
        ref = reference_distances(m, data, q)
        for where, allowed in ((None, range(n)), ({"even": True}, range(0, n, 2))):
            truth = sorted(allowed, key=lambda i: (ref[i], ids[i]))
            hits = col.search(q, k=25, where=where, include_vector=True)
            assert [h.id for h in hits] == [ids[i] for i in truth[:25]]
            for h in hits:
                i = ids.index(str(h.id))
                scale = max(1.0, float(np.linalg.norm(q) * np.linalg.norm(data[i])))
                assert abs(h.distance - ref[i]) <= 1e-6 * scale
                assert h.similarity == m.similarity(h.distance)
                assert h.vector.dtype == np.float32 and np.array_equal(h.vector, data[i])
            cut = float(ref[truth[40]])
            threshold = m.similarity(cut)
            limit = m.max_distance(threshold)
            assert limit is not None
            within = [ids[i] for i in truth if ref[i] <= limit]
            got = col.search(q, k=100, where=where, threshold=threshold)
            assert [h.id for h in got] == within[:100]


def test_sqlite_many_queries_at_once(store: vs.Store) -> None:
    col = store.create_collection("many", dim=3, metric="l2")
    col.upsert([{"id": f"p{i}", "vector": [i, 0, 0]} for i in range(10)])
    results = col.search_many([[0, 0, 0], [9, 0, 0], [4.4, 0, 0]], k=2)
    assert [[h.id for h in hits] for hits in results] == [["p0", "p1"], ["p9", "p8"], ["p4", "p5"]]


def test_sqlite_extreme_norms_use_exhaustive_rescoring(store: vs.Store) -> None:
    """Squares of 1e20 overflow float32, so sqlite-vec's distances are inf/NaN there; the backend
    must notice and rank by float64 anyway."""
    col = store.create_collection("huge", dim=2, metric="l2")
    data = np.array([[1e20, 0], [3e20, 0], [-2e20, 1e20], [5, 5]], dtype=np.float32)
    col.upsert([{"id": f"h{i}", "vector": v} for i, v in enumerate(data)])
    q = np.array([2.1e20, 0], dtype=np.float32)
    ref = reference_distances(vs.Metric.L2, data, q)
    hits = col.search(q, k=4)
    assert [h.id for h in hits] == [f"h{i}" for i in np.argsort(ref, kind="stable")]
    assert backend_of(store).search_passes["exhaustive"] >= 1


# -- values and names -----------------------------------------------------------------


def test_sqlite_injection_looking_names_and_values_are_stored_literally(store: vs.Store, db: Path) -> None:
    evil = ["x'); DROP TABLE \"select\"; --", "\" OR 1=1 --", "%_*", "a\nb", "😀"]
    col = store.create_collection("select", dim=2, fields={"order": "text", "group": "text[]"})
    col.upsert([{"id": v, "vector": [1, i + 1], "fields": {"order": v, "group": [v, "x"]}, "metadata": {v: v}}
                for i, v in enumerate(evil)])
    assert col.count() == len(evil)
    for v in evil:
        (rec,) = col.get([v])
        assert (rec.id, rec.fields["order"], rec.fields["group"], rec.metadata) == (v, v, [v, "x"], {v: v})
        assert col.count({"order": v}) == 1
        assert col.count({"group": {"$overlap": [v]}}) == 1
        assert [h.id for h in col.search([1, 1], k=10, where={"order": {"$in": [v]}})] == [v]
    assert col.count({"order": "' OR '1'='1"}) == 0
    assert col.delete(where={"order": evil[0]}) == 1
    assert [c.name for c in store.list_collections()] == ["select"]


def test_sqlite_metadata_paths_name_object_members_and_bind_everything(store: vs.Store) -> None:
    col = store.create_collection("meta", dim=1)
    col.upsert([{"id": "arr", "vector": [1], "metadata": {"a": [5, 6]}},
                {"id": "obj", "vector": [1], "metadata": {"a": {"0": 5}}},
                {"id": "flag", "vector": [1], "metadata": {"a": True}},
                {"id": "one", "vector": [1], "metadata": {"a": 1.0}}])

    def ids(where: dict[str, Any]) -> list[str]:
        return [str(r.id) for r in col.scan(where=where)]

    assert ids({"metadata.a.0": 5}) == ["obj"]  # "0" is a key, never an array index
    assert ids({"metadata.a.0": {"$exists": True}}) == ["obj"]
    assert ids({"metadata.a": {"$exists": True}}) == ["arr", "flag", "obj", "one"]
    assert ids({"metadata.a": 1}) == ["one"] and ids({"metadata.a": True}) == ["flag"]
    assert ids({"metadata.a": {"$nin": [1, True]}}) == ["arr", "obj"]
    assert [r.id for r in col.page(after="flag", where={"metadata.a": {"$in": [5, 1]}})] == ["one"]
    spec = col.spec
    sql, params = compile_filter(parse_filter({"metadata.a.0": "x'--", "metadata.b": 7}, spec), spec, DIALECT)
    assert "x'--" not in sql and "7" not in sql and '"a"' not in sql
    assert '$."a"."0"' in params and "x'--" in params and 7 in params


def test_sqlite_page_orders_ids_by_code_point_and_numerically(store: vs.Store) -> None:
    text = store.create_collection("texts", dim=1)
    ids = ["b", "B", "a", "é", "ab", "Z", "a b", "\U0001f600", "ÿ"]
    text.upsert([{"id": i, "vector": [1]} for i in ids])
    assert [r.id for r in text.page(limit=100)] == sorted(ids)  # Python orders str by code point
    assert [r.id for r in text.page(after="a", limit=3)] == sorted(ids)[sorted(ids).index("a") + 1:][:3]
    ints = store.create_collection("ints", dim=1, id_type="int")
    nums = [10, -5, 2, 2**63 - 1, -(2**63), 0, 100]
    ints.upsert([{"id": i, "vector": [1]} for i in nums])
    assert [r.id for r in ints.page(limit=100)] == sorted(nums)
    assert [r.id for r in ints.page(after=2, limit=2)] == [10, 100]
    extremes = [2**63 - 1, -(2**63)]
    assert [r.id for r in ints.get(extremes)] == extremes
    with pytest.raises(vs.DuplicateId) as err:
        ints.insert([{"id": -(2**63), "vector": [1]}])
    assert err.value.ids == [-(2**63)]
    assert ints.delete(extremes) == 2 and ints.count() == len(nums) - 2


# -- writes --------------------------------------------------------------------


def test_sqlite_bulk_upsert_10k_in_one_call(store: vs.Store, db: Path) -> None:
    rng = np.random.default_rng(5)
    data = rng.normal(size=(10_000, 64)).astype(np.float32)
    col = store.create_collection("bulk", dim=64, fields={"n": "int"})
    start = time.perf_counter()
    col.upsert([{"id": f"b{i:05d}", "vector": v, "fields": {"n": i}} for i, v in enumerate(data)])
    first = time.perf_counter() - start
    start = time.perf_counter()
    col.upsert([{"id": f"b{i:05d}", "vector": v, "fields": {"n": -i}} for i, v in enumerate(data)])
    second = time.perf_counter() - start
    assert col.count() == 10_000 and col.count({"n": {"$lt": 0}}) == 9_999
    assert first < 30 and second < 30, (first, second)  # seconds; ~1 s each on a laptop
    conn = raw(db)
    try:
        assert conn.execute("SELECT count(*) FROM bulk__vec").fetchone()[0] == 10_000
    finally:
        conn.close()
    for i in (0, 4_321, 9_999):
        assert col.search(data[i], k=1)[0].id == f"b{i:05d}"


def test_sqlite_insert_duplicate_writes_nothing(store: vs.Store) -> None:
    col = store.create_collection("dup", dim=2, id_type="int")
    col.upsert([{"id": 1, "vector": [1, 0]}, {"id": 3, "vector": [3, 0]}])
    with pytest.raises(vs.DuplicateId) as err:
        col.insert([{"id": i, "vector": [i, 1]} for i in (5, 3, 4, 1)])
    assert err.value.ids == [3, 1]
    assert col.count() == 2 and col.get([5]) == []


def test_sqlite_failing_batch_leaves_nothing(store: vs.Store, db: Path) -> None:
    """A batch that fails inside SQLite (here: a CHECK added behind the backend's back) rolls back whole."""
    col = store.create_collection("atomic", dim=2, fields={"n": "int"})
    col.upsert([{"id": "keep", "vector": [1, 1], "fields": {"n": 1}}])
    conn = raw(db)
    conn.execute("CREATE TRIGGER atomic_no_13 BEFORE INSERT ON atomic WHEN NEW.n = 13 "
                 "BEGIN SELECT RAISE(ABORT, 'unlucky'); END")
    conn.close()
    with pytest.raises(Exception, match="unlucky"):
        col.upsert([{"id": f"x{i}", "vector": [1, i], "fields": {"n": i}} for i in range(20)])
    assert [r.id for r in col.page()] == ["keep"]
    with store.transaction():
        col.upsert([{"id": "in_tx", "vector": [2, 2], "fields": {"n": 2}}])
        with pytest.raises(Exception, match="unlucky"):
            col.upsert([{"id": f"y{i}", "vector": [1, i], "fields": {"n": i}} for i in range(20)])
    assert sorted(str(r.id) for r in col.page()) == ["in_tx", "keep"]


# -- transactions and concurrency ---------------------------------------------------


def test_sqlite_transaction_spans_collections_and_nests(store: vs.Store) -> None:
    a = store.create_collection("a", dim=2)
    b = store.create_collection("b", dim=2)
    with pytest.raises(RuntimeError), store.transaction():
        a.upsert([{"id": "1", "vector": [1, 0]}])
        b.upsert([{"id": "1", "vector": [1, 0]}])
        raise RuntimeError("boom")
    assert (a.count(), b.count()) == (0, 0)
    with store.transaction():
        a.upsert([{"id": "outer", "vector": [1, 0]}])
        with pytest.raises(RuntimeError), store.transaction():
            b.upsert([{"id": "inner", "vector": [1, 0]}])
            raise RuntimeError("inner only")
        with store.transaction():
            b.upsert([{"id": "kept", "vector": [1, 0]}])
        assert b.count() == 1
    assert [r.id for r in a.page()] == ["outer"] and [r.id for r in b.page()] == ["kept"]


def test_sqlite_open_transaction_is_invisible_to_other_coroutines(db: Path) -> None:
    async def main() -> None:
        store = await vs.open_store(url(db))
        try:
            col = await store.create_collection("iso", dim=2)
            written = asyncio.Event()
            release = asyncio.Event()

            async def in_txn() -> None:
                async with store.transaction():
                    await col.upsert([{"id": f"r{i}", "vector": [1, i]} for i in range(5)])
                    assert await col.count() == 5  # own writes are visible inside
                    written.set()
                    await release.wait()

            task = asyncio.create_task(in_txn())
            await written.wait()
            assert await col.count() == 0
            assert await col.search([1, 1], k=3) == []
            other = asyncio.create_task(col.upsert([{"id": "late", "vector": [2, 2]}]))
            await asyncio.sleep(0.05)
            assert not other.done()  # writers wait for the transaction
            release.set()
            await task
            await other
            assert await col.count() == 6
        finally:
            await store.aclose()

    asyncio.run(main())


def test_sqlite_concurrent_writers_readers_and_a_second_store(db: Path) -> None:
    async def main() -> None:
        one = await vs.open_store(url(db))
        two = await vs.open_store(url(db))
        try:
            col1 = await one.create_collection("conc", dim=8, fields={"w": "int"})
            col2 = await two.collection("conc")
            rng = np.random.default_rng(0)

            async def write(store_col: vs.AsyncCollection, w: int) -> None:
                await store_col.upsert([{"id": f"w{w:02d}-{i:02d}", "vector": rng.normal(size=8) + 0.1,
                                         "fields": {"w": w}} for i in range(25)])

            async def read(store_col: vs.AsyncCollection, r: int) -> None:
                await store_col.search(np.ones(8), k=5, where={"w": {"$lt": r}})
                await store_col.search(np.ones(8), k=5)
                await store_col.count()

            jobs = [write(col1 if w % 2 else col2, w) for w in range(40)]
            jobs += [read(col1 if r % 2 else col2, r) for r in range(40)]
            await asyncio.gather(*jobs)
            assert await col1.count() == 1000 and await col2.count() == 1000
        finally:
            await one.aclose()
            await two.aclose()

    asyncio.run(main())


# -- errors --------------------------------------------------------------------


def test_sqlite_locked_database_is_backend_unavailable(db: Path) -> None:
    with vs.connect(url(db)) as s:
        col = s.create_collection("locked", dim=2)
    holder = raw(db)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with vs.connect(url(db, timeout="200ms")) as s:
            col = s.collection("locked")
            assert col.count() == 0  # WAL: reads still work
            start = time.perf_counter()
            with pytest.raises(vs.BackendUnavailable, match=r"locked.*timeout"):
                col.upsert([{"id": "x", "vector": [1, 1]}])
            assert 0.15 < time.perf_counter() - start < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_sqlite_unopenable_files_are_backend_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(vs.BackendUnavailable, match="directory"):
        vs.connect(url(blocker / "x.db"))
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 200)
    with pytest.raises(vs.BackendUnavailable, match="not a usable SQLite database"):
        vs.connect(url(garbage))
    with pytest.raises(vs.BackendUnavailable, match="directory"):
        vs.connect(url(tmp_path))


def test_sqlite_collection_dropped_elsewhere_is_not_found(db: Path) -> None:
    with vs.connect(url(db)) as s1, vs.connect(url(db)) as s2:
        col = s1.create_collection("gone", dim=2)
        col.upsert([{"id": "a", "vector": [1, 1]}])
        assert s2.drop_collection("gone") is True
        for call in (lambda: col.count(), lambda: col.search([1, 1]), lambda: col.get(["a"]),
                     lambda: col.upsert([{"id": "b", "vector": [1, 1]}]), lambda: col.delete(["a"]),
                     lambda: col.page()):
            with pytest.raises(vs.CollectionNotFound, match="'gone'"):
                call()
        with pytest.raises(vs.CollectionNotFound):
            s1.collection("gone")
        assert s1.drop_collection("gone") is False


def test_sqlite_foreign_table_name_is_not_clobbered(db: Path) -> None:
    conn = raw(db)
    conn.execute("CREATE TABLE mine (x)")
    conn.execute("INSERT INTO mine VALUES (42)")
    conn.close()
    with vs.connect(url(db)) as s, pytest.raises(vs.InvalidName, match="does not manage"):
        s.create_collection("mine", dim=2)
    conn = raw(db)
    assert conn.execute("SELECT x FROM mine").fetchall() == [(42,)]
    conn.close()


def test_sqlite_wide_vectors_have_no_vec0_and_still_search(store: vs.Store, db: Path) -> None:
    """vec0 stops at 8192 dimensions; wider collections live in the row table alone."""
    col = store.create_collection("wide", dim=9000, metric="cosine")
    rng = np.random.default_rng(2)
    data = rng.normal(size=(30, 9000)).astype(np.float32)
    col.upsert([{"id": f"w{i:02d}", "vector": v} for i, v in enumerate(data)])
    ref = reference_distances(vs.Metric.COSINE, data, data[3])
    assert [h.id for h in col.search(data[3], k=5)] == [f"w{i:02d}" for i in np.argsort(ref, kind="stable")[:5]]
    conn = raw(db)
    try:
        assert conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'wide__vec'").fetchone()[0] == 0
    finally:
        conn.close()


def test_sqlite_two_processes_write_the_same_file(db: Path) -> None:
    """Another process writes while this one does: SQLite's lock serialises them within the timeout."""
    import subprocess
    import sys

    with vs.connect(url(db)) as s:
        col = s.create_collection("procs", dim=2)
        script = (
            "import vectorstore as vs\n"
            f"s = vs.connect({url(db)!r})\n"
            "c = s.collection('procs')\n"
            "for i in range(40):\n"
            "    c.upsert([{'id': f'child{i:02d}-{j}', 'vector': [1, j]} for j in range(5)])\n"
            "s.close()\n"
        )
        child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
        for i in range(40):
            col.upsert([{"id": f"parent{i:02d}-{j}", "vector": [j, 1]} for j in range(5)])
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert col.count() == 400


def test_sqlite_unclosed_async_store_does_not_block_exit(db: Path) -> None:
    """aiosqlite's worker threads would keep the interpreter alive; ours are daemons."""
    import subprocess
    import sys

    script = (
        "import asyncio, vectorstore as vs\n"
        "KEEP = []\n"
        "async def main():\n"
        f"    s = await vs.open_store({url(db)!r})\n"
        "    KEEP.append(s)\n"
        "    await (await s.create_collection('c', dim=2)).upsert([{'id': 'a', 'vector': [1, 2]}])\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with vs.connect(url(db)) as s:
        assert s.collection("c").count() == 1


def test_sqlite_bulk_load_keeps_the_vec0_mirror_and_last_id_only_reads(db: Path) -> None:
    """bulk_load() defers nothing on SQLite: the vec0 mirror is complete inside the block (searches use
    it). last_id() reads without the write lock (it works while another connection holds it)."""
    with vs.connect(url(db)) as s:
        col = s.create_collection("loaded", dim=2, metric="l2", id_type="int")
        with col.bulk_load():
            col.upsert([{"id": i, "vector": [i, 0]} for i in range(1, 301)])
            conn = raw(db)
            try:
                assert conn.execute("SELECT count(*) FROM loaded__vec").fetchone() == (300,)
            finally:
                conn.close()
            assert [h.id for h in col.search([150.2, 0], k=2)] == [150, 151]
        col.allocate_ids(0, after=999)
    holder = raw(db)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with vs.connect(url(db, timeout="200ms")) as s:
            assert s.collection("loaded").last_id() == 999
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_sqlite_collection_without_vectors_is_the_row_table_alone(store: vs.Store, db: Path) -> None:
    """dim=None: a table of id, fields and metadata, with no _norm / _vector columns, no vec0 mirror,
    no code table or generation row, no index on _norm or covering index, no triggers; the catalog
    holds null dim, metric and index. Records and filters work on it, in bulk too, and searching the
    backend directly finds nothing."""
    col = store.create_collection("notes", dim=None, fields={"n": "int", "t": "text"}, id_type="int")
    col.upsert([{"id": i, "fields": {"n": i, "t": f"t{i}"}, "metadata": {"i": i}} for i in range(1, 12_001)])
    assert col.count(where={"n": {"$gt": 12_000 - 5}}) == 5
    assert col.get([7])[0] == vs.Record(7, None, {"n": 7, "t": "t7"}, {"i": 7})
    conn = raw(db)
    try:
        assert list(_columns(conn, "notes")) == ["_key", "id", "n", "t", "_metadata"]
        objects = conn.execute("SELECT type, name FROM sqlite_schema WHERE tbl_name = 'notes' OR name LIKE "
                               "'notes\\_\\_%' ESCAPE '\\' ORDER BY name").fetchall()
        # (SQLite's own indexes of the table's PRIMARY KEY / UNIQUE constraints only.)
        assert [(kind, name) for kind, name in objects if not name.startswith("sqlite_autoindex")] == [
            ("table", "notes")]
        assert conn.execute("SELECT count(*) FROM vs_generations WHERE name = 'notes'").fetchone() == (0,)
        (spec,) = conn.execute("SELECT spec FROM vs_collections WHERE name = 'notes'").fetchone()
        assert {k: v for k, v in json.loads(spec).items() if k in ("dim", "metric", "index")} == {
            "dim": None, "metric": None, "index": None}
    finally:
        conn.close()
    backend = backend_of(store)
    query = np.ones((1, 1), dtype=np.float32)
    assert store.run(backend.search(col.spec, query, 5, parse_filter(None, col.spec), None, None, False)) == [[]]


def test_new_store_files_are_private_to_their_owner(tmp_path: Path) -> None:
    """A new database file and its -wal and -shm are 0600 whatever the umask allows (agent memory
    on a shared host is not for every user), and so is a file export creates; an existing file
    keeps its mode."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        store = vs.connect(url(tmp_path / "new.db"))
        store.create_collection("c", dim=2).upsert([{"id": "a", "vector": [1, 0]}])
        for name in ("new.db", "new.db-wal", "new.db-shm"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        store.close()
        from vectorstore.transfer import export_urls

        exported = tmp_path / "backup.db"
        asyncio.run(export_urls(url(tmp_path / "new.db"), url(exported)))
        assert stat.S_IMODE(exported.stat().st_mode) == 0o600
        shared = tmp_path / "shared.db"
        shared.touch(mode=0o640)
        shared.chmod(0o640)
        vs.connect(url(shared)).close()
        assert stat.S_IMODE(shared.stat().st_mode) == 0o640
    finally:
        os.umask(old)
