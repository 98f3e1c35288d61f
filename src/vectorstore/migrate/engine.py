"""The migration: dry run, run (batches + ledger in one transaction each), validation by checksums,
resume, rollback, status.

Tracking lives in the target, written through the vectorstore API:

- ``vsmigrate_runs`` (text ids = run ids): source path, sha256, kind/variant, status
  (``running``, ``interrupted``, ``validated``, ``failed``, ``rolled_back``), times, options, the
  collections the run created, and the report (per-table counts and checksums, problems, views).
- ``vsmigrate_batches``: one record per committed batch — run, source table, collection, first
  and last source key, the ids inserted (as ``[start, end]`` runs), the ids skipped as duplicates,
  the number of overflow entries. It is written in the *same transaction* as the batch's records,
  so it is both the resume point (a batch is either fully there with its ledger record, or not at
  all) and the rollback ledger (exactly the ids the run inserted).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vectorstore import registry
from vectorstore.config import redact, resolve
from vectorstore.errors import BackendUnavailable, CollectionNotFound, NotSupported, VectorStoreError
from vectorstore.records import Record
from vectorstore.schema import MAX_DIM
from vectorstore.store import AsyncCollection, AsyncStore, open_store, store_exists_async

from . import agentdb, checksum
from .agentdb import OVERFLOW, Converted, TablePlan, expand, rows_in
from .progress import NullProgress, Progress
from .source import source_path
from .sources import BadArgument, Source, open_source

RUNS = "vsmigrate_runs"
BATCHES = "vsmigrate_batches"
RUN_FIELDS = {"source": "text", "source_kind": "text", "variant": "text", "sha256": "text", "status": "text",
              "started_at": "int", "finished_at": "int", "options": "json", "created": "json", "report": "json",
              "error": "text"}
BATCH_FIELDS = {"run": "text", "src_table": "text", "collection": "text", "first_key": "json",
                "last_key": "json", "ids": "json", "skipped": "json", "rows": "int", "overflow": "int",
                "created_at": "int"}

#: Rows per second assumed for the dry run's time estimate, end to end (copy + deferred HNSW build +
#: validation), from benchmarks/test_migrate_rate.py on embedded PostgreSQL, 2 cores: 100,000
#: episodes with 384-d embeddings in 147 s (copy 5,600/s, index build 108 s, validation 19 s).
ESTIMATED_RATE = {"with_vectors": 680.0, "without_vectors": 2500.0}


class MigrationError(VectorStoreError):
    """The migration stopped; the message says why and what to do."""


class Interrupted(MigrationError):
    """The run stopped part-way (lost connection, killed, injected failure); ``--resume`` continues it."""


# -- arguments -----------------------------------------------------------------------------

MAX_BATCH_SIZE = 100_000
ON_DUPLICATE = ("skip", "fail")
#: What :func:`new_run_id` makes: start time to the millisecond, and 6 random hex digits.
RUN_ID = re.compile(r"[0-9]{8}T[0-9]{9}-[0-9a-f]{6}")


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_batch_size(value: object) -> int:
    """``--batch-size``: rows per batch and transaction, 1 to 100000 (else BadArgument)."""
    number = _integer(value)
    if number is None or not 1 <= number <= MAX_BATCH_SIZE:
        raise BadArgument(f"--batch-size must be a whole number from 1 to {MAX_BATCH_SIZE:,} (rows per batch and "
                          f"transaction), got {value!r}; leave it out for the default 1000")
    return number


def check_dim(value: object) -> int | None:
    """``--dim``: the embedding dimension, 1 to 16000, or None (detected)."""
    if value is None:
        return None
    number = _integer(value)
    if number is None or not 1 <= number <= MAX_DIM:
        raise BadArgument(f"--dim must be a whole number from 1 to {MAX_DIM} (the embeddings' dimension), got "
                          f"{value!r}; leave it out to detect it from the file's embeddings")
    return number


def check_on_duplicate(value: object) -> str:
    if value not in ON_DUPLICATE:
        raise BadArgument(f"--on-duplicate must be 'skip' (keep the target's record) or 'fail' (stop and roll "
                          f"back), got {value!r}")
    return str(value)


def check_run_id(value: object) -> str:
    """``--run``: a run id as :func:`new_run_id` makes them (``vectorstore migrate status`` lists them)."""
    if not isinstance(value, str) or not RUN_ID.fullmatch(value):
        raise BadArgument(f"--run {value!r} is not a run id; run ids look like 20251009T120000123-a1b2c3: "
                          "`vectorstore migrate status TARGET` lists the runs of a store")
    return value


def check_target_url(url: object, source: str | None = None) -> str:
    """A target URL a backend takes (scheme installed, options valid), and not the source itself.
    Nothing is opened or created."""
    if not isinstance(url, str):
        raise BadArgument(f"TARGET_URL must be a store URL, got {url!r}")
    config = resolve(url)  # ConfigError: no scheme
    registry.backend_for_scheme(config.scheme).bind(config)  # UnknownBackend, ConfigError: bad options
    if source is not None and config.scheme == "sqlite":
        target = source_path(url)
        if target.exists() and target.resolve() == source_path(source).resolve():
            raise BadArgument(f"the target {redact(url)!r} is the source file itself; the source is never written: "
                              "migrate into another store")
    return url


def _now() -> int:
    return int(time.time())


def _json_safe(value: Any) -> Any:
    """Strings without NUL / lone surrogates (for report fields stored as jsonb)."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_json_safe(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").replace("\x00", "\ufffd")
    return value


