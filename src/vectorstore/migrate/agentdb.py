"""AgentDB files as a migration source: detection, the table plan, rows → records, and the
reconstruction of every source table from the target (for the checksums).

Where each table goes:

- ``episodes``, ``skills``, ``skill_links``, ``reasoning_patterns``, ``causal_edges`` → the
  :mod:`vectorstore.memory` collections of the same names (``ensure_collections``), ids kept, the
  ``metadata`` column as the record's metadata, ``causal_edges.similarity`` as ``edge_similarity``;
- ``episode_embeddings`` / ``skill_embeddings`` / ``pattern_embeddings`` → the vectors of those
  records (an embedding row without its parent row is kept in the overflow collection);
- every other table (including ``sqlite_sequence``) → a holding collection ``agentdb_<table>``:
  int ids = rowid, ``vector=None``, one ``json`` field per column holding the lossless encoding of
  :func:`vectorstore.migrate.values.to_json`;
- ``sqlite_master`` (every table, index, view and trigger, with its SQL) → ``agentdb_schema``;
- values that cannot be stored as they are in their typed field → ``agentdb_overflow``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from vectorstore.memory import schema as memory_schema
from vectorstore.records import Record
from vectorstore.schema import RESERVED_FIELD_NAMES, SYSTEM_COLUMNS, FieldType

from . import values
from .source import SchemaObject, SourceDB, SourceTable, SqlValue, quote

OVERFLOW = "agentdb_overflow"
SCHEMA = "agentdb_schema"
HOLDING_PREFIX = "agentdb_"
EMBEDDING_MODEL_DEFAULT = "all-MiniLM-L6-v2"

OVERFLOW_FIELDS: dict[str, str] = {"src_table": "text", "src_key": "int", "src_column": "text",
                                   "value": "json", "reason": "text", "run": "text"}
SCHEMA_FIELDS: dict[str, str] = {"type": "json", "name": "json", "tbl_name": "json", "sql": "json",
                                 "collection": "text", "columns": "json"}
SCHEMA_COLUMNS = ("type", "name", "tbl_name", "sql")

#: Columns holding JSON text: carried as JSON values (checksums compare the parsed value).
JSON_COLUMNS = frozenset({"tags", "metadata", "signature", "evidence_ids", "experiment_ids"})


@attrs.frozen
class Embedding:
    table: str
    key_column: str  # e.g. episode_id, the INTEGER PRIMARY KEY (= rowid)


@attrs.frozen
class KnownTable:
    table: str
    fields: Mapping[str, FieldType]
    renames: Mapping[str, str]
    embedding: Embedding | None


KNOWN: dict[str, KnownTable] = {
    "episodes": KnownTable("episodes", memory_schema.EPISODE_FIELDS, {}, Embedding("episode_embeddings", "episode_id")),
    "skills": KnownTable("skills", memory_schema.SKILL_FIELDS, {}, Embedding("skill_embeddings", "skill_id")),
    "skill_links": KnownTable("skill_links", memory_schema.SKILL_LINK_FIELDS, {}, None),
    "reasoning_patterns": KnownTable("reasoning_patterns", memory_schema.PATTERN_FIELDS, {},
                                     Embedding("pattern_embeddings", "pattern_id")),
    "causal_edges": KnownTable("causal_edges", memory_schema.CAUSAL_EDGE_FIELDS, {"similarity": "edge_similarity"},
                               None),
}
EMBEDDING_TABLES = {k.embedding.table: k.table for k in KNOWN.values() if k.embedding is not None}


def detect(db: SourceDB) -> tuple[str, str]:
    """``(kind, variant)``: ``("agentdb", "main" | "mcp" | "unknown")`` or ``("vectorstore", "sqlite")``,
    from the tables and ``PRAGMA table_info`` (never from a version field)."""
    if db.has_table("vs_collections"):
        return "vectorstore", "sqlite"
    names = {t.name for t in db.tables()}
    if not names & (set(KNOWN) | set(EMBEDDING_TABLES) | {"agentdb_config"}):
        return "sqlite", "unknown"
    variant = "unknown"
    if "episodes" in names:
        cols = {c.name: c for c in db.columns("episodes")}
        if "created_at" in cols:
            variant = "main"
        elif cols.get("reward") is not None and cols["reward"].notnull:
            variant = "mcp"
    if variant == "unknown" and "skills" in names:
        cols = {c.name: c for c in db.columns("skills")}
        variant = "mcp" if "ts" in cols else ("main" if "created_at" in cols else "unknown")
    return "agentdb", variant


def sanitize(name: str, taken: set[str], prefix: str = "", reserved: frozenset[str] = frozenset()) -> str:
    """A valid vectorstore name for ``name`` (collection or field), unique within ``taken``."""
    base = re.sub(r"[^a-z0-9_]+", "_", name.lower())
    base = re.sub(r"_+", "_", base).strip("_") or "x"
    if prefix:
        base = prefix + base
    elif not base[0].isalpha() or base in reserved or base.startswith("vs_"):
        base = "c_" + base
    base = base[:48].rstrip("_")
    candidate, n = base, 2
    while candidate in taken:
        suffix = f"_{n}"
        candidate = base[:48 - len(suffix)].rstrip("_") + suffix
        n += 1
    taken.add(candidate)
    return candidate


@attrs.define
class TablePlan:
    """What happens to one source table."""

    table: str
    role: str  # memory | embedding | holding | schema | virtual
    collection: str | None
    rows: int
    columns: list[str]
    fields: dict[str, str] = attrs.field(factory=dict)  # source column -> target slot (field, $id, $metadata)
    extra_columns: list[str] = attrs.field(factory=list)  # columns with no field: every value overflows
    parent: str | None = None
    sequence: int | None = None
    max_key: int = 0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class Converted:
    """One batch of source rows, as records for one collection plus overflow entries."""

    first_key: Any
    last_key: Any
    rows: int
    records: list[Record]
    overflow: list[Record]  # fields src_table, src_key, src_column, value, reason (run is set on write)
    problems: list[tuple[str, str, Any, str]]  # (table, column, key, reason)


def _overflow(table: str, key: int, column: str, value: SqlValue, reason: str) -> Record:
    return Record(f"{table}:{key}:{column}", None, {"src_table": table, "src_key": key, "src_column": column,
                                                     "value": values.to_json(value), "reason": reason})


class AgentDBSource:
    """An AgentDB file, read through :class:`SourceDB`."""

    kind = "agentdb"

    def __init__(self, db: SourceDB, variant: str, dim: int | None = None) -> None:
        self.db = db
        self.variant = variant
        self.tables = {t.name: t for t in db.tables()}
        self.schema_objects: list[SchemaObject] = db.schema_objects()
        self.dim = dim if dim is not None else self._detect_dim()
        self.plans = self._plan()

    # -- planning ------------------------------------------------------------------

    def _detect_dim(self) -> int:
        counts: dict[int, int] = {}
        for table in EMBEDDING_TABLES:
            if table in self.tables and self.tables[table].column("embedding") is not None:
                for length, n in self.db.conn.execute(
                        f"SELECT length(embedding), count(*) FROM {quote(table)} WHERE typeof(embedding) = 'blob' "
                        "GROUP BY 1"):
                    if length and int(length) % 4 == 0:
                        counts[int(length) // 4] = counts.get(int(length) // 4, 0) + int(n)
        if counts:
            return max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
        return memory_schema.resolve_dim(None)

    def _known_ok(self, table: SourceTable) -> bool:
        return table.integer_pk() == "id"

    def _embedding_ok(self, table: SourceTable, emb: Embedding) -> bool:
        return table.integer_pk() == emb.key_column and table.column("embedding") is not None

    def _plan(self) -> list[TablePlan]:
        taken = {OVERFLOW, SCHEMA, *KNOWN}
        plans: list[TablePlan] = []
        memory_ok: set[str] = set()
        for name, known in KNOWN.items():
            table = self.tables.get(name)
            if table is None or table.virtual or not self._known_ok(table):
                continue
            mapping: dict[str, str] = {}
            extra: list[str] = []
            for col in table.column_names:
                if col == "id":
                    mapping[col] = values.ID
                elif col == "metadata":
                    mapping[col] = values.METADATA
                elif known.renames.get(col, col) in known.fields:
                    mapping[col] = known.renames.get(col, col)
                else:
                    extra.append(col)
            memory_ok.add(name)
            plans.append(TablePlan(name, "memory", name, table.rows, table.column_names, mapping, extra,
                                   sequence=table.sequence, max_key=self.db.max_key(table)))
        for emb_table, parent in EMBEDDING_TABLES.items():
            table = self.tables.get(emb_table)
            emb = KNOWN[parent].embedding
            assert emb is not None
            if table is None or parent not in memory_ok or not self._embedding_ok(table, emb):
                continue
            mapping = {emb.key_column: values.ID, "embedding": "$vector"}
            extra = [c for c in table.column_names if c not in mapping and c != "embedding_model"]
            if table.column("embedding_model") is not None:
                mapping["embedding_model"] = "$model"
            plans.append(TablePlan(emb_table, "embedding", parent, table.rows, table.column_names, mapping, extra,
                                   parent=parent, sequence=table.sequence, max_key=self.db.max_key(table)))
        handled = {p.table for p in plans}
        for name, table in self.tables.items():
            if name in handled:
                continue
            if table.virtual:
                plans.append(TablePlan(name, "virtual", None, 0, [], note=(
                    "virtual table: its SQL is kept in agentdb_schema; its data lives in its shadow tables, "
                    "which are carried like any table")))
                continue
            collection = sanitize(name, taken, HOLDING_PREFIX)
            ftaken: set[str] = set()
            fields = {c: sanitize(c, ftaken, reserved=RESERVED_FIELD_NAMES | SYSTEM_COLUMNS)
                      for c in table.column_names}
            note = ""
            if name in KNOWN or name in EMBEDDING_TABLES:
                note = "unexpected shape (no INTEGER PRIMARY KEY id): carried as a holding table"
            elif table.rowid is None:
                note = "WITHOUT ROWID table: ids are row positions in primary-key order"
            plans.append(TablePlan(name, "holding", collection, table.rows, table.column_names, fields,
                                   sequence=table.sequence, max_key=self.db.max_key(table), note=note))
        plans.append(TablePlan("sqlite_master", "schema", SCHEMA, len(self.schema_objects), list(SCHEMA_COLUMNS),
                               {c: c for c in SCHEMA_COLUMNS},
                               max_key=max((o.rowid for o in self.schema_objects), default=0)))
        return plans

    def plan(self, table: str) -> TablePlan:
        for p in self.plans:
            if p.table == table:
                return p
        raise KeyError(table)

    @property
    def passes(self) -> list[TablePlan]:
        """The copy passes, in order: memory tables (with their embeddings), orphaned embeddings,
        holding tables, the schema."""
        order = {"memory": 0, "embedding": 1, "holding": 2, "schema": 3}
        return sorted((p for p in self.plans if p.role in order), key=lambda p: order[p.role])

    def views(self) -> list[dict[str, str]]:
        return [{"name": o.name, "sql": (o.sql or b"").decode("utf-8", "replace")}
                for o in self.schema_objects if o.type == "view"]

    def collection_fields(self, plan: TablePlan) -> dict[str, str]:
        if plan.role == "holding":
            return {f: "json" for f in plan.fields.values()}
        if plan.role == "schema":
            return dict(SCHEMA_FIELDS)
        return {}

    # -- rows → records -----------------------------------------------------------

    def _json_col(self, plan: TablePlan, column: str) -> bool:
        return plan.role in ("memory", "embedding") and column in JSON_COLUMNS

    def convert(self, plan: TablePlan, after: int | None, limit: int) -> Converted | None:
        """The next batch of ``plan``'s rows after key ``after`` (None: from the start)."""
        if plan.role == "schema":
            return self._convert_schema(after, limit)
        table = self.tables[plan.table]
        if plan.role == "embedding":
            return self._convert_orphans(plan, table, after, limit)
        rows = self.db.rows(table, plan.columns, after=after, limit=limit)
        if not rows:
            return None
        if plan.role == "holding":
            records = [Record(key, None, {plan.fields[c]: values.to_json(v) for c, v in zip(plan.columns, vals,
                                                                                             strict=True)})
                       for key, vals in rows]
            problems = [(plan.table, c, key, "text with NUL or invalid UTF-8 (escaped)")
                        for key, vals in rows for c, v in zip(plan.columns, vals, strict=True)
                        if v[0] == "text" and values.clean_text(v[1]) is None]
            return Converted(rows[0][0], rows[-1][0], len(rows), records, [], problems)
        return self._convert_memory(plan, table, rows)

    def _convert_memory(self, plan: TablePlan, table: SourceTable,
                        rows: list[tuple[int, list[SqlValue]]]) -> Converted:
        known = KNOWN[plan.table]
        emb_plan = next((p for p in self.plans if p.role == "embedding" and p.parent == plan.table), None)
        embeddings: dict[int, list[SqlValue]] = {}
        if emb_plan is not None:
            embeddings = self.db.rows_by_key(self.tables[emb_plan.table], emb_plan.columns, rows[0][0], rows[-1][0])
        records: list[Record] = []
        overflow: list[Record] = []
        problems: list[tuple[str, str, Any, str]] = []
        # Per column, once: (name, slot, kind, affinity, json column).
        layout: list[tuple[str, str | None, FieldType | str, str, bool]] = []
        for col in plan.columns:
            slot = plan.fields.get(col)
            kind: FieldType | str = values.METADATA if slot == values.METADATA else (
                known.fields[slot] if slot is not None and slot != values.ID else "")
            column = table.column(col)
            layout.append((col, slot, kind, column.affinity if column is not None else "BLOB",
                           self._json_col(plan, col)))
        for key, vals in rows:
            fields: dict[str, Any] = {}
            metadata: dict[str, Any] = {}
            for (col, slot, kind, aff, json_col), value in zip(layout, vals, strict=True):
                if slot is None:
                    overflow.append(_overflow(plan.table, key, col, value, "a column the collection has no field for"))
                    continue
                if slot == values.ID:
                    continue
                target, reason = values.convert(kind, value, aff, json_col)
                if reason is not None:
                    overflow.append(_overflow(plan.table, key, col, value, reason))
                    problems.append((plan.table, col, key, reason))
                if slot == values.METADATA:
                    metadata = target
                else:
                    fields[slot] = target
            vector = None
            emb = embeddings.get(key)
            if emb is not None and emb_plan is not None:
                emb_cols = dict(zip(emb_plan.columns, emb, strict=True))
                vector, reason = values.forward_vector(emb_cols["embedding"], self.dim)
                if reason is not None:
                    overflow.append(_overflow(emb_plan.table, key, "embedding", emb_cols["embedding"], reason))
                    problems.append((emb_plan.table, "embedding", key, reason))
                model = emb_cols.get("embedding_model")
                if model is not None and model != ("text", EMBEDDING_MODEL_DEFAULT.encode()):
                    overflow.append(_overflow(emb_plan.table, key, "embedding_model", model,
                                              "an embedding_model other than the default"))
                for col in emb_plan.extra_columns:
                    overflow.append(_overflow(emb_plan.table, key, col, emb_cols[col],
                                              "a column the collection has no field for"))
            records.append(Record(key, vector, fields, metadata))
        return Converted(rows[0][0], rows[-1][0], len(rows), records, overflow, problems)

    def _emb_key(self, plan: TablePlan) -> str:
        return next(c for c, s in plan.fields.items() if s == values.ID)

    def orphan_rows(self, plan: TablePlan, after: int | None, limit: int) -> list[tuple[int, list[SqlValue]]]:
        table = self.tables[plan.table]
        parent = quote(plan.parent or "")
        select = ", ".join(f"typeof({quote(c)}), {quote(c)}" for c in plan.columns)
        sql = (f"SELECT {table.rowid}, {select} FROM {quote(table.name)} WHERE {table.rowid} NOT IN "
               f"(SELECT id FROM {parent})" + (f" AND {table.rowid} > ?" if after is not None else "")
               + f" ORDER BY {table.rowid} LIMIT ?")
        params: list[Any] = ([after] if after is not None else []) + [limit]
        out = []
        for r in self.db.conn.execute(sql, params):
            vals = [(r[1 + 2 * i].decode(), r[2 + 2 * i]) for i in range(len(plan.columns))]
            out.append((int(r[0]), vals))
        return out

    def orphan_count(self, plan: TablePlan) -> int:
        table = self.tables[plan.table]
        return int(self.db.scalar(f"SELECT count(*) FROM {quote(table.name)} WHERE {table.rowid} NOT IN "
                                  f"(SELECT id FROM {quote(plan.parent or '')})"))

    def _convert_orphans(self, plan: TablePlan, table: SourceTable, after: int | None, limit: int) -> Converted | None:
        rows = self.orphan_rows(plan, after, limit)
        if not rows:
            return None
        overflow = [_overflow(plan.table, key, col, value, f"an embedding row whose {plan.parent} row does not exist")
                    for key, vals in rows for col, value in zip(plan.columns, vals, strict=True)]
        problems = [(plan.table, self._emb_key(plan), key, f"dangling reference: no {plan.parent} row {key}")
                    for key, _ in rows]
        return Converted(rows[0][0], rows[-1][0], len(rows), [], overflow, problems)

    def _schema_rows(self) -> list[tuple[int, list[SqlValue]]]:
        out = []
        for o in self.schema_objects:
            vals: list[SqlValue] = [("text", o.type.encode()), ("text", o.name.encode("utf-8", "surrogateescape")),
                                    ("text", o.tbl_name.encode("utf-8", "surrogateescape")),
                                    ("null", None) if o.sql is None else ("text", o.sql)]
            out.append((o.rowid, vals))
        return out

    def _convert_schema(self, after: int | None, limit: int) -> Converted | None:
        rows = [r for r in self._schema_rows() if after is None or r[0] > after][:limit]
        if not rows:
            return None
        by_table = {p.table: p for p in self.plans}
        records = []
        for key, vals in rows:
            obj = next(o for o in self.schema_objects if o.rowid == key)
            plan = by_table.get(obj.name) if obj.type == "table" else None
            fields: dict[str, Any] = {c: values.to_json(v) for c, v in zip(SCHEMA_COLUMNS, vals, strict=True)}
            fields["collection"] = plan.collection if plan is not None else None
            fields["columns"] = [[c, plan.fields.get(c)] for c in plan.columns] if plan is not None else None
            records.append(Record(key, None, fields))
        return Converted(rows[0][0], rows[-1][0], len(rows), records, [], [])

    # -- validation: source rows and their reconstruction -------------------------------

    def source_rows(self, plan: TablePlan, batch: int = 2000) -> Iterator[tuple[int, bytes]]:
        """``(key, row digest)`` of the source table, in key order."""
        from .checksum import row_digest

        if plan.role == "schema":
            for key, vals in self._schema_rows():
                yield key, row_digest([values.encode(v) for v in vals])
            return
        table = self.tables[plan.table]
        flags = [self._json_col(plan, c) for c in plan.columns]
        for key, vals in self.db.iter_rows(table, plan.columns, batch=batch):
            yield key, row_digest([values.encode(v, f) for v, f in zip(vals, flags, strict=True)])

    def target_row(self, plan: TablePlan, key: int, record: Record | None,
                   overflow: Mapping[str, Any]) -> bytes | None:
        """The digest of source row ``key`` as reconstructed from the target (None: no such row).
        ``overflow`` maps column → lossless JSON for this table and key."""
        from .checksum import row_digest

        if plan.role in ("holding", "schema"):
            if record is None:
                return None
            return row_digest([values.encode(values.from_json(record.fields.get(plan.fields[c])))
                               for c in plan.columns])
        table = self.tables[plan.table]
        if plan.role == "embedding":
            if (record is None or record.vector is None) and not overflow:
                return None
        elif record is None and not overflow:
            return None
        known = KNOWN[plan.parent if plan.role == "embedding" else plan.table]  # type: ignore[index]
        out = []
        for col in plan.columns:
            json_col = self._json_col(plan, col)
            if col in overflow:
                out.append(values.encode(values.from_json(overflow[col]), json_col))
                continue
            slot = plan.fields.get(col)
            if slot == values.ID:
                out.append(values.encode(("integer", key)))
            elif record is None or slot is None:
                out.append(values.missing())
            elif slot == "$vector":
                out.append(values.backward_vector(record.vector))
            elif slot == "$model":
                out.append(values.encode(("text", EMBEDDING_MODEL_DEFAULT.encode())))
            elif slot == values.METADATA:
                out.append(values.backward(values.METADATA, record.metadata, "", json_col))
            else:
                column = table.column(col)
                out.append(values.backward(known.fields[slot], record.fields.get(slot),
                                           column.affinity if column else "BLOB", json_col))
        return row_digest(out)

    # -- dry-run checks -------------------------------------------------------------------

    def dangling(self) -> list[dict[str, Any]]:
        """References to rows that do not exist (reported; the rows are carried anyway)."""
        checks: list[tuple[str, str, str, str]] = []  # (table, column, target table, extra condition)
        for emb_table, parent in EMBEDDING_TABLES.items():
            emb = KNOWN[parent].embedding
            assert emb is not None
            checks.append((emb_table, emb.key_column, parent, ""))
        checks += [("skill_links", "parent_skill_id", "skills", ""), ("skill_links", "child_skill_id", "skills", ""),
                   ("skills", "created_from_episode", "episodes", "")]
        types = {"episode": "episodes", "skill": "skills", "pattern": "reasoning_patterns",
                 "reasoning_pattern": "reasoning_patterns", "note": "notes", "fact": "facts"}
        for end in ("from", "to"):
            for type_name, target in types.items():
                checks.append(("causal_edges", f"{end}_memory_id", target,
                               f"AND {end}_memory_type = '{type_name}'"))
        out = []
        for table, column, target, extra in checks:
            t, tt = self.tables.get(table), self.tables.get(target)
            if t is None or tt is None or t.column(column) is None or tt.column("id") is None:
                continue
            rows = self.db.conn.execute(
                f"SELECT {t.rowid or 'NULL'}, {quote(column)} FROM {quote(table)} WHERE {quote(column)} IS NOT NULL "
                f"{extra} AND {quote(column)} NOT IN (SELECT id FROM {quote(target)}) ORDER BY 1").fetchall()
            if rows:
                out.append({"table": table, "column": column, "references": target, "count": len(rows),
                            "examples": [[r[0], r[1]] for r in rows[:5]]})
        return out

    def type_notes(self) -> list[dict[str, Any]]:
        """Holding-table values whose storage class differs from the column's declared affinity
        (carried exactly; reported so nobody is surprised)."""
        out = []
        for plan in self.plans:
            if plan.role != "holding":
                continue
            table = self.tables[plan.table]
            for col in table.columns:
                aff = col.affinity
                bad = {"INTEGER": "('real', 'text', 'blob')", "REAL": "('integer', 'text', 'blob')",
                       "TEXT": "('integer', 'real', 'blob')"}.get(aff)
                if bad is None:
                    continue
                n = self.db.scalar(f"SELECT count(*) FROM {quote(table.name)} WHERE typeof({quote(col.name)}) IN {bad}")
                if n:
                    out.append({"table": table.name, "column": col.name, "declared": col.decl_type, "count": int(n),
                                "reason": f"values that are not {aff} (kept exactly)"})
        return out


def rows_in(seq: Sequence[int]) -> list[list[int]]:
    """Compress sorted ints into ``[start, end]`` runs."""
    runs: list[list[int]] = []
    for v in seq:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return runs


def expand(runs: Sequence[Sequence[int]]) -> list[int]:
    return [v for a, b in runs for v in range(a, b + 1)]
