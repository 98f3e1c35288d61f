"""Export: copy every collection of one store into another, then prove the copy.

``vectorstore export SOURCE_URL DEST_URL`` (or :func:`export_store`) copies each collection of the
source store (typically PostgreSQL) into the destination (typically a new SQLite file), so a team
can roll back to SQLite or snapshot production for development. It works for any pair of URLs:
it only uses the public API.

- **Definitions**: the same spec (dimension, metric, fields in order, index parameters, id type); a
  collection without vectors (``dim=None``) is created without vectors in the destination.
- **Records**: ids, vectors bit-exact (float32), records without a vector, fields (NULLs included)
  and metadata, read in id order and written in batches inside the destination's
  :meth:`~vectorstore.AsyncCollection.bulk_load` (indexes are built once per collection).
- **Id sequences** of int-id collections: the destination's sequence is moved to the source's
  :meth:`~vectorstore.AsyncCollection.last_id` (``allocate_ids(0, after=...)``), so ids allocated
  later continue where the source's would.
- **Validation** at the end: per collection the spec, the record count, the sequence, and a
  content checksum computed the same way on both sides (:func:`record_digest`, built on
  :mod:`vectorstore.migrate.checksum`); a mismatch raises :class:`ExportMismatch` naming the
  collection and the first differing id.
- **Refusal**: if the destination already has a collection of one of the source's names, nothing
  is written and :class:`ExportConflict` names them, unless ``overwrite=True`` (``--overwrite``),
  which drops and re-creates them (other collections of the destination are left alone).
  :func:`export_urls` (``vectorstore export``) also refuses, with :class:`~vectorstore.ConfigError`
  and before opening either store, a batch size outside 1-100000, a malformed URL, a source URL
  where there is no store (opening it would create an empty one) and a destination that is the
  source.

The source is read as it is while the export runs, not from one snapshot: export a store nobody
writes to, or the validation reports the records that changed meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import attrs
import numpy as np

from vectorstore.config import redact, resolve
from vectorstore.errors import CollectionExists, ConfigError, NotSupported, VectorStoreError
from vectorstore.migrate.checksum import (
    TableChecksum,
    encode_int,
    encode_json,
    encode_null,
    encode_real,
    encode_text,
    encode_vector,
    row_digest,
)
from vectorstore.migrate.source import source_path
from vectorstore.records import Record, RecordId
from vectorstore.schema import CollectionSpec, FieldType, IdType
from vectorstore.store import AsyncCollection, AsyncStore, open_store, store_exists_async

DEFAULT_BATCH = 1000
MAX_BATCH = 100_000


class ExportConflict(CollectionExists):
    """The destination already has collections named like the source's; nothing was written."""

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


class ExportMismatch(VectorStoreError):
    """The copy differs from the source: ``collection`` and, for a content difference, the first
    differing id (``first_id``; in id order, on either side)."""

    def __init__(self, message: str, collection: str, first_id: RecordId | None = None) -> None:
        super().__init__(message)
        self.collection = collection
        self.first_id = first_id


# -- canonical content --------------------------------------------------------------------


def _encode_field(kind: FieldType, value: Any) -> bytes:
    if value is None:
        return encode_null()
    if kind is FieldType.TEXT:
        return encode_text(str(value).encode("utf-8", "surrogatepass"))
    if kind is FieldType.INT:
        return encode_int(int(value))
    if kind is FieldType.FLOAT:
        return encode_real(float(value))
    if kind is FieldType.DATE:
        return encode_text(value.isoformat().encode("ascii"))
    if kind is FieldType.TIMESTAMP:
        stamp = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return encode_text(stamp.astimezone(dt.UTC).isoformat(timespec="microseconds").encode("ascii"))
    # bool, json, int[], text[]: JSON values
    return encode_json(value)


def record_digest(spec: CollectionSpec, record: Record) -> bytes:
    """SHA-256 over the record's canonical values, in column order: id, vector (little-endian float32
    bytes, or NULL), each declared field in order, metadata (canonical JSON)."""
    rid = record.id
    if rid is None:
        raise ValueError("a stored record always has an id")
    values = [encode_int(int(rid)) if spec.id_type is IdType.INT else encode_text(str(rid).encode("utf-8"))]
    if record.vector is None:
        values.append(encode_null())
    else:
        values.append(encode_vector(np.asarray(record.vector, dtype="<f4").tobytes()))
    for name, kind in spec.fields.items():
        values.append(_encode_field(kind, record.fields.get(name)))
    values.append(encode_json(dict(record.metadata)))
    return row_digest(values)