# -- tracking ------------------------------------------------------------------------------


class Tracking:
    def __init__(self, store: AsyncStore, runs: AsyncCollection, batches: AsyncCollection) -> None:
        self.store = store
        self.runs = runs
        self.batches = batches

    @classmethod
    async def open(cls, store: AsyncStore, *, create: bool = True) -> Tracking | None:
        try:
            runs = await store.collection(RUNS)
            batches = await store.collection(BATCHES)
        except CollectionNotFound:
            if not create:
                return None
            # Without vectors. (Stores migrated before collections could be without vectors have them
            # with a placeholder dim=1: opened as they are above.)
            runs = await store.create_collection(RUNS, dim=None, fields=RUN_FIELDS, id_type="text", exist_ok=True)
            batches = await store.create_collection(BATCHES, dim=None, fields=BATCH_FIELDS, id_type="text",
                                                    exist_ok=True)
        return cls(store, runs, batches)

    async def all_runs(self) -> list[dict[str, Any]]:
        out = []
        async for r in self.runs.scan():
            out.append({"id": r.id, **r.fields})
        return sorted(out, key=lambda r: (r.get("started_at") or 0, str(r["id"])))

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        found = await self.runs.get([run_id])
        return {"id": found[0].id, **found[0].fields} if found else None

    async def save_run(self, run: Mapping[str, Any]) -> None:
        fields = {k: run.get(k) for k in RUN_FIELDS}
        fields = {k: (_json_safe(v) if k in ("report", "options", "error") else v) for k, v in fields.items()}
        await self.runs.upsert([Record(run["id"], None, fields)])

    async def ledger(self, run_id: str, table: str | None = None) -> list[Record]:
        where: dict[str, Any] = {"run": run_id}
        if table is not None:
            where["src_table"] = table
        return [r async for r in self.batches.scan(where=where)]


# -- the target ----------------------------------------------------------------------------


async def target_exists(url: str) -> bool:
    """Whether the target store exists already, found out without creating or changing anything."""
    try:
        return await store_exists_async(url)
    except NotSupported:
        return True  # the backend cannot tell: treat it as existing (opening it is its own business)


# -- dry run -------------------------------------------------------------------------------


