"""The ``vectorstore`` command: demo, doctor, plugins, learn, export, migrate, bench, serve."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vectorstore import registry
from vectorstore.errors import VectorStoreError


def _doctor(url: str | None, console: Console) -> int:
    import vectorstore as vs
    from vectorstore.config import redact, resolve

    config = resolve(url)
    console.print(f"[bold]vectorstore doctor[/bold] {escape(redact(config.url))}")
    try:
        spec = registry.backend_for_scheme(config.scheme)
        console.print(f"backend: {spec.name} ({spec.description}), plugin version {spec.version}")
        store = vs.connect(url)
    except VectorStoreError as exc:
        console.print(f"[red]✗ cannot open the store[/red]: {exc}")
        return 1
    try:
        checks = store.doctor()
        health = store.health()
    finally:
        store.close()
    problems = 0
    for check in checks:
        mark = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[yellow]![/yellow]"}[check.ok]
        console.print(f"{mark} {check.name}: {check.detail}")
        if check.fix and check.ok is not True:
            console.print(f"    fix: {check.fix}")
        problems += check.ok is False
    console.print(f"health: {'ok' if health.ok else 'NOT OK'}, round trip {health.latency_ms:.1f} ms")
    return 1 if problems or not health.ok else 0


def _plugins(console: Console) -> int:
    table = Table(title="vectorstore plugins")
    for column in ("plugin", "distribution", "version", "backends"):
        table.add_column(column)
    for info in registry.plugins():
        table.add_row(info.name, info.distribution, info.version, ", ".join(info.backends))
    console.print(table)
    schemes: dict[str, list[str]] = {}
    for spec in registry.backends().values():
        for scheme in spec.schemes:
            schemes.setdefault(scheme, []).append(spec.name)
    for scheme, names in sorted(schemes.items()):
        console.print(f"{scheme}:// → {', '.join(names)}" + ("  [red](conflict)[/red]" if len(names) > 1 else ""))
    from vectorstore.embedding import embedders

    for name, embedder in sorted(embedders().items()):
        dims = "/".join(map(str, embedder.dims)) if embedder.dims else "any"
        console.print(f"embedder {name} ({dims}-d): {embedder.description}")
    return 0


def _add_migrate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from vectorstore.migrate.cli import add_parser

    add_parser(sub)


def _migrate(args: argparse.Namespace, console: Console) -> int:
    """``vectorstore migrate`` / ``migrate rollback`` / ``migrate status`` (see vectorstore.migrate.cli)."""
    from vectorstore.migrate.cli import run as migrate_main

    return migrate_main(args, console)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vectorstore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="load a sample media catalogue and search it")
    demo.add_argument("--url", help="store URL (default: VECTORSTORE_URL, DB_* variables, then "
                                    "sqlite:///./data/vectorstore.db)")
    demo.add_argument("--n", type=int, default=2000, help="number of sample records (default 2000)")
    demo.add_argument("--dim", type=int, default=384, help="vector dimension (default 384)")
    doctor = sub.add_parser("doctor", help="check a store: versions, settings, problems with fixes")
    doctor.add_argument("url", nargs="?", help="store URL (default as for demo)")
    sub.add_parser("plugins", help="list installed backend plugins with versions")
    learn = sub.add_parser("learn", help="run the agent memory's nightly learner once (exit 0 ok, 1 failed, "
                                         "2 bad configuration)")
    learn.add_argument("--url", help="store URL (default as for demo)")
    learn.add_argument("--dry-run", action="store_true", help="compute the report, then roll everything back")
    export = sub.add_parser("export", help="copy every collection of one store into another (e.g. PostgreSQL to "
                                           "a SQLite file) and verify the copy (exit 0 ok, 1 mismatch, 2 error)")
    export.add_argument("source", help="URL of the store to copy")
    export.add_argument("destination", help="URL of the store to copy into (e.g. sqlite:///backup.db)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace collections of the same names in the destination (default: refuse)")
    export.add_argument("--batch-size", type=int, default=1000, help="records per batch (default 1000)")
    ops = sub.add_parser("serve", help="run the operations endpoint for a store: /health, /ready, /metrics "
                                       "(needs the ops extra)")
    ops.add_argument("--url", help="store URL (default as for demo)")
    ops.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ops.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    ops.add_argument("--plain-logs", action="store_true", help="leave logging as it is (default: JSON lines on "
                                                               "stderr)")
    _add_migrate(sub)
    from vectorstore.bench.cli import add_parser as add_bench

    add_bench(sub)
    args = parser.parse_args(argv)
    if args.command == "learn":  # plain stdout: one summary line for cron
        from vectorstore.memory.learner import main as learn_main

        return learn_main(args.url, dry_run=args.dry_run)
    console = Console()
    if not console.is_terminal:  # piped or logged: do not wrap tables at 80 columns
        console = Console(width=130)
    try:
        if args.command == "demo":
            from vectorstore import demo as demo_job

            return demo_job.run(args.url, n=args.n, dim=args.dim, console=console)
        if args.command == "doctor":
            return _doctor(args.url, console)
        if args.command == "serve":
            try:
                from vectorstore.ops import serve
            except ImportError as exc:
                console.print(f"[red]error[/red]: vectorstore serve needs the ops extra ({exc.name} is missing): "
                              "pip install 'vectorstore[ops]'")
                return 2
            return serve(args.url, args.host, args.port, log_json=not args.plain_logs)
        if args.command == "migrate":
            return _migrate(args, console)
        if args.command == "bench":
            from vectorstore.bench.cli import run as bench_main

            return bench_main(args, console)
        if args.command == "export":
            from vectorstore.transfer import run_cli as export_main

            return export_main(args.source, args.destination, overwrite=args.overwrite,
                               batch_size=args.batch_size, console=console)
        return _plugins(console)
    except VectorStoreError as exc:
        console.print(f"[red]error[/red]: {escape(str(exc))}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