@attrs.frozen(slots=True)
class CollectionSummary:
    """One collection as validated: its record count, content checksum and id sequence."""

    name: str
    records: int
    checksum: str
    last_id: int | None = None  # int-id collections only
    seconds: float = 0.0  # copying time (0 when only validated)


@attrs.frozen(slots=True)
class ExportReport:
    """What an export copied: ``source`` and ``destination`` are the stores' URLs as they may be
    shown (:attr:`AsyncStore.url <vectorstore.store.AsyncStore>`: no password)."""

    source: str
    destination: str
    collections: list[CollectionSummary]
    seconds: float

    @property
    def records(self) -> int:
        return sum(c.records for c in self.collections)


# -- progress -------------------------------------------------------------------------------


class Progress(Protocol):
    """What the export reports while it runs (the CLI draws it with rich, or prints plain lines)."""

    def start(self, collection: str, phase: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self, message: str) -> None: ...


class _Silent:
    def start(self, collection: str, phase: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self, message: str) -> None:
        pass


# -- the export -----------------------------------------------------------------------------


async def export_store(source: AsyncStore, destination: AsyncStore, *, overwrite: bool = False,
                       batch_size: int = DEFAULT_BATCH, progress: Progress | None = None) -> ExportReport:
    """Copy every collection of ``source`` into ``destination`` and validate the copy (see the module
    docstring). Raises :class:`ExportConflict` (writing nothing) or :class:`ExportMismatch`."""
    check_batch_size(batch_size)
    if source.url and source.url == destination.url and source.capabilities.persistent:
        raise ConfigError(f"the source and the destination are the same store ({source.url}); export to another "
                          "URL (for example sqlite:///backup.db)")
    shown = progress or _Silent()
    started = time.perf_counter()
    specs = await source.list_collections()
    existing = {spec.name for spec in await destination.list_collections()}
    taken = [spec.name for spec in specs if spec.name in existing]
    if taken and not overwrite:
        raise ExportConflict(
            f"the destination {destination.url} already has collection(s) {', '.join(taken)}; nothing was written. "
            "Export to a new store, drop them, or pass --overwrite (overwrite=True) to replace them", taken)
    copied: dict[str, float] = {}
    for spec in specs:
        copied[spec.name] = await _copy_collection(source, destination, spec, replace=spec.name in existing,
                                                   batch_size=batch_size, progress=shown)
    summaries = await validate_export(source, destination, [spec.name for spec in specs], batch_size=batch_size,
                                      progress=shown)
    summaries = [attrs.evolve(s, seconds=copied[s.name]) for s in summaries]
    return ExportReport(source=source.url, destination=destination.url, collections=summaries,
                        seconds=time.perf_counter() - started)


