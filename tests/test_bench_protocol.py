"""``vectorstore bench`` works from the backend contract (vectorstore.spi.Benchmarkable), not from
backend internals: a third-party backend registered at run time is benchmarked like the built-in
ones, and the core imports no backend module."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import vectorstore as vs
from vectorstore import registry
from vectorstore.bench import measure, report, targets
from vectorstore.bench.datasets import clustered
from vectorstore.bench.runner import Options, run_case
from vectorstore.cli import main
from vectorstore.config import StoreConfig
from vectorstore.filters import MatchAll
from vectorstore.records import Vector
from vectorstore.schema import CollectionSpec
from vectorstore.spi import Backend, BackendSpec, Benchmarkable, ExplainedSearch, RawBaseline, ServerFacts
from vectorstore_memory.backend import CAPABILITIES, MemoryBackend

ROOT = Path(__file__).resolve().parents[1]

Row = tuple[int, int, dict[str, int], float]


class NumpyBaseline:
    """The toy's raw baseline: the vectors in a NumPy matrix, searched exactly."""

    description = "NumPy matrix"
    exact = True
    repeat = False

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.unit = np.empty((0, dim), dtype=np.float32)
        self.buckets = np.empty(0, dtype=np.int64)
        self.closed = False

    async def load(self, vectors: Vector, buckets: Sequence[int], *, scratch: bool = False) -> float:
        start = time.perf_counter()
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        elapsed = time.perf_counter() - start
        if not scratch:
            self.unit, self.buckets = unit.astype(np.float32), np.asarray(buckets, dtype=np.int64)
        return elapsed

    async def build_index(self, spec: CollectionSpec) -> None:
        return None

    def _rows(self, query: Vector, k: int, mask: Any = None) -> list[Row]:
        distance = 1.0 - self.unit.astype(np.float64) @ (query / np.linalg.norm(query))
        candidates = np.arange(len(distance)) if mask is None else np.flatnonzero(mask)
        order = candidates[np.lexsort((candidates, distance[candidates]))[:k]]
        return [(int(i) + 1, int(self.buckets[i]), {"n": int(i) + 1}, float(distance[i])) for i in order]

    async def search(self, query: Vector, k: int) -> list[Row]:
        return self._rows(query, k)

    async def search_filtered(self, query: Vector, k: int, below: int) -> list[Row]:
        return self._rows(query, k, self.buckets < below)

    async def search_many(self, queries: Vector, k: int) -> list[list[Row]]:
        return [self._rows(query, k) for query in queries]

    async def set_ef_search(self, ef_search: int | None) -> None:
        raise AssertionError("an exact baseline is never given an ef_search")

    async def explain(self, query: Vector, k: int) -> None:
        return None

    @contextlib.asynccontextmanager
    async def clients(self, count: int, queries: Vector,
                      k: int) -> AsyncIterator[Callable[[int, int], Awaitable[float]]]:
        async def rate(total: int, warmup: int) -> float:
            return await measure.closed_loop_async(lambda i: self.search(queries[i % len(queries)], k), count, total,
                                                   warmup)

        yield rate

    async def close(self) -> None:
        self.closed = True


class BenchToyBackend(MemoryBackend):
    """The memory backend plus :class:`Benchmarkable`: a NumPy baseline, the server's part
    "explained" (the time of an in-process search), no pgbench ceiling."""

    name = "benchtoy"
    bench_builds_index = False
    opened: ClassVar[list[BenchToyBackend]] = []

    def __init__(self) -> None:
        super().__init__()
        self.baselines: list[NumpyBaseline] = []
        self.discarded = False

    def bench_store_options(self, clients: int) -> dict[str, Any]:
        return {}

    async def bench_baseline(self, dim: int, metric: str, workdir: Path) -> NumpyBaseline:
        assert metric == "cosine" and workdir.is_dir()
        self.baselines.append(NumpyBaseline(dim))
        return self.baselines[-1]

    async def bench_server(self) -> ServerFacts:
        return ServerFacts(facts={"engine": "numpy", "numpy": np.__version__},
                           notes=("note: the toy's server is this process",))

    async def bench_explain(self, spec: CollectionSpec, query: Vector, k: int) -> ExplainedSearch:
        start = time.perf_counter()
        await self.search(spec, query[None, :], k, MatchAll(), None, None, False)
        return ExplainedSearch(server_ms=(time.perf_counter() - start) * 1000, plan={"scan": "exact"})

    async def bench_ceiling(self, spec: CollectionSpec, queries: Vector, k: int) -> None:
        return None

    async def bench_discard(self) -> None:
        self.discarded = True


async def _open_toy(config: StoreConfig) -> Backend:
    backend = BenchToyBackend()
    BenchToyBackend.opened.append(backend)
    return backend