async def dry_run(source: str, target_url: str, *, batch_size: int = 1000, dim: int | None = None) -> dict[str, Any]:
    """Everything the run would do and every problem it would hit; writes nothing anywhere.
    Bad arguments raise :class:`~vectorstore.migrate.sources.BadArgument` (or ConfigError /
    UnknownBackend for the target URL) before anything is read."""
    batch_size = check_batch_size(batch_size)
    dim = check_dim(dim)
    check_target_url(target_url, source)
    src = await open_source(source, dim)
    try:
        report = _describe(src)
        problems: dict[tuple[str, str, str], dict[str, Any]] = {}
        for plan in src.passes:
            after: Any = None
            while True:
                conv = await src.next_batch(plan, after, batch_size)
                if conv is None:
                    break
                after = conv.last_key
                for table, column, key, reason in conv.problems:
                    entry = problems.setdefault((table, column, reason), {
                        "table": table, "column": column, "reason": reason, "count": 0, "examples": []})
                    entry["count"] += 1
                    if len(entry["examples"]) < 5:
                        entry["examples"].append(key)
        report["problems"] = list(problems.values())
        report.update(src.report())
        report["target"] = await _probe_target(src, target_url)
        safe: dict[str, Any] = _json_safe(report)
        return safe
    finally:
        await src.aclose()


def _describe(src: Source) -> dict[str, Any]:
    tables = [{"table": p.table, "rows": p.rows, "role": p.role, "collection": p.collection,
               "note": p.note, "columns_without_field": p.extra_columns} for p in src.tables]
    with_vectors = sum(p.rows for p in src.tables if p.role == "embedding")
    total = sum(p.rows for p in src.tables if p.role != "embedding")
    estimate = (with_vectors / ESTIMATED_RATE["with_vectors"]
                + max(total - with_vectors, 0) / ESTIMATED_RATE["without_vectors"])
    sequences = [{"collection": p.collection, "max_id": p.max_key, "sqlite_sequence": p.sequence}
                 for p in src.tables if p.collection and (p.max_key or p.sequence)]
    return {"source": str(src.path), "kind": src.kind, "variant": src.variant, "sha256": src.sha256,
            "size_bytes": src.path.stat().st_size, "dim": src.dim,
            "read": ("database and -wal copied to a temporary directory (the -wal holds committed pages)"
                     if src.wal_copied else "opened read-only (mode=ro&immutable=1): no -wal/-shm created"),
            "tables": tables, "rows": sum(p.rows for p in src.tables),
            "plan": {"collections": src.collection_specs(), "sequences": sequences,
                     "indexes": "HNSW (cosine) on the vectors of episodes, skills and reasoning_patterns, built "
                                "after loading where the backend supports deferring it",
                     "estimated_seconds": round(estimate, 1)}}


async def _probe_target(src: Source, url: str) -> dict[str, Any]:
    info: dict[str, Any] = {"url": redact(url)}
    try:
        exists = await target_exists(url)
    except (BackendUnavailable, OSError) as exc:  # (a malformed URL raises: a bad argument)
        return info | {"error": f"cannot reach the target: {exc}"}
    info["exists"] = exists
    if not exists:
        return info  # the run creates it
    if url.split(":", 1)[0].lower() == "sqlite":
        info["note"] = "existing SQLite target not opened by the dry run (opening it could create -wal files)"
        return info
    store = await open_store(url)
    try:
        existing = {s.name: s for s in await store.list_collections()}
        duplicates: dict[str, int] = {}
        for plan in src.passes:
            if plan.collection in existing and plan.role != "embedding":
                col = await store.collection(plan.collection)
                n, after = 0, None
                while True:
                    conv = await src.next_batch(plan, after, 1000)
                    if conv is None:
                        break
                    after = conv.last_key
                    ids = [r.id for r in conv.records if r.id is not None]
                    n += len(await col.get(ids)) if ids else 0
                if n:
                    duplicates[plan.table] = n
        info["existing_collections"] = sorted(existing)
        info["duplicates"] = duplicates
        tracking = await Tracking.open(store, create=False)
        if tracking is not None:
            info["unfinished_runs"] = [r["id"] for r in await tracking.all_runs()
                                       if r.get("status") in ("running", "interrupted")
                                       and r.get("sha256") == src.sha256]
    finally:
        await store.aclose()
    return info


# -- run -----------------------------------------------------------------------------------


def new_run_id() -> str:
    """Sortable by start time (milliseconds), unique (random suffix)."""
    now = dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}-{secrets.token_hex(3)}"


