"""Server-free tests of the PostgreSQL backend: dialect SQL and codecs, URL options.

No ruvector server can run here, so the ruvector dialect is pinned by the SQL it
generates and by its codec (see shared/compat/ruvector.md for the facts behind it).
"""

from __future__ import annotations

import numpy as np
import pytest
from psycopg import sql

from vectorstore.config import resolve
from vectorstore.errors import ConfigError, DimensionMismatch, InvalidVector
from vectorstore.filters import parse_filter
from vectorstore.schema import HNSW, CollectionSpec, Metric
from vectorstore_postgres.connection import parse_settings, parse_size
from vectorstore_postgres.dialect import PgVector, RuVector, format_vector_text, parse_vector_text
from vectorstore_postgres.queries import CollectionSQL
from vectorstore_postgres.testing import isolated_url, with_query

RU = RuVector(extension_version="0.3.0", access_method="ruhnsw", ip_sign=1)
PG = PgVector(extension_version="0.8.6")


def spec(metric: str = "cosine", dim: int = 3) -> CollectionSpec:
    return CollectionSpec(name="docs", dim=dim, metric=metric, fields={"genre": "text", "tags": "text[]"},
                          index=HNSW(m=24, ef_construction=100))


# -- ruvector SQL -------------------------------------------------------------------


def test_ruvector_table_uses_ruvector_type() -> None:
    ddl = CollectionSQL("s", spec(dim=384), RU).create_table()
    assert '"vector" "ruvector"(384), ' in ddl  # NULL: a record without a vector
    assert '"vector"(' not in ddl.replace('"vector" "ruvector"', "")


@pytest.mark.parametrize(("metric", "opclass"), [("cosine", "ruvector_cosine_ops"), ("l2", "ruvector_l2_ops")])
def test_ruvector_index_uses_detected_access_method_and_opclass(metric: str, opclass: str) -> None:
    ddl = CollectionSQL("s", spec(metric), RU).create_index()
    assert ddl == (f'CREATE INDEX "vs_i_docs" ON "s"."vs_c_docs" USING "ruhnsw" ("vector" {opclass}) '
                   "WITH (m = 24, ef_construction = 100)")
    old = RuVector(extension_version="0.3.0", access_method="hnsw")
    assert 'USING "hnsw"' in (CollectionSQL("s", spec(metric), old).create_index() or "")


def test_ruvector_inner_product_never_ranks_by_its_positive_operator() -> None:
    q = CollectionSQL("s", spec("inner_product"), RU)
    # No index for inner product: nothing could serve the negated expression.
    assert q.create_index() is None
    statement, _, uses_index = q.search(parse_filter(None, q.spec), indexed=True, limits=(60, 11))
    assert not uses_index
    assert 'ORDER BY (-("vector" <#> %s::ruvector)) + 0, "id"' in statement
    # A release whose <#> follows pgvector (negative dot) must not be negated again.
    flipped = CollectionSQL("s", spec("inner_product"), RuVector(extension_version="9", ip_sign=-1))
    statement, _, _ = flipped.search(parse_filter(None, q.spec), indexed=False, limits=(60, 11))
    assert 'ORDER BY (("vector" <#> %s::ruvector)) + 0, "id"' in statement


def test_ruvector_search_sql_casts_and_reads_text() -> None:
    q = CollectionSQL("s", spec("cosine"), RU)
    statement, params, uses_index = q.search(parse_filter({"genre": "a"}, q.spec), indexed=True, limits=(60, 11))
    assert uses_index
    assert params == ["a"]
    assert '"vector"::text' in statement  # read as text, never ruvector's binary format
    assert '("vector" <=> %s::ruvector) AS vs_distance' in statement  # index branch: the server's distance,
    assert "ORDER BY vs_distance LIMIT 11" in statement  # which is the operator the index orders by
    assert 'ORDER BY ("vector" <=> %s::ruvector) + 0, "id" LIMIT 60' in statement  # exact branch
    assert "%b" not in statement
    assert "VALUES (%s, %s::ruvector," in q.upsert_row
    assert q.copy_stage("st") == 'COPY "st" ("id", "vector", "genre", "tags", "metadata") FROM STDIN'


