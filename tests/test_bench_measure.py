"""The benchmark's timing helpers."""

from __future__ import annotations

import asyncio

import numpy as np

from vectorstore.bench import measure


def test_closed_loop_warms_up_untimed_then_runs_total_calls_with_that_many_clients() -> None:
    seen: list[int] = []
    running = 0
    most = 0

    async def call(i: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        seen.append(i)
        await asyncio.sleep(0)
        running -= 1

    qps = asyncio.run(measure.closed_loop_async(call, clients=3, total=12, warmup=5))
    assert seen[:5] == list(range(5)) and sorted(seen[5:]) == list(range(12))
    assert most == 3 and qps > 0


def test_latency_summary_and_recall() -> None:
    summary = measure.latency_summary([0.001, 0.002, 0.003])
    assert summary["p50"] == 2.0 and summary["mean"] == 2.0
    assert measure.recall_at([[1, 9], [4, 3]], np.array([[1, 2], [3, 4]]), 2) == 0.75