async def migrate(source: str, target_url: str, *, batch_size: int = 1000, resume: bool = False,
                  on_duplicate: str = "skip", dim: int | None = None, progress: Progress | None = None,
                  fail_after_batches: int | None = None,
                  corrupt: Callable[[Converted], None] | None = None) -> dict[str, Any]:
    """Copy ``source`` into ``target_url``, validate, and return the run's record.

    Bad arguments (and a target collection that cannot take the data) raise
    :class:`~vectorstore.migrate.sources.BadArgument` before anything is written; a failed run
    raises :class:`MigrationError` after rolling back, an interrupted one :class:`Interrupted`.

    ``fail_after_batches`` (tests) stops the run as a lost connection would, after that many
    batches; ``corrupt`` (tests) may alter each batch before it is written.
    """
    on_duplicate = check_on_duplicate(on_duplicate)
    batch_size = check_batch_size(batch_size)
    dim = check_dim(dim)
    check_target_url(target_url, source)
    progress = progress or NullProgress()
    src = await open_source(source, dim)
    try:
        store = await open_store(target_url)
        try:
            return await _run(src, store, batch_size=batch_size, resume=resume, on_duplicate=on_duplicate,
                              progress=progress, fail_after_batches=fail_after_batches, corrupt=corrupt)
        finally:
            await store.aclose()
    finally:
        await src.aclose()


async def _run(src: Source, store: AsyncStore, *, batch_size: int, resume: bool, on_duplicate: str,
               progress: Progress, fail_after_batches: int | None,
               corrupt: Callable[[Converted], None] | None) -> dict[str, Any]:
    await src.check_target(store)  # before anything is written
    tracking = await Tracking.open(store)
    assert tracking is not None
    runs = await tracking.all_runs()
    unfinished = [r for r in runs if r.get("status") in ("running", "interrupted") and r.get("sha256") == src.sha256]
    changed = [r for r in runs if r.get("status") in ("running", "interrupted") and r.get("sha256") != src.sha256
               and r.get("source") == str(src.path.resolve())]
    if resume and changed and not unfinished:
        raise MigrationError(
            f"run {changed[-1]['id']} of {src.path} did not finish, but the file changed since (sha256 "
            f"{str(changed[-1].get('sha256'))[:12]}... then, {src.sha256[:12]}... now): it cannot be resumed. Roll it "
            f"back (vectorstore migrate rollback TARGET --run {changed[-1]['id']}) and migrate again")
    if unfinished and not resume:
        raise MigrationError(f"run {unfinished[-1]['id']} of this source did not finish; continue it with --resume, "
                             f"or undo it with: vectorstore migrate rollback TARGET --run {unfinished[-1]['id']}")
    if resume and unfinished:
        run = unfinished[-1]
        progress.log(f"resuming run {run['id']}")
    else:
        if resume:
            progress.log("nothing to resume for this source: starting a new run")
        run = {"id": new_run_id(), "source": str(src.path.resolve()), "source_kind": src.kind,
               "variant": src.variant, "sha256": src.sha256, "started_at": _now(), "finished_at": None,
               "options": {"batch_size": batch_size, "on_duplicate": on_duplicate, "dim": src.dim},
               "created": [], "report": {}, "error": None}
    run["status"] = "running"
    await tracking.save_run(run)
    run["created"] = list(run.get("created") or []) + [c for c in await src.prepare_target(store)
                                                       if c not in (run.get("created") or [])]
    await tracking.save_run(run)
    started = time.perf_counter()
    validated_at = started
    try:
        counts = await _copy(src, store, tracking, run, batch_size=batch_size, on_duplicate=on_duplicate,
                             progress=progress, fail_after_batches=fail_after_batches, corrupt=corrupt)
        for name, after in await src.sequences():
            col = await store.collection(name)
            await col.allocate_ids(0, after=after)
        progress.log("validating: row counts and content checksums per source table")
        validated_at = time.perf_counter()
        checks = await validate(src, store, tracking, run["id"])
    except (BackendUnavailable, Interrupted, OSError, KeyboardInterrupt) as exc:
        run["status"] = "interrupted"
        run["error"] = f"{type(exc).__name__}: {exc}"
        try:
            await tracking.save_run(run)
        except Exception:  # the connection may be gone: the status stays "running"
            pass
        raise Interrupted(f"run {run['id']} was interrupted ({exc}); continue it with --resume "
                          f"(or undo it with: vectorstore migrate rollback TARGET --run {run['id']})") from exc
    except Exception as exc:
        run["error"] = f"{type(exc).__name__}: {exc}"
        run["status"] = "failed"
        await tracking.save_run(run)
        progress.log(f"run {run['id']} failed: {exc}; rolling back what it wrote")
        await rollback(store, run["id"], progress=progress, final_status="failed")
        if isinstance(exc, MigrationError):
            raise
        raise MigrationError(f"run {run['id']} failed and was rolled back: {exc}") from exc
    elapsed = time.perf_counter() - started
    index = sum(c.get("index_seconds", 0.0) for c in counts.values())
    copy = max(validated_at - started - index, 1e-9)
    copied = sum(c["source_rows"] for c in counts.values() if c["role"] != "embedding")  # rows, not + vectors
    run["status"] = "validated"
    run["finished_at"] = _now()
    run["report"] = {"tables": counts, "checksums": checks, "seconds": round(elapsed, 3),
                     "timings": {"copy": round(copy, 3), "index_build": round(index, 3),
                                 "validation": round(time.perf_counter() - validated_at, 3)},
                     "rows_per_second": round(copied / copy, 1),
                     "rows_per_second_total": round(copied / elapsed, 1) if elapsed > 0 else None,
                     "plan": [p.to_dict() for p in src.tables], **src.report()}
    run["error"] = None
    await tracking.save_run(run)
    return run


