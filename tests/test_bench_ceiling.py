"""vectorstore.bench.ceiling: pgbench's command, connection and output (its run on a real
server is in tests/backends/test_bench_postgres.py)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from vectorstore.bench import ceiling, targets

OUTPUT = """pgbench (18.1)
transaction type: search.sql
number of clients: 8
latency average = 4.830 ms
initial connection time = 12.345 ms
tps = 1656.330173 (without initial connection time)
"""


def test_parse_tps_reads_the_rate_and_refuses_output_without_one() -> None:
    assert ceiling.parse_tps(OUTPUT) == pytest.approx(1656.330173)
    with pytest.raises(RuntimeError, match="printed no rate"):
        ceiling.parse_tps("pgbench: error: connection to server failed\n")


def test_connection_keeps_the_password_off_the_command_line_and_adds_the_settings() -> None:
    conninfo, env = ceiling.connection("postgresql://app:s3cret@db.example:5433/media?options=-c%20work_mem%3D8MB",
                                       [("hnsw.ef_search", "40"), ("hnsw.iterative_scan", "strict_order")])
    params = conninfo_to_dict(conninfo)
    assert "s3cret" not in conninfo and env["PGPASSWORD"] == "s3cret"
    assert (params["host"], params["port"], params["dbname"], params["user"]) == ("db.example", "5433", "media", "app")
    assert params["options"] == "-c work_mem=8MB -c hnsw.ef_search=40 -c hnsw.iterative_scan=strict_order"
    conninfo, env = ceiling.connection("host=/tmp/sock dbname=postgres", [("hnsw.ef_search", "80")])
    assert conninfo_to_dict(conninfo)["options"] == "-c hnsw.ef_search=80"
    assert env.get("PGPASSWORD") == os.environ.get("PGPASSWORD")


def test_scripts_hold_one_statement_each(tmp_path: Path) -> None:
    paths = ceiling.write_scripts(["SELECT 1", "SELECT 2;"], tmp_path)
    assert [p.read_text() for p in paths] == ["SELECT 1;\n", "SELECT 2;\n"]
    # vectorstore's tag comment goes (pgbench would take ':pgvector' in it for a variable); casts stay.
    (tagged,) = ceiling.write_scripts(["/* vs:pgvector:0123abcd */ SELECT '[1,2]'::vector"], tmp_path)
    assert tagged.read_text() == "SELECT '[1,2]'::vector;\n"
    with pytest.raises(ValueError, match="as a variable"):
        ceiling.write_scripts(["SELECT 1 WHERE x = :y"], tmp_path)
    with pytest.raises(ValueError, match="one non-empty line"):
        ceiling.write_scripts(["SELECT\n1"], tmp_path)
    with pytest.raises(ValueError, match="1 to 100 scripts"):
        ceiling.write_scripts([], tmp_path)


def test_find_pgbench_prefers_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "pgbench"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(ceiling.PGBENCH_ENV, str(fake))
    assert ceiling.find_pgbench() == str(fake)


def test_the_throughput_target_names_the_c_client_ceiling() -> None:
    case = {"backend": "postgres", "dataset": "clustered", "n": 10_000, "dim": 768, "ratios": {},
            "sides": {"vectorstore": {"concurrent_qps": {"8": 1500.0}, "filtered": {}},
                      "raw": {"concurrent_qps": {"8": 1400.0}},
                      "pgbench": {"concurrent_qps": {"8": 1656.3}}}}
    (target,) = [t for t in targets.evaluate({"cases": [case]}) if "q/s" in t.name]
    assert target.value == 1500.0 and target.ok is False
    assert target.goal == ">= 2000 (C client: 1,656)"


def test_a_failing_pgbench_is_logged_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference measurement never ends the case: a pgbench that fails leaves no ceiling and a log line."""
    fake = tmp_path / "pgbench"
    fake.write_text("#!/bin/sh\necho 'pgbench: error: connection to server failed' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(ceiling.PGBENCH_ENV, str(fake))
    logged: list[str] = []
    found = asyncio.run(ceiling.ceiling_qps(["SELECT 1"], "host=/nowhere", [], [1, 4], 1, logged.append))
    assert found is None
    assert "pgbench failed (1): pgbench: error: connection to server failed" in logged[-1]
