"""``vectorstore migrate``: the command line of the migration tool.

    vectorstore migrate SOURCE TARGET_URL [--dry-run] [--batch-size 1000] [--resume]
                        [--on-duplicate skip|fail] [--dim N] [--json]
    vectorstore migrate rollback TARGET_URL --run ID
    vectorstore migrate status TARGET_URL

Exit status: 0 done, 1 the run failed (and was rolled back) or a rollback failed, 2 bad arguments
or configuration, 3 interrupted (continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vectorstore.errors import VectorStoreError

from .engine import Interrupted, MigrationError, dry_run, migrate, rollback_url, status_url
from .progress import PlainProgress, Progress, RichProgress
from .sources import SourceError

USAGE = ("vectorstore migrate SOURCE TARGET_URL [--dry-run] [--batch-size N] [--resume] [--on-duplicate skip|fail]\n"
         "       vectorstore migrate rollback TARGET_URL --run ID\n"
         "       vectorstore migrate status TARGET_URL")


def add_parser(sub: Any) -> None:
    """Register ``migrate`` on the main parser's subparsers."""
    p = sub.add_parser("migrate", usage=USAGE, help="migrate an AgentDB file or a vectorstore SQLite store into a "
                                                    "store (also: migrate rollback, migrate status)",
                       description="Copy an AgentDB file (either schema variant) or a vectorstore SQLite store into "
                                   "TARGET_URL, losslessly, validated by checksums; resumable and reversible.")
    p.add_argument("words", nargs="+", metavar="SOURCE TARGET_URL | rollback TARGET_URL | status TARGET_URL")
    p.add_argument("--dry-run", action="store_true", help="report what would happen and every problem; write nothing")
    p.add_argument("--batch-size", type=int, default=1000, help="rows per batch and transaction (default 1000)")
    p.add_argument("--resume", action="store_true", help="continue this source's interrupted run")
    p.add_argument("--on-duplicate", choices=("skip", "fail"), default="skip",
                   help="an id the target already has: skip it with a warning (default) or stop and roll back")
    p.add_argument("--dim", type=int, default=None,
                   help="embedding dimension (default: detected from the file, else AGENTDB_VECTOR_DIM, else 384)")
    p.add_argument("--run", dest="run_id", help="the run to roll back (migrate rollback)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _time(value: Any) -> str:
    if not value:
        return "-"
    return dt.datetime.fromtimestamp(int(value), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_dry_run(report: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]dry run[/bold]: {report['source']} — {report['kind']} file, schema variant "
                  f"[bold]{report['variant']}[/bold], {report['size_bytes']} bytes, sha256 {report['sha256']}")
    console.print(f"read: {report['read']}; embedding dimension {report['dim']}")
    table = Table(title="source tables")
    for col in ("table", "rows", "goes to", "as", "note"):
        table.add_column(col)
    for t in report["tables"]:
        note = t["note"] + (f" columns without a field (kept in agentdb_overflow): {t['columns_without_field']}"
                            if t.get("columns_without_field") else "")
        table.add_row(t["table"], str(t["rows"]), t["collection"] or "-", t["role"], note)
    console.print(table)
    plan = Table(title="target plan")
    for col in ("collection", "from", "dim", "ids", "fields"):
        plan.add_column(col)
    for c in report["plan"]["collections"]:
        plan.add_row(c["name"], str(c.get("source", "")), str(c["dim"]), c["id_type"],
                     ", ".join(f"{n}:{k}" for n, k in c["fields"]))
    console.print(plan)
    console.print(f"indexes: {report['plan']['indexes']}")
    for s in report["plan"]["sequences"]:
        console.print(f"sequence of {s['collection']} moves past max(id)={s['max_id']}, "
                      f"sqlite_sequence={s['sqlite_sequence']}")
    console.print(f"estimated time: {report['plan']['estimated_seconds']} s for {report['rows']} rows")
    problems = report.get("problems", [])
    console.print(f"[bold]{len(problems)} kind(s) of value that cannot be stored as-is[/bold] "
                  "(kept exactly in agentdb_overflow, best effort in the field):")
    for p in problems:
        console.print(f"  {p['table']}.{p['column']}: {p['count']} x {p['reason']} (ids {p['examples']})")
    for d in report.get("dangling", []):
        console.print(f"  dangling: {d['count']} {d['table']}.{d['column']} → missing {d['references']} rows "
                      f"(examples [rowid, value]: {d['examples']})")
    for n in report.get("type_notes", []):
        console.print(f"  note: {n['table']}.{n['column']} ({n['declared']}): {n['count']} {n['reason']}")
    for v in report.get("views", []):
        console.print(f"  view {v['name']}: {v['sql']}")
    target = report.get("target", {})
    state = "exists" if target.get("exists") else "does not exist yet (the run creates it)"
    console.print(f"target {target.get('url')}: " + state
                  + (f"; duplicates (would be skipped): {target['duplicates']}" if target.get("duplicates") else "")
                  + (f"; {target['note']}" if target.get("note") else "")
                  + (f"; unfinished runs: {target['unfinished_runs']}" if target.get("unfinished_runs") else ""))
    console.print("nothing was written.")


def _print_run(run: dict[str, Any], console: Console) -> None:
    report = run.get("report") or {}
    table = Table(title=f"run {run['id']}: {run['status']}")
    for col in ("source table", "collection", "source rows", "inserted", "skipped", "overflow", "checksum"):
        table.add_column(col)
    checks = report.get("checksums", {})
    for name, c in (report.get("tables") or {}).items():
        check = checks.get(name, {})
        ok = check.get("source_checksum") == check.get("target_checksum") and check
        table.add_row(name, str(c.get("collection") or "-"), str(c["source_rows"]), str(c["inserted"]),
                      str(c["skipped"]), str(c["overflow"]),
                      (check.get("target_checksum", "")[:12] + (" ✓" if ok else " ✗")) if check else "-")
    console.print(table)
    console.print(f"source {run['source']} (sha256 {run['sha256']}) left untouched; "
                  f"{report.get('seconds')} s, {report.get('rows_per_second')} rows/s")
    for v in report.get("views", []):
        console.print(f"view {v['name']} (not data; SQL kept in agentdb_schema): {v['sql']}")


def _print_status(runs: list[dict[str, Any]], console: Console) -> None:
    if not runs:
        console.print("no migration runs in this store")
        return
    console.print(f"[bold]{len(runs)} migration run(s)[/bold]")
    for r in runs:
        tables = (r.get("report") or {}).get("tables") or {}
        inserted = sum(int(t.get("inserted", 0)) for t in tables.values())
        skipped = sum(int(t.get("skipped", 0)) for t in tables.values())
        console.print(f"{r['id']}  [bold]{r.get('status')}[/bold]  {r.get('source_kind')}/{r.get('variant')}  "
                      f"rows inserted {inserted if tables else '-'}, skipped {skipped if tables else '-'}  "
                      f"started {_time(r.get('started_at'))}  finished {_time(r.get('finished_at'))}",
                      markup=True, highlight=False, soft_wrap=True)
        console.print(f"    source {r.get('source')}  sha256 {r.get('sha256')}", markup=False, highlight=False,
                      soft_wrap=True)
        if r.get("error"):
            console.print(f"    error: {r['error']}", markup=False, highlight=False, soft_wrap=True)


def run(args: argparse.Namespace, console: Console) -> int:
    words: list[str] = list(args.words)
    out = Console(width=160) if args.json else console
    try:
        if words[0] == "status":
            if len(words) != 2:
                console.print(f"usage: {USAGE}")
                return 2
            runs = asyncio.run(status_url(words[1]))
            if args.json:
                print(json.dumps(runs, indent=2, default=str))
            else:
                _print_status(runs, out)
            return 0
        if words[0] == "rollback":
            if len(words) != 2 or not args.run_id:
                console.print(f"usage: {USAGE}")
                return 2
            progress = PlainProgress(sys.stderr if args.json else sys.stdout)
            result = asyncio.run(rollback_url(words[1], args.run_id, progress))
            if args.json:
                print(json.dumps(result, indent=2, default=str))
            return 0
        if len(words) != 2:
            console.print(f"usage: {USAGE}")
            return 2
        source, target = words
        if args.dry_run:
            report = asyncio.run(dry_run(source, target, batch_size=args.batch_size, dim=args.dim))
            if args.json:
                print(json.dumps(report, indent=2, default=str))
            else:
                _print_dry_run(report, out)
            return 0
        # With --json, stdout is the report: progress goes to stderr.
        bar: Progress = (PlainProgress(sys.stderr) if args.json else
                         RichProgress(console) if console.is_terminal else PlainProgress())
        try:
            result = asyncio.run(migrate(source, target, batch_size=args.batch_size, resume=args.resume,
                                         on_duplicate=args.on_duplicate, dim=args.dim, progress=bar))
        finally:
            bar.close()
        if args.json:
            print(json.dumps(result, indent=2, default=str))
        else:
            _print_run(result, out)
        return 0
    except Interrupted as exc:
        console.print(f"[yellow]interrupted[/yellow]: {exc}")
        return 3
    except MigrationError as exc:
        console.print(f"[red]failed[/red]: {exc}")
        return 1
    except (SourceError, FileNotFoundError) as exc:
        console.print(f"[red]error[/red]: {escape(str(exc))}")
        return 2
    except VectorStoreError as exc:
        console.print(f"[red]error[/red]: {escape(str(exc))}")
        return 2