def test_pgvector_sql_uses_binary_vectors_and_negative_dot() -> None:
    q = CollectionSQL("s", spec("inner_product"), PG)
    assert q.create_index() == ('CREATE INDEX "vs_i_docs" ON "s"."vs_c_docs" USING "hnsw" ("vector" vector_ip_ops) '
                                "WITH (m = 24, ef_construction = 100)")
    statement, _, uses_index = q.search(parse_filter(None, q.spec), indexed=True, limits=(60, 11))
    assert uses_index
    assert '("vector" <#> %b) AS vs_distance' in statement and "ORDER BY vs_distance LIMIT 11" in statement
    assert q.copy_stage("st").endswith("FROM STDIN (FORMAT BINARY)")
    assert CollectionSQL("s", spec(dim=2001), PG).create_index() is None  # beyond pgvector's HNSW limit


@pytest.mark.parametrize("dialect", [PG, RU])
def test_search_branches_skip_rows_without_a_vector(dialect: PgVector | RuVector) -> None:
    q = CollectionSQL("s", spec("l2"), dialect)
    statement, _, uses_index = q.search(parse_filter({"genre": "a"}, q.spec), indexed=True, limits=(60, 11))
    assert uses_index and statement.count('"vector" IS NOT NULL AND ("genre"') == 2
    exact, _, uses_index = q.search(parse_filter(None, q.spec), indexed=False, limits=(60, 11))
    assert not uses_index and exact.count('"vector" IS NOT NULL AND 1=1') == 1


def test_metadata_filters_compare_jsonb_member_by_member() -> None:
    q = CollectionSQL("s", spec(), PG)
    statement, params = q.count(parse_filter({"metadata.a.b": {"$nin": [7, "7", True]}, "metadata.c": None},
                                             q.spec))
    where = statement.split(" WHERE ", 1)[1]
    assert where == ('((NOT COALESCE(("metadata" -> %s::text -> %s::text) = ANY(%s::jsonb[]), false)) AND '
                     """(COALESCE(jsonb_typeof(("metadata" -> %s::text)), 'null') = 'null'))""")
    assert params[:2] == ["a", "b"] and [j.obj for j in params[2]] == [7, "7", True] and params[3:] == ["c"]


def test_search_settings_per_dialect() -> None:
    assert RU.search_settings(64, 20000) == [("ruvector.ef_search", "64")]
    assert PG.search_settings(5000, 20000) == [("hnsw.ef_search", "1000"), ("hnsw.iterative_scan", "strict_order"),
                                               ("hnsw.max_scan_tuples", "20000")]
    assert PgVector(extension_version="0.7.4").search_settings(64, 1) == [("hnsw.ef_search", "64")]


def test_ruvector_index_is_bypassed_where_it_misbehaves() -> None:
    query = np.ones(3, dtype=np.float32)
    assert RU.index_usable(query, 100)
    assert not RU.index_usable(query, 101)  # index scans stop at 100 rows
    assert not RU.index_usable(np.zeros(3, dtype=np.float32), 10)  # all-zero query errors in the index
    names = [name for name, _, _ in RU.warnings()]
    assert "ruvector crash safety" in names and "ruvector index scan cap" in names


# -- ruvector codec ------------------------------------------------------------------


