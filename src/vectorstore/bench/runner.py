"""One benchmark case: a data set loaded into vectorstore and into the raw baseline,
both measured with the same queries, parameters and warm caches.

The case runs on any backend that implements :class:`vectorstore.spi.Benchmarkable`, found
by name in the plugin registry: the store is a throwaway one at the backend's ``test_url``,
opened through the public API; the baseline, the server's facts, its explanation of a search
and the statements for the C-client ceiling come from the backend. The core imports no
backend module.

Search latencies alternate between the two sides query by query, so drift of the
machine (other load, CPU frequency) hits both equally; every latency figure pools
the samples of all rounds.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

import vectorstore
from vectorstore import registry
from vectorstore.bench import ceiling, measure
from vectorstore.bench.datasets import Dataset
from vectorstore.errors import ConfigError, NotSupported, UnknownBackend
from vectorstore.spi import Benchmarkable, ExplainedSearch

Log = Callable[[str], None]


@attrs.frozen(slots=True)
class Options:
    k: int = 10
    queries: int = 200
    rounds: int = 3
    clients: tuple[int, ...] = (1, 4, 8, 16)
    selectivities: tuple[int, ...] = (50, 10, 1)
    #: ef_search values for the latency-vs-recall sweep (both sides get the same value).
    sweep: tuple[int, ...] = (20, 40, 80, 160)
    #: Base URL per backend name, given to the backend's ``BackendSpec.test_url`` (PostgreSQL: the
    #: server to work on); else ``VECTORSTORE_BENCH_<NAME>_URL`` (see :func:`base_url`).
    urls: Mapping[str, str] = attrs.field(factory=dict)
    #: Where the cases' work directories go (the system's temporary directory by default).
    workdir: Path | None = None
    #: Seconds pgbench runs per client count for the C-client ceiling (where the backend offers
    #: its statements: PostgreSQL); 0: not measured.
    ceiling_seconds: float = 5.0


def _ids(hits: Sequence[Any]) -> list[int]:
    return [int(h.id) - 1 for h in hits]


def _raw_ids(rows: Sequence[Sequence[Any]]) -> list[int]:
    return [int(r[0]) - 1 for r in rows]


def _records(data: Dataset) -> list[dict[str, Any]]:
    buckets = data.buckets().tolist()
    return [{"id": i + 1, "vector": data.vectors[i], "fields": {"bucket": buckets[i]}, "metadata": {"n": i + 1}}
            for i in range(data.n)]


async def _alternate(ours: Callable[[int], Awaitable[Any]], raw: Callable[[int], Awaitable[Any]], count: int,
                     rounds: int) -> tuple[list[float], list[Any], list[float], list[Any]]:
    """Latencies and last-round results of both sides. After one warm-up pass each, the sides
    take turns query by query (who goes first alternating too), so a slow moment of the
    machine falls on both sides alike."""
    await measure.time_async(ours, count)
    await measure.time_async(raw, count)
    ours_t: list[float] = []
    raw_t: list[float] = []
    ours_r: list[Any] = [None] * count
    raw_r: list[Any] = [None] * count
    for r in range(rounds):
        for i in range(count):
            for side in ((0, 1) if (i + r) % 2 == 0 else (1, 0)):
                start = time.perf_counter()
                if side == 0:
                    ours_r[i] = await ours(i)
                    ours_t.append(time.perf_counter() - start)
                else:
                    raw_r[i] = await raw(i)
                    raw_t.append(time.perf_counter() - start)
    return ours_t, ours_r, raw_t, raw_r


async def _rates_alternating(ours: Callable[[int, int], Awaitable[float]], raw: Callable[[int, int], Awaitable[float]],
                             total: int, warmup: int, rounds: int) -> tuple[list[float], list[float]]:
    """Each side's closed-loop rate (queries/s) in every round, ``ours(total, warmup)`` and
    ``raw(total, warmup)``, the sides taking turns (who goes first alternating), so that a slow
    stretch of the machine falls on both; each side warms up before its first round."""
    ours_q: list[float] = []
    raw_q: list[float] = []
    for r in range(rounds):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            if side == 0:
                ours_q.append(await ours(total, warmup if r == 0 else 0))
            else:
                raw_q.append(await raw(total, warmup if r == 0 else 0))
    return ours_q, raw_q


def _side() -> dict[str, Any]:
    return {"concurrent_qps": {}, "filtered": {}, "sweep": []}


def _ratios(ours: dict[str, Any], raw: dict[str, Any]) -> dict[str, float]:
    """vectorstore relative to raw: latencies as ours/raw (lower is better), throughputs as ours/raw
    (higher is better)."""
    out: dict[str, float] = {}
    if ours.get("latency_ms") and raw.get("latency_ms"):
        for p in ("p50", "p95", "p99"):
            out[f"search_{p}"] = ours["latency_ms"][p] / raw["latency_ms"][p]
    if ours.get("load_vps") and raw.get("load_vps"):
        out["load"] = ours["load_vps"] / raw["load_vps"]
    if ours.get("search_many_qps") and raw.get("search_many_qps"):
        out["search_many"] = ours["search_many_qps"] / raw["search_many_qps"]
    for c, qps in ours.get("concurrent_qps", {}).items():
        if raw.get("concurrent_qps", {}).get(c):
            out[f"concurrent_{c}"] = qps / raw["concurrent_qps"][c]
    return out


async def _load_ours(store: vectorstore.AsyncStore, data: Dataset, side: dict[str, Any], log: Log,
                     name: str = "bench", keep: bool = True) -> vectorstore.AsyncCollection:
    """Create the collection and load the data set in one upsert inside ``bulk_load()`` (which
    defers the index): the upsert is the load, the end of the block the index build. With
    ``keep=False`` the collection is dropped inside the block (a load measured, no index built)."""
    col = await store.create_collection(name, dim=data.dim, metric=data.metric, id_type="int",
                                        fields={"bucket": "int"})
    records = _records(data)
    log(f"  loading {data.n:,} x {data.dim} into vectorstore (bulk_load + upsert)")
    async with col.bulk_load():
        start = time.perf_counter()
        await col.upsert(records)
        side["load_s"] = time.perf_counter() - start
        side.setdefault("load_samples_s", []).append(side["load_s"])
        if not keep:
            await store.drop_collection(name)
        start = time.perf_counter()
    side["index_build_s"] = time.perf_counter() - start
    return col


def _load_rate(data: Dataset, side: dict[str, Any]) -> None:
    """Vectors/s of the median load, with every sample's rate (variance)."""
    samples = side.pop("load_samples_s")
    side["load_s"] = statistics.median(samples)
    side["load_vps"] = data.n / side["load_s"]
    side["load_vps_samples"] = [data.n / s for s in samples]


