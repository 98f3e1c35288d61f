"""vectorstore.bench.report: terminal and markdown tables, JSON and the latency-vs-recall chart."""

from __future__ import annotations

import copy
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from vectorstore.bench.report import (
    DASH,
    fmt_number,
    fmt_spread,
    markdown_table,
    render_table,
    summary_lines,
    write_chart,
    write_json,
)


def _side(scale: float, *, sweep: bool = True) -> dict[str, Any]:
    return {
        "load_vps": 41234.5 * scale, "load_s": 0.2425, "index_build_s": 3.217 * scale,
        "load_vps_samples": [39876.0 * scale, 41234.5 * scale, 45678.9 * scale],
        "latency_ms": {"p50": 1.234 * scale, "p95": 2.468, "p99": 4.9371, "mean": 1.4, "stdev": 0.3},
        "server_ms": 0.8765 * scale,
        "recall_at_10": 0.98765,
        "search_many_qps": 5432.1,
        "concurrent_qps": {"1": 810.4, "4": 2950.0, "8": 4400.7, "16": 4480.2},
        "filtered": {"50": {"p50_ms": 1.51, "p95_ms": 2.2, "full_k_share": 1.0, "recall_at_10": 0.99},
                     "10": {"p50_ms": 2.73, "p95_ms": 3.5, "full_k_share": 0.875, "recall_at_10": 0.97},
                     "1": {"p50_ms": 9.87, "p95_ms": 12.0, "full_k_share": 0.123, "recall_at_10": 0.5}},
        "sweep": [{"knob": "ef_search=20", "recall_at_10": 0.91, "p50_ms": 0.8 * scale},
                  {"knob": "ef_search=40", "recall_at_10": 0.96, "p50_ms": 1.1 * scale},
                  {"knob": "ef_search=100", "recall_at_10": 0.99, "p50_ms": 2.0 * scale}] if sweep else [],
    }


@pytest.fixture
def results() -> dict[str, Any]:
    return {
        "meta": {"started": "2026-11-21T08:00:00Z", "python": "3.11.7", "platform": "Linux-x86_64", "cpus": 2,
                 "versions": {"vectorstore": "0.1.0", "postgres": "18.1", "pgvector": "0.8.0"},
                 "params": {"k": 10, "queries": 200}},
        "cases": [
            {"backend": "postgres", "dataset": "clustered", "n": 10000, "dim": 384,
             "sides": {"vectorstore": _side(1.0), "raw": _side(0.9)},
             "ratios": {"search_p50": 1.04, "load": 0.95}},
            {"backend": "sqlite", "dataset": "minilm", "n": 2000, "dim": 384,
             "sides": {"vectorstore": _side(1.1, sweep=False),
                       # a side where most measurements were not taken
                       "raw": {"load_vps": 123456.0, "index_build_s": None,
                               "latency_ms": {"p50": 0.5}, "recall_at_10": 1.0,
                               "concurrent_qps": {"1": 2000.0}, "filtered": {"50": {"p50_ms": None}}}},
             "ratios": {"search_p50": 2.5, "load": None}},
        ],
    }


def _cells(markdown: str, first: str, side: str) -> list[str]:
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == first and side in cells[:4]:
            return cells
    raise AssertionError(f"no row for {first} {side}:\n{markdown}")


def test_fmt_number_rounds_to_about_three_significant_figures() -> None:
    assert [fmt_number(x) for x in (41234.5, 123.4, 12.34, 1.234, 0.012345, 0)] == \
        ["41,234", "123", "12.3", "1.23", "0.0123", "0"]
    assert [fmt_number(x) for x in (None, float("nan"), "12", True)] == [DASH] * 4
    assert fmt_number(np.float32(2.5)) == "2.50"
    assert fmt_spread([45678.9, 39876.0, 41234.5]) == "39,876\u201345,679"
    assert fmt_spread([1.0]) == fmt_spread(None) == fmt_spread([None, None]) == DASH