async def _pass_state(tracking: Tracking, run_id: str, table: str) -> tuple[Any, int, list[Any]]:
    """``(last key, rows done, skipped ids)`` of a pass from the ledger."""
    last: Any = None
    rows = 0
    skipped: list[Any] = []
    for r in await tracking.ledger(run_id, table):
        key = r.fields["last_key"]
        if last is None or key > last:
            last = key
        rows += int(r.fields["rows"] or 0)
        skipped += list(r.fields["skipped"] or [])
    return last, rows, skipped


async def _copy(src: Source, store: AsyncStore, tracking: Tracking, run: dict[str, Any], *, batch_size: int,
                on_duplicate: str, progress: Progress, fail_after_batches: int | None,
                corrupt: Callable[[Converted], None] | None) -> dict[str, dict[str, Any]]:
    overflow_col: AsyncCollection | None = None
    if src.kind == "agentdb":
        overflow_col = await store.collection(OVERFLOW)
    counts: dict[str, dict[str, Any]] = {}
    written = 0
    for plan in src.passes:
        after, done, skipped_before = await _pass_state(tracking, run["id"], plan.table)
        total = await src.pass_total(plan)
        col = await store.collection(plan.collection) if plan.collection and plan.role != "embedding" else None
        check_duplicates = plan.collection not in run["created"]
        label = plan.table if plan.role != "embedding" else f"{plan.table} (rows without their {plan.parent} row)"
        progress.start(label, total, done)
        stats: dict[str, Any] = {"source_rows": plan.rows, "inserted": 0, "skipped": len(skipped_before), "overflow": 0,
                 "collection": plan.collection, "role": plan.role}
        # Collections with vectors: the backend defers the HNSW index and builds it once at the end
        # (also after a resume: the next bulk load to end builds an index a killed run left pending).
        vectors = plan.role in ("memory", "collection")
        async with (col.bulk_load() if col is not None and vectors else _nullcontext()):
            pending = asyncio.ensure_future(src.next_batch(plan, after, batch_size))
            while True:
                conv = await pending
                if conv is None:
                    break
                # Read and convert the next batch while this one is written (the source's key order
                # makes the next batch's start known now).
                pending = asyncio.ensure_future(src.next_batch(plan, conv.last_key, batch_size))
                if corrupt is not None:
                    corrupt(conv)
                try:
                    n_in, n_skip, n_ovf = await _write_batch(store, tracking, run["id"], plan, col, overflow_col,
                                                             conv, check_duplicates, on_duplicate, progress)
                except BaseException:
                    await _settle(pending)
                    raise
                stats["inserted"] += n_in
                stats["skipped"] += n_skip
                stats["overflow"] += n_ovf
                after = conv.last_key
                progress.advance(conv.rows)
                written += 1
                if fail_after_batches is not None and written >= fail_after_batches:
                    await _settle(pending)
                    raise Interrupted(f"injected failure after {written} batches")
            loaded_at = time.perf_counter()
        stats["index_seconds"] = round(time.perf_counter() - loaded_at, 3)  # the deferred HNSW build
        progress.finish()
        if stats["skipped"]:
            progress.log(f"warning: {plan.table}: {stats['skipped']} row(s) skipped, their ids already exist in "
                         f"{plan.collection}")
        # On resume, earlier batches count too.
        ledger = await tracking.ledger(run["id"], plan.table)
        stats["inserted"] = sum(len(_ids(r.fields["ids"])) for r in ledger)
        stats["overflow"] = sum(int(r.fields["overflow"] or 0) for r in ledger)
        counts[plan.table] = stats
    return counts