def test_ruvector_codec_round_trips_float32_exactly() -> None:
    rng = np.random.default_rng(7)
    vectors = np.concatenate([
        rng.normal(size=(50, 16)).astype(np.float32),
        (rng.normal(size=(5, 16)) * 1e-30).astype(np.float32),
        (rng.normal(size=(5, 16)) * 1e30).astype(np.float32),
        np.array([[np.float32(1e-45)] * 16, [-0.0] * 16], dtype=np.float32),
    ])
    for vec in vectors:
        text = RU.encode(vec, 16)
        assert text.startswith("[") and text.endswith("]") and " " not in text
        assert "e" not in text.lower()  # never exponent notation, like ruvector's own output
        back = RU.decode(text, 16)
        assert back.dtype == np.float32
        np.testing.assert_array_equal(back, vec)


def test_ruvector_codec_checks_dimensions_client_side() -> None:
    with pytest.raises(DimensionMismatch):
        RU.encode(np.ones(4, dtype=np.float32), 3)
    with pytest.raises(DimensionMismatch, match="does not enforce"):
        RU.decode("[1,2,3,4]", 3)
    with pytest.raises(InvalidVector):
        parse_vector_text("{1,2}")
    assert RU.decode(b"[1.5,2,-3]", 3).tolist() == [1.5, 2.0, -3.0]
    assert format_vector_text(np.array([0.1, 2], dtype=np.float32)) == "[0.1,2]"


# -- settings ---------------------------------------------------------------------------


def test_url_options_split_from_libpq_parameters() -> None:
    config = resolve("postgresql://u:pw@db.example:6543/app?pool_max=20&statement_timeout=5s&schema=myschema"
                     "&sslmode=require&application_name=x")
    s = parse_settings(config)
    assert (s.pool_min, s.pool_max, s.statement_timeout, s.connect_timeout, s.schema) == (1, 20, 5.0, 30.0,
                                                                                          "myschema")
    assert "pool_max" not in s.conninfo and "schema" not in s.conninfo
    assert "sslmode=require" in s.conninfo and "application_name=x" in s.conninfo
    assert s.target == "u@db.example:6543/app"
    kwargs = s.connect_kwargs()
    assert kwargs["connect_timeout"] == 30
    assert "-c statement_timeout=5000" in kwargs["options"] and "TimeZone=UTC" in kwargs["options"]


def test_keyword_options_override_url_and_pass_libpq_through() -> None:
    config = resolve("postgresql://h/db?pool_max=20", {"pool_max": 3, "pool_min": 1, "sslmode": "disable",
                                                        "connect_timeout": 2.5})
    s = parse_settings(config)
    assert (s.pool_min, s.pool_max, s.connect_timeout) == (1, 3, 2.5)
    assert s.libpq == {"sslmode": "disable"}
    assert s.connect_kwargs()["connect_timeout"] == 3


@pytest.mark.parametrize("url", [
    "postgresql://h/db?bogus=1",
    "postgresql://h/db?schema=bad-name",
    "postgresql://h/db?pool_min=5&pool_max=2",
    "postgresql://h/db?statement_timeout=soon",
])
def test_bad_options_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_settings(resolve(url))


def test_sizes_parse_like_postgres_settings() -> None:
    assert parse_size("1GB", "x") == 1 << 30
    assert parse_size("512", "x") == 512 << 20
    assert parse_size("64 kB", "x") == 64 << 10
    with pytest.raises(ConfigError):
        parse_size("lots", "x")


def test_isolated_url_adds_a_fresh_schema_and_keeps_the_query() -> None:
    base = "postgresql://u@h/db?sslmode=disable&schema=old"
    first, second = isolated_url(base), isolated_url(base)
    assert first != second
    assert "sslmode=disable" in first and "schema=old" not in first and "schema=vs_test_" in first
    assert with_query("postgresql://h/db", schema="x") == "postgresql://h/db?schema=x"


def test_metric_operators_are_the_metric_distances() -> None:
    # pgvector's operators are used as the distances themselves: <#> is already -dot.
    assert [PG.index_order(m, sql.Identifier("v")).as_string()  # type: ignore[union-attr]
            for m in Metric] == ['"v" <=> %b', '"v" <-> %b', '"v" <#> %b']
