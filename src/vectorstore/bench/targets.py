"""The bars a run is held to (issue: "Benchmarks against the raw drivers"), checked on its results.

Every target is a ratio or a count from the same run, so the machine cancels out. A target
whose case was not run is reported as not measured, never as met.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen(slots=True)
class Target:
    name: str
    case: str
    value: float | None
    goal: str
    ok: bool | None  # None: not measured in this run

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _title(case: Mapping[str, Any]) -> str:
    return f"{case['backend']} {case['dataset']} {case['n']:,}x{case['dim']}"


def _side(case: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    found: Mapping[str, Any] = case.get("sides", {}).get(side, {})
    return found


def evaluate(results: Mapping[str, Any]) -> list[Target]:
    out: list[Target] = []
    cases: list[Mapping[str, Any]] = list(results.get("cases", []))
    for case in cases:
        title = _title(case)
        ratios = case.get("ratios", {})
        ours, raw = _side(case, "vectorstore"), _side(case, "raw")
        p50 = ratios.get("search_p50")
        out.append(Target(f"{case['backend']} search p50 <= 1.10x raw", title, p50, "<= 1.10",
                          None if p50 is None else p50 <= 1.10))
        if case["backend"] == "postgres":
            load = ratios.get("load")
            out.append(Target("bulk upsert >= 0.9x raw binary COPY", title, load, ">= 0.90",
                              None if load is None else load >= 0.9))
        for p, got in sorted(ours.get("filtered", {}).items(), key=lambda kv: -int(kv[0])):
            share = got.get("full_k_share")
            out.append(Target(f"filtered {p}%: every query gets k hits", title, share, "= 1.00",
                              None if share is None else share >= 1.0))
    # Throughput at 10k x 768 with 8 clients on PostgreSQL.
    pg = [c for c in cases if c["backend"] == "postgres" and c["n"] == 10_000 and c["dim"] == 768]
    for case in pg:
        qps = _side(case, "vectorstore").get("concurrent_qps", {}).get("8")
        # The machine's own bound: the same search from a C client (pgbench), when measured.
        bound = _side(case, "pgbench").get("concurrent_qps", {}).get("8")
        goal = ">= 2000" if bound is None else f">= 2000 (C client: {bound:,.0f})"
        out.append(Target("postgres >= 2,000 q/s with 8 clients", _title(case), qps, goal,
                          None if qps is None else qps >= 2000))
    if not pg:
        out.append(Target("postgres >= 2,000 q/s with 8 clients", "postgres 10,000x768", None, ">= 2000", None))
    # Beyond brute force: SQLite at 100k x 768.
    big = [c for c in cases if c["backend"] == "sqlite" and c["n"] == 100_000 and c["dim"] == 768]
    for case in big:
        ours, raw = _side(case, "vectorstore"), _side(case, "raw")
        speedup = None
        if ours.get("latency_ms") and raw.get("latency_ms"):
            speedup = raw["latency_ms"]["p50"] / ours["latency_ms"]["p50"]
        recall = ours.get("recall_at_10")
        ok = None if speedup is None or recall is None else speedup >= 3.0 and recall >= 0.99
        out.append(Target("sqlite >= 3x faster than sqlite-vec, recall@10 >= 0.99", _title(case), speedup,
                          f">= 3.0x (recall {recall:.3f})" if recall is not None else ">= 3.0x", ok))
    if not big:
        out.append(Target("sqlite >= 3x faster than sqlite-vec, recall@10 >= 0.99", "sqlite 100,000x768", None,
                          ">= 3.0x", None))
    return out
