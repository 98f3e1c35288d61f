"""``vectorstore migrate``: the command line of the migration tool.

    vectorstore migrate SOURCE TARGET_URL [--dry-run] [--batch-size 1000] [--resume]
                        [--on-duplicate skip|fail] [--dim N] [--json]
    vectorstore migrate rollback TARGET_URL --run ID [--json]
    vectorstore migrate status TARGET_URL [--json]

Exit status: see :data:`EXIT_STATUS` (printed by ``vectorstore migrate --help``; docs/migration.md
says the same).
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

from vectorstore.config import redact
from vectorstore.errors import VectorStoreError

from .engine import (
    Interrupted,
    MigrationError,
    check_batch_size,
    check_dim,
    check_on_duplicate,
    check_run_id,
    check_target_url,
    dry_run,
    migrate,
    rollback_url,
    status_and_collections_url,
)
from .progress import PlainProgress, Progress, RichProgress
from .sources import BadArgument

USAGE = ("vectorstore migrate SOURCE TARGET_URL [--dry-run] [--batch-size N] [--resume] [--on-duplicate skip|fail] "
         "[--dim N] [--json]\n"
         "       vectorstore migrate rollback TARGET_URL --run ID [--json]\n"
         "       vectorstore migrate status TARGET_URL [--json]")

#: The exit statuses, exactly as run() returns them (also in docs/migration.md).
EXIT_STATUS = """exit status:
  0  done: the run was validated; the dry run's report was printed (its target part says if the
     target could not be reached); the rollback finished; the status was listed
  1  a run failed and was rolled back (a checksum mismatch, --on-duplicate fail meeting an
     existing id, any other error while copying or validating), or was refused with nothing
     written: an unfinished run of this source exists (continue it with --resume, or roll it
     back), or the source changed since its interrupted run
  2  bad arguments or configuration, with nothing written: a wrong number of words; --batch-size
     outside 1-100000, --dim outside 1-16000, --on-duplicate other than skip/fail, a --run that
     is not a run id or names no run of the target; an option the form does not take (--run
     without rollback; --dry-run, --batch-size, --resume, --on-duplicate or --dim with rollback or
     status); --dim with a vectorstore store as the source; a SOURCE that is missing or is
     neither an AgentDB file nor a vectorstore store; a TARGET_URL that is malformed, names an
     uninstalled backend, is the source itself, cannot be opened, or (status, rollback) holds no
     store; a target collection that cannot take the data
  3  interrupted part-way (a lost connection, Ctrl-C while copying): continue with --resume"""

#: Options each form takes (besides --json, which all take), by their argparse destinations.
_FORM_OPTIONS = {
    "migrate": {"dry_run", "batch_size", "resume", "on_duplicate", "dim"},
    "rollback": {"run_id"},
    "status": set(),
}
_FLAGS = {"dry_run": "--dry-run", "batch_size": "--batch-size", "resume": "--resume",
          "on_duplicate": "--on-duplicate", "dim": "--dim", "run_id": "--run"}


def add_parser(sub: Any) -> None:
    """Register ``migrate`` on the main parser's subparsers."""
    p = sub.add_parser("migrate", usage=USAGE, help="migrate an AgentDB file or a vectorstore SQLite store into a "
                                                    "store (also: migrate rollback, migrate status)",
                       description="Copy an AgentDB file (either schema variant) or a vectorstore SQLite store into "
                                   "TARGET_URL, losslessly, validated by checksums; resumable and reversible.",
                       epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("words", nargs="+", metavar="SOURCE TARGET_URL | rollback TARGET_URL | status TARGET_URL")
    # Defaults of None (False for flags): an option given to a form that does not take it is refused.
    p.add_argument("--dry-run", action="store_true", help="report what would happen and every problem; write nothing")
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per batch and transaction, 1-100000 (default 1000)")
    p.add_argument("--resume", action="store_true", help="continue this source's interrupted run")
    p.add_argument("--on-duplicate", choices=("skip", "fail"), default=None,
                   help="an id the target already has: skip it with a warning (default) or stop and roll back")
    p.add_argument("--dim", type=int, default=None,
                   help="embedding dimension of an AgentDB file, 1-16000 (default: detected from the file, else "
                        "AGENTDB_VECTOR_DIM, else 384)")
    p.add_argument("--run", dest="run_id", help="the run to roll back (migrate rollback)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _form(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The form (migrate, rollback, status) and its words; BadArgument for anything it cannot take."""
    words: list[str] = list(args.words)
    form = words[0] if words[0] in ("rollback", "status") else "migrate"
    expected = "SOURCE TARGET_URL" if form == "migrate" else "TARGET_URL"
    operands = words if form == "migrate" else words[1:]
    if len(operands) != len(expected.split()):
        raise BadArgument(f"`vectorstore migrate{'' if form == 'migrate' else ' ' + form}` takes {expected}, got "
                          f"{len(operands)} word(s): {' '.join(map(redact, operands)) or '(none)'}. Usage: {USAGE}")
    # (Identity, not equality: --batch-size 0 is given, and 0 == False.)
    given = [dest for dest in _FLAGS if getattr(args, dest) is not None and getattr(args, dest) is not False]
    refused = [_FLAGS[dest] for dest in given if dest not in _FORM_OPTIONS[form]]
    if refused:
        takes = ", ".join(_FLAGS[d] for d in _FLAGS if d in _FORM_OPTIONS[form]) or "only --json"
        raise BadArgument(f"{', '.join(refused)}: not an option of `vectorstore migrate"
                          f"{'' if form == 'migrate' else ' ' + form}` (it takes {takes}); leave "
                          f"{'it' if len(refused) == 1 else 'them'} out. Usage: {USAGE}")
    if form == "migrate":
        check_batch_size(1000 if args.batch_size is None else args.batch_size)
        check_dim(args.dim)
        check_on_duplicate(args.on_duplicate or "skip")
        check_target_url(operands[1], operands[0])
    else:
        if form == "rollback":
            if args.run_id is None:
                raise BadArgument("`vectorstore migrate rollback TARGET_URL` needs --run ID, the run to undo; "
                                  "`vectorstore migrate status TARGET_URL` lists the runs")
            check_run_id(args.run_id)
        check_target_url(operands[0])
    return form, operands


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
        plan.add_row(c["name"], str(c.get("source", "")), "no vectors" if c["dim"] is None else str(c["dim"]),
                     c["id_type"], ", ".join(f"{n}:{k}" for n, k in c["fields"]))
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


def _print_collections(found: list[dict[str, Any]], console: Console) -> None:
    if not found:
        return
    table = Table(title="collections in the target")
    for col in ("collection", "vectors", "ids", "records"):
        table.add_column(col)
    for c in found:
        table.add_row(c["name"], c["vectors"], c["id_type"], str(c["records"]))
    console.print(table)


def run(args: argparse.Namespace, console: Console) -> int:
    """Run one ``vectorstore migrate`` form; returns the exit status (see :data:`EXIT_STATUS`)."""
    out = Console(width=160) if args.json else console
    try:
        form, words = _form(args)
        if form == "status":
            runs, found = asyncio.run(status_and_collections_url(words[0]))
            if args.json:
                print(json.dumps(runs, indent=2, default=str))
            else:
                _print_status(runs, out)
                _print_collections(found, out)
            return 0
        if form == "rollback":
            progress = PlainProgress(sys.stderr if args.json else sys.stdout)
            result = asyncio.run(rollback_url(words[0], args.run_id, progress))
            if args.json:
                print(json.dumps(result, indent=2, default=str))
            return 0
        source, target = words
        batch_size = 1000 if args.batch_size is None else args.batch_size
        if args.dry_run:
            report = asyncio.run(dry_run(source, target, batch_size=batch_size, dim=args.dim))
            if args.json:
                print(json.dumps(report, indent=2, default=str))
            else:
                _print_dry_run(report, out)
            return 0
        # With --json, stdout is the report: progress goes to stderr.
        bar: Progress = (PlainProgress(sys.stderr) if args.json else
                         RichProgress(console) if console.is_terminal else PlainProgress())
        try:
            result = asyncio.run(migrate(source, target, batch_size=batch_size, resume=args.resume,
                                         on_duplicate=args.on_duplicate or "skip", dim=args.dim, progress=bar))
        finally:
            bar.close()
        if args.json:
            print(json.dumps(result, indent=2, default=str))
        else:
            _print_run(result, out)
        return 0
    except Interrupted as exc:
        console.print(f"[yellow]interrupted[/yellow]: {escape(str(exc))}")
        return 3
    except MigrationError as exc:
        console.print(f"[red]failed[/red]: {escape(str(exc))}")
        return 1
    except (VectorStoreError, FileNotFoundError) as exc:  # BadArgument, ConfigError, unreachable target, ...
        console.print(f"[red]error[/red]: {escape(str(exc))}")
        return 2
