"""One benchmark case: a data set loaded into vectorstore and into the raw baseline,
both measured with the same queries, parameters and warm caches.

Search latencies alternate between the two sides query by query, so drift of the
machine (other load, CPU frequency) hits both equally; every latency figure pools
the samples of all rounds.
"""

from __future__ import annotations

import asyncio
import functools
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

import vectorstore
from vectorstore.bench import ceiling, measure
from vectorstore.bench.datasets import Dataset
from vectorstore.bench.raw import RawPostgres, RawSqlite

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
    postgres_url: str | None = None
    workdir: Path | None = None
    #: Seconds pgbench runs per client count for the C-client ceiling (PostgreSQL); 0: not measured.
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


async def _rates_alternating(ours: Callable[[int], Awaitable[Any]], raw: Callable[[int], Awaitable[Any]],
                             clients: int, total: int, warmup: int, rounds: int) -> tuple[list[float], list[float]]:
    """Each side's closed-loop rate (queries/s) in every round, the sides taking turns (who goes
    first alternating), so that a slow stretch of the machine falls on both; each side warms up
    before its first round."""
    ours_q: list[float] = []
    raw_q: list[float] = []
    for r in range(rounds):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            if side == 0:
                ours_q.append(await measure.closed_loop_async(ours, clients, total, warmup if r == 0 else 0))
            else:
                raw_q.append(await measure.closed_loop_async(raw, clients, total, warmup if r == 0 else 0))
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
    col = await store.create_collection(name, dim=data.dim, metric="cosine", id_type="int",
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


# -- PostgreSQL ------------------------------------------------------------------


async def postgres_case(data: Dataset, opts: Options, log: Log) -> dict[str, Any]:
    from vectorstore_postgres.backend import PostgresBackend
    from vectorstore_postgres.testing import embedded_server_url, with_query

    base = opts.postgres_url or os.environ.get("VECTORSTORE_BENCH_POSTGRES_URL") or embedded_server_url()
    schema = f"vs_bench_{uuid.uuid4().hex[:10]}"
    k, nq = opts.k, len(data.queries)
    truth = data.exact_neighbours(k)
    result = {"vectorstore": _side(), "raw": _side()}
    ours_s, raw_s = result["vectorstore"], result["raw"]
    store = await vectorstore.open_store(with_query(base, schema=schema, pool_max=str(max(opts.clients) + 2)))
    backend = store.backend
    assert isinstance(backend, PostgresBackend)
    raw = RawPostgres(backend.settings.conninfo, schema, data.dim)
    await raw.open()
    try:
        # Bulk loads vary by tens of percent from one to the next (checkpoints, the page cache):
        # extra rounds into scratch tables, sides alternating, and the median of all.
        for r in range(opts.rounds - 1):
            for turn in ((0, 1) if r % 2 else (1, 0)):
                if turn == 0:
                    await _load_ours(store, data, ours_s, log, name=f"load_{r}", keep=False)
                else:
                    log(f"  loading {data.n:,} x {data.dim} raw (binary COPY)")
                    raw_s.setdefault("load_samples_s", []).append(await raw.load(data, f"raw_load_{r}"))
                    await raw.drop(f"raw_load_{r}")
        col = await _load_ours(store, data, ours_s, log)
        log(f"  loading {data.n:,} x {data.dim} raw (binary COPY, CREATE INDEX)")
        raw_s.setdefault("load_samples_s", []).append(await raw.load(data))
        spec = col.spec
        memory = min(backend.settings.index_build_memory, data.n * (4 * data.dim + 2 * spec.index.m * 12 + 256))
        raw_s["index_build_s"] = await raw.build_index(spec.index.m, spec.index.ef_construction, memory)
        _load_rate(data, ours_s)
        _load_rate(data, raw_s)

        buffers = await _pg_memory(backend.settings.conninfo, schema)
        if buffers["tables_mb"] > buffers["shared_buffers_mb"]:
            log(f"  note: the two sides' tables and indexes ({buffers['tables_mb']:,.0f} MB) exceed shared_buffers "
                f"({buffers['shared_buffers_mb']:,.0f} MB): searches read pages from the OS cache and the sides evict "
                "each other's; latencies then measure the server's memory more than the client")

        queries = data.queries
        log("  single-query latency (alternating sides)")
        ours_t, ours_r, raw_t, raw_r = await _alternate(
            lambda i: col.search(queries[i], k=k), lambda i: raw.search(queries[i], k), nq, opts.rounds)
        ours_s["latency_ms"] = measure.latency_summary(ours_t)
        raw_s["latency_ms"] = measure.latency_summary(raw_t)
        ours_s["recall_at_10"] = measure.recall_at([_ids(h) for h in ours_r], truth, k)
        raw_s["recall_at_10"] = measure.recall_at([_raw_ids(r) for r in raw_r], truth, k)

        log("  server-side execution time (EXPLAIN ANALYZE)")
        ours_s["server_ms"], raw_s["server_ms"] = await _server_ms(
            lambda i: backend.explain_search(spec, queries[i], k), lambda i: raw.explain(queries[i], k), nq)

        log("  latency vs recall sweep over ef_search")
        for ef in opts.sweep:
            await raw.set_ef(ef)
            ours_t, ours_r, raw_t, raw_r = await _alternate(
                functools.partial(_search_ef, col, queries, k, ef), lambda i: raw.search(queries[i], k), nq, 1)
            ours_s["sweep"].append({"knob": f"ef_search={ef}", "p50_ms": measure.latency_summary(ours_t)["p50"],
                                    "recall_at_10": measure.recall_at([_ids(h) for h in ours_r], truth, k)})
            raw_s["sweep"].append({"knob": f"ef_search={ef}", "p50_ms": measure.latency_summary(raw_t)["p50"],
                                   "recall_at_10": measure.recall_at([_raw_ids(r) for r in raw_r], truth, k)})
        await raw.set_ef(40)

        log("  search_many throughput")
        ours_s["search_many_qps"], raw_s["search_many_qps"] = await _search_many(
            col, queries, k, opts.rounds, lambda: raw.search_pipelined(queries, k))

        for clients in opts.clients:
            log(f"  concurrent throughput, {clients} client(s), {opts.rounds} round(s) a side")
            total = max(4 * nq, 100 * clients)
            warmup = 10 * clients  # vectorstore's pool grows to `clients` connections; raw's starts full
            pool = await raw.pool(clients)
            try:
                async def raw_call(i: int, pool: Any = pool) -> Any:
                    async with pool.connection() as conn:
                        return await raw.search(queries[i % nq], k, conn)

                ours_q, raw_q = await _rates_alternating(
                    lambda i: col.search(queries[i % nq], k=k), raw_call, clients, total, warmup, opts.rounds)
            finally:
                await pool.close()
            for side, rates in ((ours_s, ours_q), (raw_s, raw_q)):
                side["concurrent_qps"][str(clients)] = statistics.median(rates)
                side.setdefault("concurrent_qps_samples", {})[str(clients)] = rates
        if opts.ceiling_seconds > 0:
            statements = [await backend.search_sql(spec, queries[i], k) for i in range(min(nq, ceiling.MAX_SCRIPTS))]
            found = await ceiling.ceiling_qps(statements, backend.settings.conninfo, backend.search_session_settings,
                                              opts.clients, opts.ceiling_seconds, log)
            if found is not None:
                result[ceiling.SIDE] = {"concurrent_qps": found}

        await _filtered(
            data, opts,
            lambda i, p: _ids_async(col.search(queries[i], k=k, where={"bucket": {"$lt": p}})),
            lambda i, p: _raw_ids_async(raw.search_filtered(queries[i], k, p)), result, log)
        await store.drop_collection("bench")
    finally:
        await raw.close()
        await _drop_schema(backend, schema)
        await store.aclose()
    return {"backend": "postgres", "sides": result, "ratios": _ratios(ours_s, raw_s),
            "server": {**await _pg_versions(backend.settings.conninfo), **buffers}}


async def _server_ms(ours: Callable[[int], Awaitable[dict[str, Any]]], raw: Callable[[int], Awaitable[dict[str, Any]]],
                     count: int) -> tuple[float, float]:
    """The median of the server's own "Execution Time" (ms) of each side's search statement over
    the first (up to) 50 queries, sides taking turns: what a search costs the server alone."""
    ours_ms: list[float] = []
    raw_ms: list[float] = []
    for i in range(min(count, 50)):
        ours_ms.append(float((await ours(i))["Execution Time"]))
        raw_ms.append(float((await raw(i))["Execution Time"]))
    return statistics.median(ours_ms), statistics.median(raw_ms)


async def _ids_async(hits: Awaitable[Sequence[Any]]) -> list[int]:
    return _ids(await hits)


async def _raw_ids_async(rows: Awaitable[Sequence[Sequence[Any]]]) -> list[int]:
    return _raw_ids(await rows)


async def _drop_schema(backend: Any, schema: str) -> None:
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(backend.settings.conninfo, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


async def _pg_memory(conninfo: str, schema: str) -> dict[str, float]:
    """The server's ``shared_buffers`` and the size of every table and index of the case's
    schema (both sides'), in MB."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT (SELECT setting::bigint * pg_size_bytes(unit) FROM pg_settings WHERE name = 'shared_buffers'), "
            "(SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r')", [schema])
        row = await cur.fetchone()
    assert row is not None
    return {"shared_buffers_mb": float(row[0]) / 2**20, "tables_mb": float(row[1]) / 2**20}


async def _pg_versions(conninfo: str) -> dict[str, str]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cur = await conn.execute("SELECT current_setting('server_version'), "
                                 "(SELECT extversion FROM pg_extension WHERE extname = 'vector')")
        row = await cur.fetchone()
    return {"postgres": str(row[0]) if row else "", "pgvector": str(row[1]) if row else ""}


# -- SQLite ----------------------------------------------------------------------


async def sqlite_case(data: Dataset, opts: Options, log: Log) -> dict[str, Any]:
    from vectorstore_sqlite.backend import SqliteBackend

    k, nq = opts.k, len(data.queries)
    truth = data.exact_neighbours(k)
    result = {"vectorstore": _side(), "raw": _side()}
    ours_s, raw_s = result["vectorstore"], result["raw"]
    tmp = Path(tempfile.mkdtemp(prefix="vectorstore-bench-", dir=opts.workdir))
    store = await vectorstore.open_store(f"sqlite:///{tmp / 'vectorstore.db'}")
    raw = RawSqlite(tmp / "raw.db", data.dim)
    raw.open()
    try:
        col = await _load_ours(store, data, ours_s, log)
        ours_s["index_build_s"] = None  # nothing is built afterwards: the codes are written with the rows
        log(f"  loading {data.n:,} x {data.dim} raw (vec0 + row table)")
        raw_s["load_samples_s"] = [raw.load(data)]
        for side in (ours_s, raw_s):
            _load_rate(data, side)
        queries = data.queries

        async def raw_search(i: int) -> Any:
            return raw.search(queries[i], k)

        log("  single-query latency (alternating sides)")
        ours_t, ours_r, raw_t, raw_r = await _alternate(lambda i: col.search(queries[i], k=k), raw_search, nq,
                                                        opts.rounds)
        ours_s["latency_ms"] = measure.latency_summary(ours_t)
        raw_s["latency_ms"] = measure.latency_summary(raw_t)
        ours_s["recall_at_10"] = measure.recall_at([_ids(h) for h in ours_r], truth, k)
        raw_s["recall_at_10"] = measure.recall_at([_raw_ids(r) for r in raw_r], truth, k)
        raw_s["sweep"].append({"knob": "exact", "p50_ms": raw_s["latency_ms"]["p50"],
                               "recall_at_10": raw_s["recall_at_10"]})
        log("  latency vs recall sweep over ef_search")
        for ef in opts.sweep:
            times, found = await measure.time_async(functools.partial(_search_ef, col, queries, k, ef), nq)
            ours_s["sweep"].append({"knob": f"ef_search={ef}", "p50_ms": measure.latency_summary(times)["p50"],
                                    "recall_at_10": measure.recall_at([_ids(h) for h in found], truth, k)})

        async def raw_many() -> None:  # sqlite-vec has no batch query: a loop
            for q in queries:
                raw.search(q, k)

        log("  search_many throughput")
        ours_s["search_many_qps"], raw_s["search_many_qps"] = await _search_many(col, queries, k, opts.rounds,
                                                                                 raw_many)

        for clients in opts.clients:
            log(f"  concurrent throughput, {clients} client(s)")
            total = max(nq // 2, 8 * clients)  # brute force on the raw side: seconds per hundred queries
            ours_s["concurrent_qps"][str(clients)] = await measure.closed_loop_async(
                lambda i: col.search(queries[i % nq], k=k), clients, total)

            def make_client() -> Callable[[int], Any]:
                conn = raw.connect()
                return lambda i: raw.search(queries[i % nq], k, conn)

            raw_s["concurrent_qps"][str(clients)] = await asyncio.to_thread(
                measure.closed_loop_threads, make_client, clients, total)

        async def raw_filtered(i: int, p: int) -> list[int]:
            return _raw_ids(raw.search_filtered(queries[i], k, p))

        await _filtered(data, opts, lambda i, p: _ids_async(col.search(queries[i], k=k, where={"bucket": {"$lt": p}})),
                        raw_filtered, result, log)
        backend = store.backend
        assert isinstance(backend, SqliteBackend)
        backend_info = {"module": backend.driver.name}
    finally:
        raw.close()
        await store.aclose()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"backend": "sqlite", "sides": result, "ratios": _ratios(ours_s, raw_s), "server": backend_info}


CASES: dict[str, Callable[[Dataset, Options, Log], Awaitable[dict[str, Any]]]] = {
    "postgres": postgres_case, "sqlite": sqlite_case,
}


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
    case = await CASES[backend](data, opts, log)
    return {"dataset": data.name.split("-")[0], "n": data.n, "dim": data.dim, **case}
