"""Timing helpers: latency percentiles, recall and closed-loop throughput.

Latencies are wall-clock seconds of whole calls (what a caller waits for), taken
with :func:`time.perf_counter`; percentiles are NumPy's linear interpolation.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean/stdev in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()),
            "stdev": float(statistics.stdev(ms)) if len(ms) > 1 else 0.0}


def recall_at(found: Sequence[Sequence[int]], truth: npt.NDArray[np.int64], k: int) -> float:
    """Mean share of each query's true ``k`` nearest ids among the ids found for it."""
    if len(found) == 0:
        return float("nan")
    total = 0.0
    for ids, true in zip(found, truth, strict=True):
        want = set(true[:k].tolist())
        if want:
            total += len(want.intersection(ids[:k])) / len(want)
        else:
            total += 1.0
    return total / len(found)


async def time_async(call: Callable[[int], Awaitable[Any]], count: int) -> tuple[list[float], list[Any]]:
    """Run ``call(i)`` for i in range(count), one after another; per-call seconds and results."""
    times: list[float] = []
    results: list[Any] = []
    for i in range(count):
        start = time.perf_counter()
        results.append(await call(i))
        times.append(time.perf_counter() - start)
    return times, results


def time_sync(call: Callable[[int], Any], count: int) -> tuple[list[float], list[Any]]:
    times: list[float] = []
    results: list[Any] = []
    for i in range(count):
        start = time.perf_counter()
        results.append(call(i))
        times.append(time.perf_counter() - start)
    return times, results


async def closed_loop_async(call: Callable[[int], Awaitable[Any]], clients: int, total: int,
                            warmup: int = 0) -> float:
    """Queries per second with ``clients`` tasks issuing ``total`` calls back to back between them,
    after ``warmup`` untimed calls the same way (a pool grows to ``clients`` connections, and each
    connection prepares its statements, before the clock starts)."""

    async def run(count: int) -> None:
        counter = iter(range(count))

        async def client() -> None:
            for i in counter:
                await call(i)

        await asyncio.gather(*(client() for _ in range(clients)))

    if warmup:
        await run(warmup)
    start = time.perf_counter()
    await run(total)
    return total / (time.perf_counter() - start)


def closed_loop_threads(make_client: Callable[[], Callable[[int], Any]], clients: int, total: int) -> float:
    """Queries per second with ``clients`` threads, each with its own ``make_client()`` callable
    (its own connection), issuing ``total`` calls between them."""
    lock = threading.Lock()
    counter = iter(range(total))
    calls = [make_client() for _ in range(clients)]

    def next_index() -> int | None:
        with lock:
            return next(counter, None)

    def run(call: Callable[[int], Any]) -> None:
        while (i := next_index()) is not None:
            call(i)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return total / (time.perf_counter() - start)