async def _open_plain(config: StoreConfig) -> Backend:
    return MemoryBackend()


#: The base URLs the toy's test_url was given.
BASE_URLS: list[str | None] = []


def _toy_url(base_url: str | None, tmp_path: Path) -> str:
    BASE_URLS.append(base_url)
    return "benchtoy://"


class BenchToyPlugin:
    @vs.hookimpl
    def vectorstore_register_backends(self) -> list[BackendSpec]:
        return [BackendSpec(name="benchtoy", schemes=("benchtoy",), factory=_open_toy, capabilities=CAPABILITIES,
                            test_url=_toy_url),
                BackendSpec(name="plaintoy", schemes=("plaintoy",), factory=_open_plain, capabilities=CAPABILITIES,
                            test_url=lambda base, tmp: "plaintoy://")]


@pytest.fixture(autouse=True)
def toy_plugin() -> Iterator[None]:
    plugin = BenchToyPlugin()
    registry.register(plugin, name="benchtoy")
    BenchToyBackend.opened.clear()
    BASE_URLS.clear()
    yield
    registry.unregister(plugin)


def test_benchmarkable_is_what_a_backend_implements_not_what_it_is(tmp_path: Path) -> None:
    """The bench asks the opened backend (isinstance), not for a class it knows: the toy and the
    built-in SQLite backend implement the protocol, the memory reference does not."""
    assert isinstance(BenchToyBackend(), Benchmarkable)
    assert not isinstance(MemoryBackend(), Benchmarkable)
    baseline: RawBaseline = NumpyBaseline(8)  # (mypy checks the toy's baseline against the protocol)
    assert baseline.exact and not baseline.repeat

    async def sqlite_backend() -> bool:
        async with await vs.open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
            return isinstance(store.backend, Benchmarkable)

    assert asyncio.run(sqlite_backend())


def test_a_third_party_backend_is_benchmarked_through_the_protocol(tmp_path: Path) -> None:
    data = clustered(500, 8, queries=6)
    opts = Options(queries=6, rounds=2, clients=(1, 2), sweep=(20, 40), ceiling_seconds=1, workdir=tmp_path)
    logged: list[str] = []
    case = asyncio.run(run_case("benchtoy", data, opts, logged.append))
    assert (case["backend"], case["dataset"], case["n"], case["dim"]) == ("benchtoy", "clustered", 500, 8)
    assert case["server"] == {"engine": "numpy", "numpy": np.__version__}
    assert "  note: the toy's server is this process" in logged
    ours, raw = case["sides"]["vectorstore"], case["sides"]["raw"]
    for side in (ours, raw):
        assert side["load_vps"] > 0 and side["latency_ms"]["p50"] > 0 and side["search_many_qps"] > 0
        assert side["recall_at_10"] == 1.0  # both exact
        assert set(side["concurrent_qps"]) == {"1", "2"} and all(q > 0 for q in side["concurrent_qps"].values())
        assert "concurrent_qps_samples" not in side  # measured once: the baseline does not ask for rounds
        assert {p: f["full_k_share"] for p, f in side["filtered"].items()} == {"50": 1.0, "10": 1.0, "1": 1.0}
        assert all(f["recall_at_10"] == 1.0 for f in side["filtered"].values())
        assert len(side["load_vps_samples"]) == 1  # loaded once: the baseline does not ask for rounds
    # The parts the toy implements are measured, the others left out.
    assert ours["index_build_s"] is None and "index_build_s" not in raw  # nothing built on either side
    assert ours["server_ms"] > 0 and "server_ms" not in raw  # only the backend explains its searches
    assert [p["knob"] for p in ours["sweep"]] == ["ef_search=20", "ef_search=40"]
    assert [p["knob"] for p in raw["sweep"]] == ["exact"]  # an exact baseline: one point
    assert "pgbench" not in case["sides"]  # no statements offered: no ceiling, though one was asked for
    assert case["ratios"]["search_p50"] == pytest.approx(ours["latency_ms"]["p50"] / raw["latency_ms"]["p50"])
    # The store was discarded, the baseline closed, the work directory deleted.
    [backend] = BenchToyBackend.opened
    assert backend.discarded and backend.baselines[0].closed
    assert list(tmp_path.iterdir()) == []

    # The report's rows for the toy: a row per side, the parts it lacks as dashes.
    results = {"cases": [case]}
    sides_table, ratios_table = report.markdown_table(results).split("\n\n")
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in sides_table.splitlines()]
    header = lines[0]
    rows = {cells[3]: cells for cells in lines[2:]}
    assert set(rows) == {"vectorstore", "raw"} and all(cells[0] == "benchtoy" for cells in rows.values())
    mine = dict(zip(header, rows["vectorstore"], strict=True))
    theirs = dict(zip(header, rows["raw"], strict=True))
    assert (mine["dataset"], mine["n\u00d7dim"]) == ("clustered", "500\u00d78")
    assert mine["recall@10"] == theirs["recall@10"] == "1.000"
    assert mine["build (s)"] == theirs["build (s)"] == report.DASH
    assert mine["server p50 (ms)"] != report.DASH and theirs["server p50 (ms)"] == report.DASH
    assert mine["filter 1%: p50 ms (k hits)"].endswith("(100%)")
    assert "| benchtoy | clustered | 500\u00d78 | " in ratios_table
    assert report.summary_lines(results)[0].startswith("benchtoy clustered 500\u00d78: search p50 ")
    by_name = {t.name: t for t in targets.evaluate(results)}
    assert by_name["benchtoy search p50 <= 1.10x raw"].value == case["ratios"]["search_p50"]