def test_markdown_table_holds_the_numbers(results: dict[str, Any]) -> None:
    md = markdown_table(results)
    header = [c.strip() for c in md.splitlines()[0].strip("|").split("|")]
    row = dict(zip(header, _cells(md, "postgres", "vectorstore"), strict=True))
    assert row["n\u00d7dim"] == "10,000\u00d7384"
    assert row["load (vec/s)"] == "41,234"
    assert row["build (s)"] == "3.22"
    assert (row["p50 (ms)"], row["p95 (ms)"], row["p99 (ms)"]) == ("1.23", "2.47", "4.94")
    assert row["server p50 (ms)"] == "0.876"  # (0.8765 in binary is a hair below)
    assert row["recall@10"] == "0.988"
    assert row["search_many (q/s)"] == "5,432"
    assert [row[f"q/s \u00d7{w}"] for w in (1, 4, 8, 16)] == ["810", "2,950", "4,401", "4,480"]
    assert row["filter 50%: p50 ms (k hits)"] == "1.51 (100%)"
    assert row["filter 10%: p50 ms (k hits)"] == "2.73 (88%)"
    assert row["filter 1%: p50 ms (k hits)"] == "9.87 (12%)"
    raw = dict(zip(header, _cells(md, "postgres", "raw"), strict=True))
    assert raw["load (vec/s)"] == "37,111"  # 41234.5 * 0.9
    # every row has as many cells as the header, so GitHub renders the table
    table = md.split("\n\n")[0].splitlines()
    assert len(table) == 2 + 2 * 2
    assert {line.count(" | ") for line in table} == {len(header) - 1}


def test_missing_values_render_as_a_dash(results: dict[str, Any]) -> None:
    md = markdown_table(results)
    header = [c.strip() for c in md.splitlines()[0].strip("|").split("|")]
    raw = dict(zip(header, _cells(md, "sqlite", "raw"), strict=True))
    assert raw["load (vec/s)"] == "123,456"
    assert raw["p50 (ms)"] == "0.500"
    assert raw["recall@10"] == "1.000"
    for column in ("build (s)", "p95 (ms)", "p99 (ms)", "search_many (q/s)", "q/s \u00d74", "q/s \u00d716",
                   "filter 50%: p50 ms (k hits)", "filter 1%: p50 ms (k hits)"):
        assert raw[column] == DASH, column
    ratios = md.split("\n\n")[1]
    assert "| sqlite | minilm | 2,000\u00d7384 | 2.50\u00d7 | — |" in ratios
    assert "| postgres | clustered | 10,000\u00d7384 | 1.04\u00d7 | 0.95\u00d7 |" in ratios


def test_a_case_without_sides_or_a_size_still_renders() -> None:
    results: dict[str, Any] = {"cases": [{"backend": "sqlite", "dataset": "clustered"}]}
    md = markdown_table(results)
    assert "| sqlite | clustered | —\u00d7— | vectorstore | — |" in md
    assert summary_lines(results) == ["sqlite clustered —\u00d7—: no ratios"]
    console = Console(file=io.StringIO(), width=120, record=True)
    render_table(results, console)
    assert "sqlite clustered —\u00d7—" in console.export_text()
    render_table({}, console)
    assert "no cases measured" in console.export_text()


def test_summary_lines(results: dict[str, Any]) -> None:
    assert summary_lines(results) == [
        "postgres clustered 10,000\u00d7384: search p50 1.04\u00d7 raw, load 0.95\u00d7 raw",
        "sqlite minilm 2,000\u00d7384: search p50 2.50\u00d7 raw, load — raw",
    ]