async def _settle(task: asyncio.Future[Any]) -> None:
    """Let a prefetch finish (its thread cannot be cancelled) before the source is closed."""
    try:
        await task
    except Exception:
        pass


class _nullcontext:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def _ids(stored: Any) -> list[Any]:
    """Ledger ids: ``[start, end]`` runs of int ids, or ``{"text": [...]}``."""
    if isinstance(stored, dict):
        return list(stored.get("text", []))
    return expand(stored or [])


def _store_ids(ids: Sequence[Any]) -> Any:
    if all(isinstance(i, int) for i in ids):
        return rows_in(sorted(ids))
    return {"text": list(ids)}


async def _write_batch(store: AsyncStore, tracking: Tracking, run_id: str, plan: TablePlan,
                       col: AsyncCollection | None, overflow_col: AsyncCollection | None, conv: Converted,
                       check_duplicates: bool, on_duplicate: str, progress: Progress) -> tuple[int, int, int]:
    records = conv.records
    async with store.transaction():
        skipped: list[Any] = []
        if col is not None and records and check_duplicates:
            existing = {r.id for r in await col.get([r.id for r in records if r.id is not None])}
            if existing:
                if on_duplicate == "fail":
                    ids = sorted(existing, key=str)
                    raise MigrationError(
                        f"{len(ids)} id(s) of {plan.table} already exist in the target collection "
                        f"{plan.collection!r} (first: {ids[:10]!r}); --on-duplicate fail stops here. Use "
                        "--on-duplicate skip to keep the target's records and skip these")
                skipped = sorted(existing, key=str)
                records = [r for r in records if r.id not in existing]
        skip_keys = set(skipped)
        overflow = [Record(o.id, None, {**o.fields, "run": run_id}) for o in conv.overflow
                    if o.fields["src_key"] not in skip_keys]
        if col is not None and records:
            await col.insert(records)
        if overflow and overflow_col is not None:
            await overflow_col.upsert(overflow)
        ids = [r.id for r in records]
        await tracking.batches.insert([Record(f"{run_id}/{plan.table}/{conv.first_key}", None, {
            "run": run_id, "src_table": plan.table, "collection": plan.collection, "first_key": conv.first_key,
            "last_key": conv.last_key, "ids": _store_ids(ids), "skipped": skipped, "rows": conv.rows,
            "overflow": len(overflow), "created_at": _now()})])
    if skipped:
        progress.log(f"warning: {plan.table}: skipped {len(skipped)} id(s) already in {plan.collection}: "
                     f"{skipped[:5]!r}{' ...' if len(skipped) > 5 else ''}")
    return len(records), len(skipped), len(overflow)


# -- validation ----------------------------------------------------------------------------


async def _overflow_map(store: AsyncStore, table: str) -> dict[Any, dict[str, Any]]:
    try:
        col = await store.collection(OVERFLOW)
    except CollectionNotFound:
        return {}
    out: dict[Any, dict[str, Any]] = {}
    async for r in col.scan(where={"src_table": table}):
        out.setdefault(r.fields["src_key"], {})[r.fields["src_column"]] = r.fields["value"]
    return out