def test_the_cli_benchmarks_a_third_party_backend_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results"
    argv = ["bench", "--backend", "benchtoy", "--dataset", "clustered", "--n", "500", "--dim", "8",
            "--queries", "5", "--rounds", "1", "--clients", "1", "--out", str(out)]
    assert main([*argv, "--url", "benchtoy=toy://server/a"]) == 0
    [case] = json.loads((out / "latest.json").read_text())["cases"]
    assert (case["backend"], case["n"], case["dim"]) == ("benchtoy", 500, 8)
    assert "| benchtoy | clustered | 500\u00d78 | raw |" in (out / "latest.md").read_text()
    # The backend's test_url got the base URL: checked once before the data set, then the case.
    assert BASE_URLS == ["toy://server/a", "toy://server/a"]
    BASE_URLS.clear()
    monkeypatch.setenv("VECTORSTORE_BENCH_BENCHTOY_URL", "toy://server/b")
    assert main(argv) == 0
    assert BASE_URLS == ["toy://server/b", "toy://server/b"]


def test_without_backend_every_installed_one_that_can_be_benchmarked_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    toys = {name: spec for name, spec in registry.backends().items() if name in ("benchtoy", "plaintoy")}
    monkeypatch.setattr(registry, "backends", lambda: toys)  # (the built-in ones would take minutes)
    out = tmp_path / "results"
    assert main(["bench", "--dataset", "clustered", "--n", "500", "--dim", "8", "--queries", "5", "--rounds", "1",
                 "--clients", "1", "--out", str(out)]) == 0
    assert [c["backend"] for c in json.loads((out / "latest.json").read_text())["cases"]] == ["benchtoy"]
    printed = " ".join(capsys.readouterr().out.split())
    assert "plaintoy skipped: the plaintoy backend does not implement vectorstore.spi.Benchmarkable" in printed


def test_a_backend_without_the_protocol_is_refused_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--backend", "plaintoy", "--n", "500", "--dim", "8"]) == 2
    printed = " ".join(capsys.readouterr().out.split())
    assert "the plaintoy backend does not implement vectorstore.spi.Benchmarkable" in printed
    assert main(["bench", "--backend", "nosuchbackend", "--n", "500", "--dim", "8"]) == 2
    printed = " ".join(capsys.readouterr().out.split())
    assert "no installed backend is called 'nosuchbackend'" in printed and "benchtoy" in printed
    assert main(["bench", "--backend", "benchtoy", "--url", "toy://server"]) == 2
    assert "--url takes NAME=URL" in capsys.readouterr().out


def _backend_packages() -> set[str]:
    return {path.name for path in (ROOT / "backends").glob("*/vectorstore_*") if path.is_dir()}


def test_the_core_imports_no_backend_module() -> None:
    """src/vectorstore/ finds backends through the plugin registry only: no import of a backend
    package (vectorstore_postgres, vectorstore_sqlite, ...) anywhere in it, not even lazily."""
    packages = _backend_packages()
    assert {"vectorstore_postgres", "vectorstore_sqlite", "vectorstore_memory"} <= packages
    found: list[str] = []
    for path in sorted((ROOT / "src" / "vectorstore").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and _dynamic_import(node):
                names = [str(node.args[0].value)]  # type: ignore[attr-defined]
            found += [f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}: {name}" for name in names
                      if name.split(".")[0] in packages]
    assert not found, "the core imports backend modules:\n" + "\n".join(found)


def _dynamic_import(call: ast.Call) -> bool:
    """``importlib.import_module("...")``, ``import_module("...")`` or ``__import__("...")``."""
    func = call.func
    named = ((isinstance(func, ast.Attribute) and func.attr == "import_module")
             or (isinstance(func, ast.Name) and func.id in ("import_module", "__import__")))
    return named and bool(call.args) and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
