"""Load through one store: 100 concurrent searches and 20 concurrent writers on one async store (a
pool of 10 connections) for 10 s here and 60 s in ``tox -e faults-slow``. No call may fail, and the
process's memory must stay flat. Prints the latency percentiles and what bounds them: the time
calls wait for a pooled connection (psycopg-pool's own statistics) against the time they hold one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import psutil
import pytest

import vectorstore as vs
from fixtures.pgserver import PgServer

pytestmark = pytest.mark.postgres

DIM = 64
ROWS = 5_000
SEARCHERS = 100
WRITERS = 20
#: Ids each writer keeps overwriting (the table stays the same size, under exact_search_below).
WRITER_IDS = 100
#: Allowed growth of the resident memory between the end of the warm-up and the end of the run.
MEMORY_SLACK = 32 * 2**20


@attrs.define
class Report:
    seconds: float
    search_ms: list[float] = attrs.field(factory=list)
    write_ms: list[float] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)
    rss: list[tuple[float, int]] = attrs.field(factory=list)
    pool: dict[str, int] = attrs.field(factory=dict)
    handed_out: int = 0
    #: The most calls seen waiting for a connection (pool_stats), and pool_stats after the run.
    most_waiting: int = 0
    after: dict[str, int] = attrs.field(factory=dict)
    wait_seconds: float = 0.0
    hold_seconds: float = 0.0
    #: CPU seconds used during the run: this process, the PostgreSQL server's processes.
    cpu: list[float] = attrs.field(factory=list)

    def percentile(self, values: list[float], q: float) -> float:
        return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def cpu_seconds(server_pids: Callable[[], list[int]]) -> list[float]:
    """CPU seconds (user + system) so far of this process and of the server's processes."""
    mine = psutil.Process().cpu_times()
    server = 0.0
    for pid in server_pids():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            server += times.user + times.system
    return [mine.user + mine.system, server]


async def run_load(url: str, seconds: float, pg_pids: Callable[[], list[int]]) -> Report:
    report = Report(seconds)
    store = await vs.open_store(url, pool_max=10)
    try:
        col = await store.create_collection("load", dim=DIM, fields={"writer": "int"})
        rng = np.random.default_rng(0)
        data = rng.normal(size=(ROWS, DIM)).astype(np.float32)
        await col.upsert([{"id": f"r{i}", "vector": data[i]} for i in range(ROWS)])
        queries = rng.normal(size=(256, DIM)).astype(np.float32)
        backend: Any = store.backend
        connections = backend._connections
        connections.pool.pop_stats()  # (the statistics of the run alone)
        before = (connections.handed_out, connections.wait_seconds, connections.hold_seconds)
        cpu = cpu_seconds(pg_pids)
        end = time.monotonic() + seconds

        async def searcher(n: int) -> None:
            i = n
            while time.monotonic() < end:
                start = time.perf_counter()
                try:
                    hits = await col.search(queries[i % len(queries)], k=10)
                    assert len(hits) == 10
                except Exception as exc:  # (counted, not raised: the run goes on)
                    report.errors.append(f"search: {type(exc).__name__}: {exc}")
                report.search_ms.append((time.perf_counter() - start) * 1000)
                i += SEARCHERS

        async def writer(w: int) -> None:
            i = 0
            wrng = np.random.default_rng(1000 + w)
            while time.monotonic() < end:
                ids = [f"w{w}-{(i + j) % WRITER_IDS}" for j in range(10)]
                batch = wrng.normal(size=(10, DIM)).astype(np.float32)
                start = time.perf_counter()
                try:
                    await col.upsert([{"id": rid, "vector": batch[j], "fields": {"writer": w}}
                                      for j, rid in enumerate(ids)])
                except Exception as exc:
                    report.errors.append(f"upsert: {type(exc).__name__}: {exc}")
                report.write_ms.append((time.perf_counter() - start) * 1000)
                i += 10

        async def sampler() -> None:
            proc = psutil.Process()
            started = time.monotonic()
            while time.monotonic() < end:
                gc.collect()
                report.rss.append((time.monotonic() - started, proc.memory_info().rss))
                report.most_waiting = max(report.most_waiting, backend.pool_stats()["waiting"])
                await asyncio.sleep(min(1.0, seconds / 20))

        await asyncio.gather(*(searcher(n) for n in range(SEARCHERS)), *(writer(w) for w in range(WRITERS)),
                             sampler())
        report.pool = dict(connections.pool.get_stats())
        report.after = backend.pool_stats()
        report.handed_out = connections.handed_out - before[0]
        report.wait_seconds = connections.wait_seconds - before[1]
        report.hold_seconds = connections.hold_seconds - before[2]
        report.cpu = [after - start for after, start in zip(cpu_seconds(pg_pids), cpu, strict=True)]
        assert await col.count({"writer": {"$gte": 0}}) == WRITERS * WRITER_IDS
    finally:
        await store.aclose()
    return report


def check(report: Report) -> None:
    calls = len(report.search_ms) + len(report.write_ms)
    pool = report.pool
    waited = report.wait_seconds * 1000 / max(1, report.handed_out)
    held = report.hold_seconds * 1000 / max(1, report.handed_out)
    print(f"\nload {report.seconds:g}s: {len(report.search_ms)} searches, {len(report.write_ms)} upserts of 10 "
          f"({calls / report.seconds:.0f} calls/s); search p50 {report.percentile(report.search_ms, 50):.1f} ms, "
          f"p99 {report.percentile(report.search_ms, 99):.1f} ms; upsert p50 "
          f"{report.percentile(report.write_ms, 50):.1f} ms, p99 {report.percentile(report.write_ms, 99):.1f} ms; "
          f"per request: {waited:.1f} ms waiting for one of 10 connections, {held:.1f} ms holding it; "
          f"{pool.get('requests_queued', 0)} of {pool.get('requests_num', 0)} requests queued; "
          f"RSS {report.rss[0][1] / 2**20:.0f} -> {report.rss[-1][1] / 2**20:.0f} MiB; CPU: this process "
          f"{report.cpu[0] / report.seconds:.2f} cores, the server {report.cpu[1] / report.seconds:.2f} cores "
          f"(of {psutil.cpu_count()})")
    assert report.errors == [], report.errors[:5]
    # The pool's gauges: calls queued for a connection while 120 callers share 10; none after.
    assert report.most_waiting > 0 and report.after["waiting"] == 0 and report.after["in_use"] == 0, (
        report.most_waiting, report.after)
    assert report.after["size"] <= 10
    assert len(report.search_ms) > SEARCHERS and len(report.write_ms) > WRITERS
    # Flat memory: after the warm-up (the first quarter), the resident size grows by less than the slack.
    warm = [rss for t, rss in report.rss if t >= report.seconds / 4]
    assert len(warm) >= 2
    assert max(warm) - warm[0] < MEMORY_SLACK, [(round(t, 1), rss // 2**20) for t, rss in report.rss]
    # Every call took a pooled connection once, and its latency is the wait for one plus the
    # time it held it (within a few ms per call of the event loop's own scheduling).
    assert report.handed_out >= calls
    mean = (sum(report.search_ms) + sum(report.write_ms)) / calls
    assert abs(mean - (waited + held)) < 0.25 * mean + 5, (mean, waited, held)


def test_a_hundred_searches_and_twenty_writers_share_one_store(pg: PgServer) -> None:
    check(asyncio.run(run_load(pg.url(), 10.0, pg.pids)))


@pytest.mark.slow
def test_a_minute_of_load_through_one_store(pg: PgServer) -> None:
    check(asyncio.run(run_load(pg.url(), 60.0, pg.pids)))
