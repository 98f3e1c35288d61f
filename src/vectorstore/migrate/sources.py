"""Migration sources behind one interface: an AgentDB file, or a vectorstore SQLite store.

Both are read from a snapshot that never changes the source file (see :mod:`.source`); a
vectorstore store is copied to a temporary directory (with its ``-wal``) and opened there through
the normal API.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from vectorstore.config import redact
from vectorstore.errors import CollectionNotFound, InvalidInput
from vectorstore.memory import schema as memory_schema
from vectorstore.records import Record
from vectorstore.schema import CollectionSpec, IdType
from vectorstore.store import AsyncCollection, AsyncStore, open_store

from . import agentdb
from .agentdb import AgentDBSource, Converted, TablePlan
from .checksum import record_digest
from .source import SourceDB, sha256_file, source_path

TRACKING_PREFIX = "vsmigrate_"


class BadArgument(InvalidInput):
    """An argument of ``vectorstore migrate`` (or of :func:`~vectorstore.migrate.migrate`,
    :func:`~vectorstore.migrate.dry_run`, :func:`~vectorstore.migrate.rollback`, ...) is not usable;
    raised before anything is written. The command line exits with status 2."""


class SourceError(BadArgument):
    """The SOURCE argument is not something the migration can read."""


class IncompatibleTarget(BadArgument):
    """The target already has a collection, named like one the migration needs, that cannot take
    the data (other fields, id type or dimension); raised before anything is written."""


class Source:
    """What the engine needs from a source."""

    kind: str
    variant: str
    path: Path
    sha256: str
    wal_copied: bool
    dim: int | None

    @property
    def passes(self) -> list[TablePlan]:
        raise NotImplementedError

    @property
    def tables(self) -> list[TablePlan]:
        """Every table with its role (for reports)."""
        raise NotImplementedError

    def validation_plans(self) -> list[TablePlan]:
        """The tables whose checksums are compared."""
        return [p for p in self.tables if p.role not in ("virtual",)]

    async def pass_total(self, plan: TablePlan) -> int:
        """Rows the pass will read (for the progress bar)."""
        return plan.rows

    def collection_specs(self) -> list[dict[str, Any]]:
        """The collections this source needs in the target (for the plan and for creation)."""
        raise NotImplementedError

    async def prepare_target(self, store: AsyncStore) -> list[str]:
        """Create the collections this source needs; return the names created now."""
        raise NotImplementedError

    async def check_target(self, store: AsyncStore) -> None:
        """Raise :class:`IncompatibleTarget` if a collection of the target cannot take this source's
        data (run before anything is written)."""
        for data in self.collection_specs():
            spec = CollectionSpec.from_dict(data)
            try:
                existing = await store.collection(spec.name)
            except CollectionNotFound:
                continue
            _check_compatible(existing.spec, spec, data.get("embedded", True))

    async def next_batch(self, plan: TablePlan, after: Any, limit: int) -> Converted | None:
        raise NotImplementedError

    def source_rows(self, plan: TablePlan) -> AsyncIterator[tuple[Any, bytes]]:
        raise NotImplementedError

    def target_digest(self, plan: TablePlan, key: Any, record: Record | None,
                      overflow: Mapping[str, Any]) -> bytes | None:
        raise NotImplementedError

    async def sequences(self) -> list[tuple[str, int]]:
        """``(collection, after)``: move each int-id collection's sequence past ``after``."""
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        """Extra dry-run findings (dangling references, views, ...)."""
        return {}

    async def aclose(self) -> None:
        raise NotImplementedError


def _check_compatible(existing: CollectionSpec, needed: CollectionSpec, vectors: bool = True) -> None:
    """An existing collection takes the data when it has every needed field (more are fine), the
    id type and, if the data has vectors, their dimension and metric. Data without vectors fits
    any dimension: holding collections made with the placeholder ``dim=1`` before collections
    could be without vectors keep working."""
    missing = {k: v for k, v in needed.fields.items() if existing.fields.get(k) is not v}
    if missing or existing.id_type is not needed.id_type or (
            vectors and needed.dim is not None
            and (existing.dim != needed.dim or existing.metric is not needed.metric)):
        raise IncompatibleTarget(
            f"the target already has a collection {needed.name!r} that cannot take this data "
            f"(it is {existing.to_dict()}, needed {needed.to_dict()}); nothing was written. Drop or rename it, "
            "or migrate into another store")