async def validate(src: Source, store: AsyncStore, tracking: Tracking, run_id: str) -> dict[str, Any]:
    """Per source table: row counts and the content checksum of both sides over the rows this run
    is responsible for (source rows minus those skipped as duplicates). Raises MigrationError naming
    the table and the first differing id on a mismatch."""
    skipped: dict[str, set[Any]] = {}
    for plan in src.passes:
        _, _, s = await _pass_state(tracking, run_id, plan.table)
        skipped[plan.table] = set(s)
    results: dict[str, Any] = {}
    for plan in src.validation_plans():
        skip = skipped.get(plan.parent or plan.table, set()) if plan.role == "embedding" else skipped.get(plan.table,
                                                                                                           set())
        src_rows: list[tuple[Any, bytes]] = []
        source_sum = checksum.TableChecksum()
        async for key, digest in src.source_rows(plan):
            if key in skip:
                continue
            src_rows.append((key, digest))
            source_sum.add(key, digest)
        overflow = await _overflow_map(store, plan.table) if src.kind == "agentdb" else {}
        col = await store.collection(plan.collection) if plan.collection else None
        tgt_rows: list[tuple[Any, bytes]] = []
        target_sum = checksum.TableChecksum()
        keys = [k for k, _ in src_rows]
        for i in range(0, len(keys), 1000):
            chunk = keys[i:i + 1000]
            found = {r.id: r for r in await col.get(chunk)} if col is not None else {}
            for key in chunk:
                row = src.target_digest(plan, key, found.get(key), overflow.get(key, {}))
                if row is not None:
                    tgt_rows.append((key, row))
                    target_sum.add(key, row)
        entry: dict[str, Any] = {"source_rows": source_sum.rows, "target_rows": target_sum.rows, "skipped": len(skip),
                 "source_checksum": source_sum.hexdigest(), "target_checksum": target_sum.hexdigest()}
        results[plan.table] = entry
        if entry["source_checksum"] != entry["target_checksum"] or source_sum.rows != target_sum.rows:
            first = checksum.first_difference(src_rows, tgt_rows)
            raise MigrationError(
                f"validation failed for table {plan.table!r}: {source_sum.rows} source rows, {target_sum.rows} in "
                f"the target, checksums {entry['source_checksum'][:12]} != {entry['target_checksum'][:12]}; first "
                f"differing id: {first!r}. The run is rolled back")
    return results


# -- rollback and status -------------------------------------------------------------------


async def rollback(store: AsyncStore, run_id: str, *, progress: Progress | None = None,
                   final_status: str = "rolled_back") -> dict[str, Any]:
    """Remove exactly what run ``run_id`` added (from its ledger); earlier data stays. Idempotent.
    Collections the run created are dropped when they end up empty. Id sequences are not moved back
    (ids are never reused, as with AUTOINCREMENT)."""
    progress = progress or NullProgress()
    run_id = check_run_id(run_id)
    tracking = await Tracking.open(store, create=False)
    run = await tracking.get_run(run_id) if tracking is not None else None
    if tracking is None or run is None:
        raise BadArgument(f"--run {run_id}: no migration run of that id in this store; nothing was changed. "
                          "`vectorstore migrate status TARGET` lists the runs")
    removed: dict[str, int] = {}
    for entry in await tracking.ledger(run_id):
        name = entry.fields["collection"]
        ids = _ids(entry.fields["ids"])
        async with store.transaction():
            if name and ids:
                try:
                    col = await store.collection(name)
                except CollectionNotFound:
                    col = None
                if col is not None:
                    for i in range(0, len(ids), 10_000):
                        removed[name] = removed.get(name, 0) + await col.delete(ids[i:i + 10_000])
            await tracking.batches.delete([entry.id] if entry.id is not None else [])
    try:
        ovf = await store.collection(OVERFLOW)
        n = await ovf.delete(where={"run": run_id})
        if n:
            removed[OVERFLOW] = n
    except CollectionNotFound:
        pass
    dropped = []
    for name in reversed(run.get("created") or []):
        try:
            col = await store.collection(name)
        except CollectionNotFound:
            continue
        if await col.count() == 0:
            await store.drop_collection(name)
            dropped.append(name)
    run["status"] = final_status
    run["finished_at"] = _now()
    report = dict(run.get("report") or {})
    report["rollback"] = {"removed": removed, "dropped_collections": dropped}
    run["report"] = report
    await tracking.save_run(run)
    progress.log(f"run {run_id}: removed {sum(removed.values())} record(s) "
                 f"({', '.join(f'{k}: {v}' for k, v in removed.items()) or 'none'}); dropped {dropped or 'nothing'}")
    return run