def test_render_table_fits_120_columns(results: dict[str, Any]) -> None:
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    render_table(results, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 120
    for expected in ("postgres clustered 10,000\u00d7384", "sqlite minilm 2,000\u00d7384", "41,234", "37,111", "0.988",
                     "concurrent \u00d716 (q/s)", "filtered 1% with k hits", "12%", "88%", "123,456",
                     "vectorstore 0.1.0", "search p50 1.04\u00d7 raw", "k=10 queries=200", "39,876\u201345,679"):
        assert expected in text, expected
    assert "every round" not in text.replace("load, every round", "")  # no samples, no spread row
    results["cases"][0]["sides"]["vectorstore"]["concurrent_qps_samples"] = {"8": [4100.0, 4400.7, 4700.2]}
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    render_table(results, console)
    spread = console.export_text()
    assert "\u00d78, every round" in spread and "4,100\u20134,700" in spread
    raw_build = next(line for line in text.splitlines() if "index build (s)" in line and DASH in line)
    assert "3.54" in raw_build  # the sqlite vectorstore side: 3.217 * 1.1; its raw side has none


def test_json_round_trips(results: dict[str, Any], tmp_path: Path) -> None:
    before = copy.deepcopy(results)
    path = tmp_path / "deep" / "er" / "results.json"
    write_json(results, path)
    assert json.loads(path.read_text(encoding="utf-8")) == before
    assert results == before
    # numpy numbers from the measurements serialise as plain numbers
    write_json({"x": np.float64(1.5), "y": np.arange(3), "z": np.float32(0.25)}, path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"x": 1.5, "y": [0, 1, 2], "z": 0.25}
    # after the round trip the report reads the same numbers
    assert markdown_table(json.loads(json.dumps(before))) == markdown_table(before)


def test_integer_keys_before_a_json_round_trip(results: dict[str, Any]) -> None:
    side = results["cases"][0]["sides"]["vectorstore"]
    side["concurrent_qps"] = {int(k): v for k, v in side["concurrent_qps"].items()}
    md = markdown_table(results)
    assert "| 810 | 2,950 | 4,401 | 4,480 |" in _md_line(md, "postgres", "vectorstore")


def test_a_reference_side_gets_its_own_row_and_column(results: dict[str, Any]) -> None:
    """pgbench's C-client ceiling (concurrent rates only) renders beside the two compared sides."""
    results["cases"][0]["sides"]["pgbench"] = {"concurrent_qps": {"1": 950.5, "4": 2376.0, "8": 1656.3, "16": 1704.0}}
    md = markdown_table(results)
    header = [c.strip() for c in md.splitlines()[0].strip("|").split("|")]
    row = dict(zip(header, _cells(md, "postgres", "pgbench"), strict=True))
    assert [row[f"q/s \u00d7{w}"] for w in (1, 4, 8, 16)] == ["950", "2,376", "1,656", "1,704"]
    assert row["p50 (ms)"] == row["load (vec/s)"] == DASH
    with pytest.raises(AssertionError):
        _cells(md, "sqlite", "pgbench")  # only the case that measured it
    console = Console(file=io.StringIO(), width=160, record=True, color_system=None)
    render_table(results, console)
    text = console.export_text()
    line = next(line for line in text.splitlines() if "concurrent \u00d78 (q/s)" in line and "1,656" in line)
    assert line.index("4,401") < line.index("1,656")  # vectorstore, raw, then pgbench


def _md_line(markdown: str, first: str, side: str) -> str:
    return "| " + " | ".join(_cells(markdown, first, side)) + " |"


def test_chart_is_a_png(results: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "charts" / "latency-recall.png"
    assert write_chart(results, path) == path
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > height > 300  # two subplots side by side
    # no cases, or no measurements at all: still a chart, not an exception
    assert write_chart({"cases": [{"backend": "sqlite", "sides": {}}]}, tmp_path / "empty.png") is not None
    assert write_chart({}, tmp_path / "none.png") is not None


def test_chart_without_matplotlib_returns_none(results: dict[str, Any], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] or ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    assert write_chart(results, tmp_path / "chart.png") is None
    assert not (tmp_path / "chart.png").exists()