async def _search_many(col: vectorstore.AsyncCollection, queries: Any, k: int, rounds: int,
                       raw_many: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Queries/s of every query in one call, the best of ``rounds``: (vectorstore, raw)."""
    ours_best = raw_best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        await col.search_many(queries, k=k)
        ours_best = max(ours_best, len(queries) / (time.perf_counter() - start))
        start = time.perf_counter()
        await raw_many()
        raw_best = max(raw_best, len(queries) / (time.perf_counter() - start))
    return ours_best, raw_best


def _swap(call: Callable[[int, int], Awaitable[Any]], p: int, i: int) -> Awaitable[Any]:
    return call(i, p)


def _search_ef(col: Any, queries: Any, k: int, ef: int, i: int) -> Awaitable[Any]:
    result: Awaitable[Any] = col.search(queries[i], k=k, ef_search=ef)
    return result


async def _filtered(data: Dataset, opts: Options, ours: Callable[[int, int], Awaitable[Any]],
                    raw: Callable[[int, int], Awaitable[Any]], result: dict[str, dict[str, Any]], log: Log) -> None:
    buckets = data.buckets()
    nq = len(data.queries)
    for p in opts.selectivities:
        log(f"  filtered search, filter passes {p} % of rows")
        truth = data.exact_neighbours(opts.k, rows=buckets < p)
        ours_t, ours_r, raw_t, raw_r = await _alternate(functools.partial(_swap, ours, p),
                                                        functools.partial(_swap, raw, p), nq, max(1, opts.rounds - 1))
        want = min(opts.k, int((buckets < p).sum()))
        for side, times, found in (("vectorstore", ours_t, ours_r), ("raw", raw_t, raw_r)):
            lat = measure.latency_summary(times)
            result[side]["filtered"][str(p)] = {
                "p50_ms": lat["p50"], "p95_ms": lat["p95"],
                "full_k_share": sum(len(f) >= want for f in found) / nq,
                "recall_at_10": measure.recall_at(found, truth, opts.k),
            }


# -- one case, on any backend that implements vectorstore.spi.Benchmarkable ------------------

#: Where a backend's cases run when ``--url NAME=URL`` does not say: a base URL given to its
#: ``test_url`` (VECTORSTORE_BENCH_POSTGRES_URL: a PostgreSQL server to work on).
URL_ENV = "VECTORSTORE_BENCH_{}_URL"


def base_url(name: str, opts: Options) -> str | None:
    """The base URL for the backend's ``test_url``: ``opts.urls[name]``, else
    ``VECTORSTORE_BENCH_<NAME>_URL``, else None (the backend's own default)."""
    return opts.urls.get(name) or os.environ.get(URL_ENV.format(name.upper())) or None


@contextlib.asynccontextmanager
async def bench_store(name: str, opts: Options,
                      workdir: Path) -> AsyncIterator[tuple[vectorstore.AsyncStore, Benchmarkable]]:
    """A throwaway store of the backend called ``name``: opened at its ``test_url`` (with
    ``workdir`` as its directory) through the public API, checked to implement
    :class:`~vectorstore.spi.Benchmarkable`, reopened with the options it asks for (room for every
    client), and discarded (:meth:`~vectorstore.spi.Benchmarkable.bench_discard`) when the block ends."""
    backends = registry.backends()
    spec = backends.get(name)
    if spec is None:
        raise UnknownBackend(f"no installed backend is called {name!r}; installed: {', '.join(sorted(backends))} "
                             "(`vectorstore plugins` lists them with their packages)")
    if spec.test_url is None:
        raise NotSupported(f"the {name} backend gives no test_url (BackendSpec.test_url), so the bench cannot make "
                           "a throwaway store for it; its plugin must add one")
    try:
        url = spec.test_url(base_url(name, opts), workdir)
        store = await vectorstore.open_store(url)
    except ImportError as exc:
        raise ConfigError(f"the {name} benchmark cannot open a store: {exc}. Install what it names (for this "
                          f'project\'s backends: pip install "vectorstore[{name},test]"), or give it a store to '
                          f"work on with --url {name}=URL") from exc
    try:
        backend = _benchmarkable(name, store)
        options = backend.bench_store_options(max(opts.clients))
        if options:
            await store.aclose()
            store = await vectorstore.open_store(url, **options)
            backend = _benchmarkable(name, store)
    except BaseException:
        await store.aclose()
        raise
    try:
        yield store, backend
    finally:
        try:
            await backend.bench_discard()
        finally:
            await store.aclose()


def _benchmarkable(name: str, store: vectorstore.AsyncStore) -> Benchmarkable:
    backend = store.backend
    if not isinstance(backend, Benchmarkable):
        raise NotSupported(f"the {name} backend does not implement vectorstore.spi.Benchmarkable, so there is no "
                           "raw-driver baseline to measure it against; docs/benchmarks.md (\"Benchmarking a "
                           "backend\") says what a backend implements to be benchmarked")
    return backend


async def check_backend(name: str, opts: Options) -> None:
    """Open and discard the backend's benchmark store: raises what would stop its cases, before
    any data set is built."""
    workdir = Path(tempfile.mkdtemp(prefix="vectorstore-bench-", dir=opts.workdir))
    try:
        async with bench_store(name, opts, workdir):
            pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _case(store: vectorstore.AsyncStore, target: Benchmarkable, workdir: Path, data: Dataset, opts: Options,
                log: Log) -> dict[str, Any]:
    k, nq = opts.k, len(data.queries)
    truth = data.exact_neighbours(k)
    result = {"vectorstore": _side(), "raw": _side()}
    ours_s, raw_s = result["vectorstore"], result["raw"]
    buckets = data.buckets().tolist()
    raw = await target.bench_baseline(data.dim, data.metric, workdir)
    try:
        if raw.repeat:
            # Loads vary by tens of percent from one to the next (checkpoints, the page cache):
            # extra rounds into scratch tables, sides alternating, and the median of all.
            for r in range(opts.rounds - 1):
                for turn in ((0, 1) if r % 2 else (1, 0)):
                    if turn == 0:
                        await _load_ours(store, data, ours_s, log, name=f"load_{r}", keep=False)
                    else:
                        log(f"  loading {data.n:,} x {data.dim} raw ({raw.description}, scratch)")
                        raw_s.setdefault("load_samples_s", []).append(
                            await raw.load(data.vectors, buckets, scratch=True))
        col = await _load_ours(store, data, ours_s, log)
        if not target.bench_builds_index:
            ours_s["index_build_s"] = None  # nothing is built when bulk_load() ends
        log(f"  loading {data.n:,} x {data.dim} raw ({raw.description})")
        raw_s.setdefault("load_samples_s", []).append(await raw.load(data.vectors, buckets))
        spec = col.spec
        built = await raw.build_index(spec)
        if built is not None:
            raw_s["index_build_s"] = built
        _load_rate(data, ours_s)
        _load_rate(data, raw_s)
        server = await target.bench_server()
        for note in server.notes:
            log(f"  {note}")

        queries = data.queries
        log("  single-query latency (alternating sides)")
        ours_t, ours_r, raw_t, raw_r = await _alternate(
            lambda i: col.search(queries[i], k=k), lambda i: raw.search(queries[i], k), nq, opts.rounds)
        ours_s["latency_ms"] = measure.latency_summary(ours_t)
        raw_s["latency_ms"] = measure.latency_summary(raw_t)
        ours_s["recall_at_10"] = measure.recall_at([_ids(h) for h in ours_r], truth, k)
        raw_s["recall_at_10"] = measure.recall_at([_raw_ids(r) for r in raw_r], truth, k)

        await _server_ms(lambda i: target.bench_explain(spec, queries[i], k), lambda i: raw.explain(queries[i], k),
                         nq, ours_s, raw_s, log)

        log("  latency vs recall sweep over ef_search")
        if raw.exact:  # nothing to sweep on the raw side: one point
            raw_s["sweep"].append({"knob": "exact", "p50_ms": raw_s["latency_ms"]["p50"],
                                   "recall_at_10": raw_s["recall_at_10"]})
            for ef in opts.sweep:
                times, found = await measure.time_async(functools.partial(_search_ef, col, queries, k, ef), nq)
                ours_s["sweep"].append({"knob": f"ef_search={ef}", "p50_ms": measure.latency_summary(times)["p50"],
                                        "recall_at_10": measure.recall_at([_ids(h) for h in found], truth, k)})
        else:
            for ef in opts.sweep:
                await raw.set_ef_search(ef)
                ours_t, ours_r, raw_t, raw_r = await _alternate(
                    functools.partial(_search_ef, col, queries, k, ef), lambda i: raw.search(queries[i], k), nq, 1)
                ours_s["sweep"].append({"knob": f"ef_search={ef}", "p50_ms": measure.latency_summary(ours_t)["p50"],
                                        "recall_at_10": measure.recall_at([_ids(h) for h in ours_r], truth, k)})
                raw_s["sweep"].append({"knob": f"ef_search={ef}", "p50_ms": measure.latency_summary(raw_t)["p50"],
                                       "recall_at_10": measure.recall_at([_raw_ids(r) for r in raw_r], truth, k)})
            await raw.set_ef_search(None)

        log("  search_many throughput")
        ours_s["search_many_qps"], raw_s["search_many_qps"] = await _search_many(
            col, queries, k, opts.rounds, lambda: raw.search_many(queries, k))

        rounds = opts.rounds if raw.repeat else 1
        for clients in opts.clients:
            log(f"  concurrent throughput, {clients} client(s), {rounds} round(s) a side")
            # A brute-force baseline takes seconds per hundred queries: fewer of them.
            total = max(nq // 2, 8 * clients) if raw.exact else max(4 * nq, 100 * clients)
            # Before the clock starts, vectorstore's pool grows to `clients` connections (each
            # preparing its statements); the baseline's clients open theirs at once.
            warmup = 10 * clients if raw.repeat else 0

            async def ours_rate(total: int, warmup: int, clients: int = clients) -> float:
                return await measure.closed_loop_async(lambda i: col.search(queries[i % nq], k=k), clients, total,
                                                       warmup)

            async with raw.clients(clients, queries, k) as raw_rate:
                ours_q, raw_q = await _rates_alternating(ours_rate, raw_rate, total, warmup, rounds)
            for side, rates in ((ours_s, ours_q), (raw_s, raw_q)):
                side["concurrent_qps"][str(clients)] = statistics.median(rates)
                if rounds > 1:
                    side.setdefault("concurrent_qps_samples", {})[str(clients)] = rates
        if opts.ceiling_seconds > 0:
            offered = await target.bench_ceiling(spec, queries[:ceiling.MAX_SCRIPTS], k)
            if offered is not None:
                reached = await ceiling.ceiling_qps(list(offered.statements), offered.conninfo, offered.settings,
                                                    opts.clients, opts.ceiling_seconds, log)
                if reached is not None:
                    result[ceiling.SIDE] = {"concurrent_qps": reached}

        await _filtered(
            data, opts,
            lambda i, p: _ids_async(col.search(queries[i], k=k, where={"bucket": {"$lt": p}})),
            lambda i, p: _raw_ids_async(raw.search_filtered(queries[i], k, p)), result, log)
    finally:
        await raw.close()
    return {"sides": result, "ratios": _ratios(ours_s, raw_s), "server": dict(server.facts)}


async def _server_ms(ours: Callable[[int], Awaitable[ExplainedSearch | None]],
                     raw: Callable[[int], Awaitable[ExplainedSearch | None]], count: int, ours_s: dict[str, Any],
                     raw_s: dict[str, Any], log: Log) -> None:
    """``server_ms`` of each side whose server explains its searches: the median of the server's
    own execution time (ms) of the side's search over the first (up to) 50 queries, sides taking
    turns: what a search costs the server alone."""
    ours_ms: list[float] = []
    raw_ms: list[float] = []
    for i in range(min(count, 50)):
        for call, times in ((ours, ours_ms), (raw, raw_ms)):
            found = await call(i)
            if found is not None:
                times.append(found.server_ms)
        if i == 0:
            if not ours_ms and not raw_ms:
                return  # neither side has a server to ask
            log("  server-side execution time (the server's own, explained)")
    for side, times in ((ours_s, ours_ms), (raw_s, raw_ms)):
        if times:
            side["server_ms"] = statistics.median(times)


async def _ids_async(hits: Awaitable[Sequence[Any]]) -> list[int]:
    return _ids(await hits)


async def _raw_ids_async(rows: Awaitable[Sequence[Sequence[Any]]]) -> list[int]:
    return _raw_ids(await rows)


def meta(opts: Options) -> dict[str, Any]:
    import sqlite_vec

    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
        "versions": {"vectorstore": vectorstore.__version__, "numpy": np.__version__,
                     "sqlite_vec": str(getattr(sqlite_vec, "__version__", ""))},
        "params": {"k": opts.k, "queries": opts.queries, "rounds": opts.rounds, "clients": list(opts.clients),
                   "selectivities": list(opts.selectivities), "sweep": list(opts.sweep)},
    }


async def run_case(backend: str, data: Dataset, opts: Options, log: Log) -> dict[str, Any]:
    """One case on the backend called ``backend``, any that implements
    :class:`~vectorstore.spi.Benchmarkable`: vectorstore and the backend's raw baseline, both
    measured on ``data``."""
    workdir = Path(tempfile.mkdtemp(prefix="vectorstore-bench-", dir=opts.workdir))
    try:
        async with bench_store(backend, opts, workdir) as (store, target):
            case = await _case(store, target, workdir, data, opts, log)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"dataset": data.name.split("-")[0], "n": data.n, "dim": data.dim, "backend": backend, **case}