async def store_checksums(store: AsyncStore, *, exclude_prefix: str = "vsmigrate_") -> dict[str, str]:
    """Content checksum of every collection of a store (records, vectors, fields, metadata), except
    the migration's own tracking collections: equal before a run and after its rollback."""
    out: dict[str, str] = {}
    for spec in await store.list_collections():
        if spec.name.startswith(exclude_prefix):
            continue
        col = await store.collection(spec.name)
        total = checksum.TableChecksum()
        async for r in col.scan():
            total.add(r.id, checksum.record_digest(spec, r))
        out[spec.name] = f"{total.rows}:{total.hexdigest()}"
    return out


async def status(store: AsyncStore) -> list[dict[str, Any]]:
    tracking = await Tracking.open(store, create=False)
    return [] if tracking is None else await tracking.all_runs()


async def open_existing(url: str) -> AsyncStore:
    """Open the store at ``url``, which must exist: BadArgument if there is none (opening a store
    creates it, and status and rollback never write to a store that is not there)."""
    check_target_url(url)
    if not await target_exists(url):
        raise BadArgument(f"there is no vectorstore store at {redact(url)}; check TARGET_URL (status and rollback "
                          "read the store a migration wrote into, and create none)")
    return await open_store(url)


async def rollback_url(url: str, run_id: str, progress: Progress | None = None) -> dict[str, Any]:
    """:func:`rollback` of run ``run_id`` in the store at ``url`` (BadArgument if there is no store
    there, or no such run)."""
    run_id = check_run_id(run_id)
    store = await open_existing(url)
    try:
        return await rollback(store, run_id, progress=progress)
    finally:
        await store.aclose()


async def status_url(url: str) -> list[dict[str, Any]]:
    """The migration runs of the store at ``url``, oldest first (BadArgument if there is no store)."""
    store = await open_existing(url)
    try:
        return await status(store)
    finally:
        await store.aclose()


async def collections(store: AsyncStore) -> list[dict[str, Any]]:
    """Every collection of ``store``: name, ``dim`` and ``metric`` (both None for a collection
    without vectors), id type, record count, and ``vectors`` as listings print it ("384-d cosine",
    "no vectors"). ``vectorstore migrate status`` prints them after the runs."""
    out = []
    for spec in await store.list_collections():
        col = await store.collection(spec.name)
        out.append({"name": spec.name, "dim": spec.dim, "metric": spec.to_dict()["metric"],
                    "id_type": spec.id_type.value, "records": await col.count(), "vectors": spec.describe_dim()})
    return out


async def status_and_collections_url(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`status` and :func:`collections` of the store at ``url`` (BadArgument if there is none)."""
    store = await open_existing(url)
    try:
        return await status(store), await collections(store)
    finally:
        await store.aclose()


def read_overflow(value: Any) -> Any:
    """Decode a lossless holding/overflow value to a Python value: integers, floats (inf, -0.0
    included), text as str (lone surrogates as such; other invalid UTF-8 bytes as U+DC80..U+DCFF),
    blobs as bytes."""
    from .values import from_json

    kind, v = from_json(value)
    if kind == "text":
        try:  # lone UTF-16 surrogates, as a JavaScript engine writes them
            return bytes(v).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:  # other invalid bytes: U+DC80..U+DCFF, as os.fsdecode does
            return bytes(v).decode("utf-8", "surrogateescape")
    return v


__all__ = ["BadArgument", "MigrationError", "Interrupted", "dry_run", "migrate", "rollback", "rollback_url", "status",
           "status_url", "collections", "status_and_collections_url", "open_existing", "validate", "read_overflow",
           "Path", "agentdb"]