def check_batch_size(batch_size: object) -> int:
    """Records per batch: a whole number from 1 to 100000 (ConfigError otherwise)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"--batch-size (batch_size) must be a whole number from 1 to {MAX_BATCH:,} (records per "
                          f"batch), got {batch_size!r}; leave it out for the default {DEFAULT_BATCH}")
    return batch_size


async def _exists(url: str) -> bool | None:
    """Whether a store is at ``url`` (None: the backend cannot tell); validates the URL (ConfigError,
    UnknownBackend) without creating anything."""
    try:
        return await store_exists_async(url)
    except NotSupported:
        return None


async def check_urls(source_url: str, destination_url: str) -> None:
    """The checks :func:`export_urls` makes before opening anything: both URLs are usable, a store is
    at the source, and the destination is not the source. Raises ConfigError (or UnknownBackend)."""
    source, destination = resolve(source_url), resolve(destination_url)
    same = source.url == destination.url or (
        source.scheme == destination.scheme == "sqlite"
        and source_path(source.url).resolve() == source_path(destination.url).resolve())
    if same and source.scheme != "memory":  # (every memory:// URL is a store of its own)
        raise ConfigError(f"the source and the destination are the same store ({redact(source.url)}); export to "
                          "another URL (for example sqlite:///backup.db)")
    if await _exists(source_url) is False:
        raise ConfigError(f"there is no vectorstore store at the source {redact(source.url)}, so there is nothing to "
                          "export (nothing was created); check the URL")
    await _exists(destination_url)  # (a malformed destination URL raises here, before anything is written)


async def export_urls(source_url: str, destination_url: str, *, overwrite: bool = False,
                      batch_size: int = DEFAULT_BATCH, progress: Progress | None = None) -> ExportReport:
    """:func:`export_store` between two URLs (both stores are opened and closed here). The arguments
    are checked first (:func:`check_batch_size`, :func:`check_urls`): a bad one raises ConfigError
    with nothing opened or written."""
    check_batch_size(batch_size)
    await check_urls(source_url, destination_url)
    source = await open_store(source_url)
    try:
        destination = await open_store(destination_url)
        try:
            return await export_store(source, destination, overwrite=overwrite, batch_size=batch_size,
                                      progress=progress)
        finally:
            await destination.aclose()
    finally:
        await source.aclose()


async def _copy_collection(source: AsyncStore, destination: AsyncStore, spec: CollectionSpec, *, replace: bool,
                           batch_size: int, progress: Progress) -> float:
    started = time.perf_counter()
    src = await source.collection(spec.name)
    total = await src.count()
    if replace:
        await destination.drop_collection(spec.name)
    dst = await destination.create_collection(
        spec.name, dim=spec.dim, metric=spec.metric.value, fields=dict(spec.fields), index=spec.index,
        id_type=spec.id_type.value)
    if dst.spec != spec:  # pragma: no cover - a backend that does not keep definitions
        raise ExportMismatch(f"collection {spec.name!r} was created as {dst.spec.to_dict()}, not as the source's "
                             f"{spec.to_dict()}", spec.name)
    progress.start(spec.name, "copy", total)
    async with dst.bulk_load():
        async for batch in _pages(src, batch_size):
            await dst.insert(batch)
            progress.advance(len(batch))
    if spec.id_type is IdType.INT:
        last = await src.last_id()
        if 0 < last < 2**63 - 1:
            await dst.allocate_ids(0, after=last)
    seconds = time.perf_counter() - started
    progress.finish(f"{spec.name}: {total:,} record(s) copied in {seconds:.1f}s")
    return seconds


async def _pages(col: AsyncCollection, batch_size: int) -> AsyncIterator[list[Record]]:
    after: RecordId | None = None
    while True:
        page = await col.page(after, batch_size)
        if page:
            yield page
        if len(page) < batch_size:
            return
        after = page[-1].id


# -- validation -----------------------------------------------------------------------------


async def collection_summary(col: AsyncCollection, batch_size: int = DEFAULT_BATCH) -> CollectionSummary:
    """Count, content checksum and sequence of one collection, as :func:`validate_export` computes them."""
    checksum = TableChecksum()
    async for page in _pages(col, batch_size):
        for record in page:
            checksum.add(record.id, record_digest(col.spec, record))  # same key as _compare's
    last = await col.last_id() if col.spec.id_type is IdType.INT else None
    return CollectionSummary(name=col.name, records=checksum.rows, checksum=checksum.hexdigest(), last_id=last)


async def _digests(col: AsyncCollection, batch_size: int,
                   on_page: Callable[[int], None]) -> AsyncIterator[tuple[RecordId, bytes]]:
    async for page in _pages(col, batch_size):
        for record in page:
            assert record.id is not None
            yield record.id, record_digest(col.spec, record)
        on_page(len(page))


async def _compare(src: AsyncCollection, dst: AsyncCollection, batch_size: int,
                   progress: Progress) -> tuple[TableChecksum, TableChecksum, RecordId | None]:
    """Both sides' checksums, and the first id (in id order) whose record differs or exists on one
    side only: one pass over both, in step."""
    sums = TableChecksum(), TableChecksum()
    first: RecordId | None = None
    left = _digests(src, batch_size, progress.advance)
    right = _digests(dst, batch_size, lambda n: None)
    a = await anext(left, None)
    b = await anext(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and _key(a[0]) < _key(b[0])):
            assert a is not None
            sums[0].add(a[0], a[1])
            first = a[0] if first is None else first
            a = await anext(left, None)
        elif a is None or _key(b[0]) < _key(a[0]):
            sums[1].add(b[0], b[1])
            first = b[0] if first is None else first
            b = await anext(right, None)
        else:
            sums[0].add(a[0], a[1])
            sums[1].add(b[0], b[1])
            if a[1] != b[1] and first is None:
                first = a[0]
            a, b = await anext(left, None), await anext(right, None)
    return sums[0], sums[1], first


def _key(rid: RecordId) -> tuple[int, Any]:
    # Ids of one collection are all ints or all strs; ints sort numerically, text by code point.
    return (0, rid) if isinstance(rid, int) else (1, rid)


async def validate_export(source: AsyncStore, destination: AsyncStore, names: list[str] | None = None, *,
                          batch_size: int = DEFAULT_BATCH, progress: Progress | None = None) -> list[CollectionSummary]:
    """Check that every named collection (default: all of the source's) has the same definition, record
    count, id sequence and content checksum in both stores; raise :class:`ExportMismatch` naming the
    collection (and the first differing id) at the first difference. Returns the summaries."""
    shown = progress or _Silent()
    if names is None:
        names = [spec.name for spec in await source.list_collections()]
    summaries: list[CollectionSummary] = []
    for name in names:
        src = await source.collection(name)
        try:
            dst = await destination.collection(name)
        except VectorStoreError as exc:
            raise ExportMismatch(f"collection {name!r} is missing from the destination ({exc})", name) from None
        if dst.spec != src.spec:
            raise ExportMismatch(f"collection {name!r} is defined differently: source {src.spec.to_dict()}, "
                                 f"destination {dst.spec.to_dict()}", name)
        counts = await asyncio.gather(src.count(), dst.count())
        shown.start(name, "validate", counts[0])
        left, right, first = await _compare(src, dst, batch_size, shown)
        if counts[0] != counts[1] or left.rows != right.rows:
            raise ExportMismatch(
                f"collection {name!r} has {counts[0]:,} record(s) in the source but {counts[1]:,} in the destination"
                + (f"; the first id present on one side only or different is {first!r}" if first is not None else ""),
                name, first)
        if left.hexdigest() != right.hexdigest() or first is not None:
            raise ExportMismatch(
                f"collection {name!r} differs between the source and the destination (checksum {left.hexdigest()[:16]}"
                f" vs {right.hexdigest()[:16]}); the first differing id is {first!r}. Export it again with "
                "--overwrite (and make sure nothing writes to the source meanwhile)", name, first)
        last = None
        if src.spec.id_type is IdType.INT:
            last, dst_last = await src.last_id(), await dst.last_id()
            if dst_last < last:
                raise ExportMismatch(f"collection {name!r}: the destination's id sequence stands at {dst_last}, "
                                     f"behind the source's {last}; ids allocated there would not continue the "
                                     "source's", name)
        shown.finish(f"{name}: {left.rows:,} record(s) verified, checksum {left.hexdigest()[:16]}")
        summaries.append(CollectionSummary(name=name, records=left.rows, checksum=left.hexdigest(), last_id=last))
    return summaries


# -- command line ---------------------------------------------------------------------------


def run_cli(source_url: str, destination_url: str, *, overwrite: bool, batch_size: int, console: Any) -> int:
    """``vectorstore export``: 0 when the copy is verified, 1 on a mismatch (other errors propagate:
    the command exits 2 on a VectorStoreError, with nothing written for a bad argument)."""
    check_batch_size(batch_size)
    progress: _RichProgress | _PlainProgress
    progress = _RichProgress(console) if console.is_terminal else _PlainProgress(console)
    console.print(f"[bold]vectorstore export[/bold] {redact(resolve(source_url).url)} → "
                  f"{redact(resolve(destination_url).url)}")
    try:
        with progress:
            report = asyncio.run(export_urls(source_url, destination_url, overwrite=overwrite,
                                             batch_size=batch_size, progress=progress))
    except ExportMismatch as exc:
        console.print(f"[red]✗ validation failed[/red]: {exc}")
        return 1
    console.print(f"[green]✓[/green] {len(report.collections)} collection(s), {report.records:,} record(s) exported "
                  f"and verified in {report.seconds:.1f}s")
    for summary in report.collections:
        seq = f", id sequence at {summary.last_id}" if summary.last_id is not None else ""
        console.print(f"  {summary.name}: {summary.records:,} record(s), checksum {summary.checksum[:16]}{seq}")
    return 0


class _PlainProgress:
    """Plain lines for logs and pipes: the start, every 10% and the end of each phase."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.name, self.phase, self.total, self.done, self.next_mark = "", "", 0, 0, 0

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def start(self, collection: str, phase: str, total: int) -> None:
        self.name, self.phase, self.total, self.done = collection, phase, total, 0
        self.next_mark = max(1, total // 10)
        verb = "copying" if phase == "copy" else "validating"
        self.console.print(f"{collection}: {verb} {total:,} record(s)", highlight=False)

    def advance(self, n: int) -> None:
        self.done += n
        if self.done >= self.next_mark and self.done < self.total:
            self.console.print(f"{self.name}: {self.phase} {self.done:,}/{self.total:,}", highlight=False)
            self.next_mark += max(1, self.total // 10)

    def finish(self, message: str) -> None:
        self.console.print(message, highlight=False)


class _RichProgress:
    """A rich progress bar per collection and phase."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=console)
        self.task: Any = None

    def __enter__(self) -> _RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start(self, collection: str, phase: str, total: int) -> None:
        verb = "copy" if phase == "copy" else "verify"
        self.task = self.bar.add_task(f"{verb} {collection}", total=max(total, 1))
        if total == 0:
            self.bar.update(self.task, completed=1)

    def advance(self, n: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, n)

    def finish(self, message: str) -> None:
        self.bar.console.print(message, highlight=False)