async def _create(store: AsyncStore, spec: CollectionSpec, created: list[str]) -> AsyncCollection:
    try:
        existing = await store.collection(spec.name)
    except CollectionNotFound:
        col = await store.create_collection(spec.name, dim=spec.dim, metric=spec.metric.value,
                                            fields=dict(spec.fields), index=spec.index, id_type=spec.id_type.value,
                                            exist_ok=True)
        created.append(spec.name)
        return col
    _check_compatible(existing.spec, spec)
    return existing


class AgentDBFile(Source):
    def __init__(self, path: Path, db: SourceDB, variant: str, dim: int | None) -> None:
        self.kind = "agentdb"
        self.variant = variant
        self.path = path
        self.db = db
        self.wal_copied = db.copied
        self.sha256 = sha256_file(path)
        self.src = AgentDBSource(db, variant, dim)
        self.dim = self.src.dim

    @property
    def passes(self) -> list[TablePlan]:
        return self.src.passes

    @property
    def tables(self) -> list[TablePlan]:
        return self.src.plans

    def collection_specs(self) -> list[dict[str, Any]]:
        # Holding, schema and overflow collections have no vectors (dim=None). "embedded": whether
        # the collection's records carry vectors (the memory's skill_links and causal_edges do not).
        specs: list[dict[str, Any]] = []
        for name, mc in memory_schema.COLLECTIONS.items():
            spec = mc.spec(self.src.dim).to_dict()
            spec["source"] = name if any(p.table == name for p in self.src.plans) else "(none: created empty)"
            spec["embedded"] = mc.embedded
            specs.append(spec)
        for plan in self.src.plans:
            if plan.role == "holding":
                spec = CollectionSpec(name=plan.collection or "", dim=None, fields=self.src.collection_fields(plan),
                                      id_type="int").to_dict()
                spec["source"] = plan.table
                specs.append(spec)
        specs.append(CollectionSpec(name=agentdb.SCHEMA, dim=None, fields=agentdb.SCHEMA_FIELDS,
                                    id_type="int").to_dict() | {"source": "sqlite_master"})
        specs.append(CollectionSpec(name=agentdb.OVERFLOW, dim=None, fields=agentdb.OVERFLOW_FIELDS,
                                    id_type="text").to_dict() | {"source": "values that do not fit their field"})
        return specs

    async def prepare_target(self, store: AsyncStore) -> list[str]:
        created: list[str] = []
        for name in memory_schema.COLLECTIONS:
            try:
                await store.collection(name)
            except CollectionNotFound:
                created.append(name)
        # The memory's own definitions and compatibility checks (dimension, fields, int ids).
        await memory_schema.ensure_collections(store, self.src.dim)
        for spec in self.collection_specs():
            if spec["name"] in memory_schema.COLLECTIONS:
                continue
            await _create(store, CollectionSpec.from_dict(spec), created)
        return created

    async def next_batch(self, plan: TablePlan, after: Any, limit: int) -> Converted | None:
        # In a worker thread, so the next batch is read and converted while the current one is written.
        return await asyncio.to_thread(self.src.convert, plan, after, limit)

    async def pass_total(self, plan: TablePlan) -> int:
        if plan.role == "embedding":
            return self.src.orphan_count(plan)
        return plan.rows

    async def source_rows(self, plan: TablePlan) -> AsyncIterator[tuple[Any, bytes]]:
        for item in self.src.source_rows(plan):
            yield item

    def target_digest(self, plan: TablePlan, key: Any, record: Record | None,
                      overflow: Mapping[str, Any]) -> bytes | None:
        return self.src.target_row(plan, key, record, overflow)

    async def sequences(self) -> list[tuple[str, int]]:
        out: dict[str, int] = {}
        for plan in self.src.plans:
            if plan.collection and plan.role in ("memory", "holding", "schema", "embedding"):
                after = max(plan.max_key, plan.sequence or 0, 0)
                out[plan.collection] = max(out.get(plan.collection, 0), after)
        return [(c, a) for c, a in out.items() if a > 0]

    def report(self) -> dict[str, Any]:
        return {"dangling": self.src.dangling(), "type_notes": self.src.type_notes(), "views": self.src.views(),
                "dim": self.src.dim,
                "indexes_and_triggers": [{"type": o.type, "name": o.name, "table": o.tbl_name}
                                         for o in self.src.schema_objects if o.type in ("index", "trigger")]}

    async def aclose(self) -> None:
        self.db.close()


class VectorStoreFile(Source):
    """A vectorstore SQLite store (``sqlite:///...``), read from a private snapshot copy."""

    def __init__(self, path: Path) -> None:
        self.kind = "vectorstore"
        self.variant = "sqlite"
        self.path = path
        self.sha256 = sha256_file(path)
        self.dim = None
        self._tmp = tempfile.TemporaryDirectory(prefix="vsmigrate-store-")
        copy = Path(self._tmp.name) / "source.db"
        shutil.copyfile(path, copy)
        wal = Path(str(path) + "-wal")
        self.wal_copied = wal.is_file() and wal.stat().st_size > 0
        if self.wal_copied:
            shutil.copyfile(wal, str(copy) + "-wal")
        self._copy = copy
        self.store: AsyncStore | None = None
        self._plans: list[TablePlan] = []
        self._specs: dict[str, CollectionSpec] = {}
        self.skipped: list[str] = []

    async def open(self) -> None:
        self.store = await open_store("sqlite:///" + str(self._copy.resolve()))
        for spec in await self.store.list_collections():
            if spec.name.startswith(TRACKING_PREFIX):
                self.skipped.append(spec.name)
                continue
            col = await self.store.collection(spec.name)
            self._specs[spec.name] = spec
            sequence = None
            if spec.id_type is IdType.INT:
                sequence = await col.last_id()
            self._plans.append(TablePlan(spec.name, "collection", spec.name, await col.count(), [],
                                         sequence=sequence))

    @property
    def passes(self) -> list[TablePlan]:
        return self._plans

    @property
    def tables(self) -> list[TablePlan]:
        return self._plans

    def collection_specs(self) -> list[dict[str, Any]]:
        return [self._specs[p.table].to_dict() | {"source": p.table} for p in self._plans]

    async def prepare_target(self, store: AsyncStore) -> list[str]:
        created: list[str] = []
        for plan in self._plans:
            await _create(store, self._specs[plan.table], created)
        return created

    async def next_batch(self, plan: TablePlan, after: Any, limit: int) -> Converted | None:
        assert self.store is not None
        col = await self.store.collection(plan.table)
        records = await col.page(after, limit)
        if not records:
            return None
        return Converted(records[0].id, records[-1].id, len(records), records, [], [])

    async def source_rows(self, plan: TablePlan) -> AsyncIterator[tuple[Any, bytes]]:
        assert self.store is not None
        col = await self.store.collection(plan.table)
        spec = self._specs[plan.table]
        after = None
        while True:
            records = await col.page(after, 1000)
            for r in records:
                yield r.id, record_digest(spec, r)
            if len(records) < 1000:
                return
            after = records[-1].id

    def target_digest(self, plan: TablePlan, key: Any, record: Record | None,
                      overflow: Mapping[str, Any]) -> bytes | None:
        return None if record is None else record_digest(self._specs[plan.table], record)

    async def sequences(self) -> list[tuple[str, int]]:
        return [(p.table, p.sequence) for p in self._plans if p.sequence]

    def report(self) -> dict[str, Any]:
        return {"skipped_collections": self.skipped}

    async def aclose(self) -> None:
        if self.store is not None:
            await self.store.aclose()
        self._tmp.cleanup()


async def open_source(source: str, dim: int | None = None) -> Source:
    path = source_path(source)
    shown = redact(source)  # (a store URL given as SOURCE may hold a password)
    if not path.is_file():
        raise SourceError(f"source {shown!r}: no such file ({redact(str(path))})")
    db = SourceDB(path)
    try:
        kind, variant = agentdb.detect(db)
    except Exception as exc:
        db.close()
        raise SourceError(f"source {shown!r} is not an SQLite database ({exc})") from None
    if kind == "vectorstore":
        db.close()
        if dim is not None:
            raise SourceError(f"--dim {dim}: the source {shown!r} is a vectorstore store, whose collections keep "
                              "their own dimensions; --dim applies to AgentDB files only. Leave it out")
        vs = VectorStoreFile(path)
        await vs.open()
        return vs
    if kind != "agentdb":
        db.close()
        raise SourceError(f"source {shown!r} is an SQLite file but neither an AgentDB file (no episodes, skills, "
                          "reasoning_patterns, causal_edges or agentdb_config table) nor a vectorstore store")
    return AgentDBFile(path, db, variant, dim)
