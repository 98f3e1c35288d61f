"""How collections map onto SQLite: DDL, column values, and the filter dialect.

Each collection ``name`` is a row table ``"name"`` plus, for cosine and l2, a
sqlite-vec ``vec0`` table ``"name__vec"`` whose rowids are the row table's
``_key``. The row table is the source of truth (exact float32 vectors, fields,
metadata); the vec0 table is only an index for unfiltered KNN.

A record without a vector has NULL ``_vector`` and ``_norm`` and no row in the
vec0 table (the triggers keep it that way when a vector is added or removed).

A collection without vectors (``dim=None``) is the row table alone, without the ``_norm`` and
``_vector`` columns: no vec0 table, no code table, no index on ``_norm``, no triggers. Reads
select ``NULL`` in the vector's place (:attr:`RowCodec.vector_col`).

Internal columns start with ``_`` and field names cannot (they start with a
letter), and ``id``/``vector``/``metadata`` are reserved field names, so field
columns never collide with internal ones.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from vectorstore.filters import MetaComparison, Op
from vectorstore.records import dump_json
from vectorstore.schema import CollectionSpec, FieldType, IdType, Metric, check_name

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = dt.timedelta(microseconds=1)

CATALOG = "vs_collections"
SCHEMA_VERSION = "vs_schema_version"
SEQUENCES = "vs_sequences"
#: Per collection with quantized codes: the generation of its last write (see quantized.py).
GENERATIONS = "vs_generations"

#: One migration: a statement, or a function of the collections in the catalog that returns
#: the statements to run (for changes to every collection's tables).
MigrationStep = str | Callable[[Sequence[CollectionSpec]], list[str]]


def _nullable_vectors(specs: Sequence[CollectionSpec]) -> list[str]:
    """Migration 3: records may have no vector. Collection tables created before it declare
    ``_vector`` and ``_norm`` NOT NULL, and their vec0 update trigger cannot handle NULL."""
    # (Migration 4 adds the code tables and their triggers.)
    return [statement for spec in specs for statement in rebuild_statements(spec, codes=False)]


def _drop_norm_index(specs: Sequence[CollectionSpec]) -> list[str]:
    """Migration 5: collections with a covering index (which leads with ``_norm``) lose the index
    on ``_norm`` alone, which only duplicated it."""
    return [f"DROP INDEX IF EXISTS {q(spec.name + '__norm')}" for spec in specs if has_vec_index(spec)]


def _quantized_codes(specs: Sequence[CollectionSpec]) -> list[str]:
    """Migration 4: the generations table, and a code table for each collection with a vec0 mirror."""
    return [GENERATIONS_DDL, *(s for spec in specs if has_vec_index(spec)
                               for s in [*code_statements(spec, complete=False), *code_triggers(spec),
                                         cover_index(spec)])]


def _rotated_codes(specs: Sequence[CollectionSpec]) -> list[str]:
    """Migration 6: sign bits are taken after a fixed rotation (see quantized.py). Every code is
    rewritten: the code tables are emptied and marked incomplete (searches stay exact meanwhile),
    under a new epoch (processes drop the codes they hold), and the backend's backfill writes
    them again when the store is opened."""
    return [statement for spec in specs if has_vec_index(spec) for statement in (
        f"DELETE FROM {q(codes_table(spec.name))}",
        f'UPDATE "{GENERATIONS}" SET complete = 0, gen = gen + 1, epoch = lower(hex(randomblob(8))) '
        f"WHERE name = {_literal(spec.name)}")]


#: Numbered migrations of vectorstore's own tables; each applied once, in order, in
#: one write transaction (so concurrent openers serialise and see the result).
MIGRATIONS: tuple[tuple[int, MigrationStep], ...] = (
    (1, f"""CREATE TABLE IF NOT EXISTS "{CATALOG}" (
            name TEXT PRIMARY KEY NOT NULL,
            spec TEXT NOT NULL CHECK (json_valid(spec)),
            created_at TEXT NOT NULL
        )"""),
    # The highest id ever allocated per int-id collection (AUTOINCREMENT semantics).
    (2, f"""CREATE TABLE IF NOT EXISTS "{SEQUENCES}" (
            name TEXT PRIMARY KEY NOT NULL,
            last INTEGER NOT NULL
        )"""),
    # Rebuilds every collection's row table once (see rebuild_statements); vec0 tables are kept.
    (3, _nullable_vectors),
    # Quantized codes for approximate search of large collections; the backend fills them in
    # after the migration (complete = 0 until then, and searches stay exact).
    (4, _quantized_codes),
    # The covering index serves min/max(_norm): the index on _norm alone goes.
    (5, _drop_norm_index),
    # Sign bits of rotated vectors: every code is written again (on open, by the backfill).
    (6, _rotated_codes),
)

_COLUMN_TYPES = {
    FieldType.TEXT: "TEXT",
    FieldType.INT: "INTEGER",
    FieldType.FLOAT: "REAL",
    FieldType.BOOL: "INTEGER",
    FieldType.DATE: "TEXT",
    FieldType.TIMESTAMP: "INTEGER",
    FieldType.JSON: "TEXT",
    FieldType.INT_ARRAY: "TEXT",
    FieldType.TEXT_ARRAY: "TEXT",
}


def q(name: str) -> str:
    """Quote a validated identifier (collection or field name, possibly with a ``__`` suffix)."""
    if '"' in name or "\x00" in name:  # pragma: no cover - names are validated upstream
        raise ValueError(f"refusing to quote identifier {name!r}")
    return f'"{name}"'


def vec_table(spec_name: str) -> str:
    return f"{spec_name}__vec"


#: sqlite-vec's vec0 refuses wider vectors. A constant of ours, not read from sqlite-vec, so whether
#: a collection has a vec0 table never changes under an existing file when sqlite-vec is upgraded.
VEC0_MAX_DIM = 8192


def has_vec_index(spec: CollectionSpec) -> bool:
    """Whether the collection has a vec0 mirror: vec0 has cosine and l2 but no inner-product
    metric, and at most VEC0_MAX_DIM dimensions. Without one, every search scans the row table."""
    return spec.dim is not None and spec.metric in (Metric.COSINE, Metric.L2) and spec.dim <= VEC0_MAX_DIM


def _table_statement(table: str, spec: CollectionSpec) -> str:
    id_col = "INTEGER" if spec.id_type is IdType.INT else "TEXT"
    cols = [
        "_key INTEGER PRIMARY KEY",
        f"id {id_col} NOT NULL UNIQUE",
        # Small typed columns before the blob so filters read them without following overflow pages.
        *(f"{q(name)} {_COLUMN_TYPES[kind]}" for name, kind in spec.fields.items()),
        # Both NULL for a record without a vector; neither in a collection without vectors.
        *(["_norm REAL", "_vector BLOB"] if spec.has_vectors else []),
        "_metadata TEXT NOT NULL",
        *(["CHECK ((_vector IS NULL) = (_norm IS NULL))"] if spec.has_vectors else []),
    ]
    return f"CREATE TABLE {q(table)} ({', '.join(cols)})"


def _table_companions(spec: CollectionSpec, codes: bool = True) -> list[str]:
    """The row table's indexes and, with a vec0 mirror, the triggers that keep the mirror in step.
    A collection without vectors has none."""
    if not spec.has_vectors:
        return []
    t = q(spec.name)
    # min/max norm in O(log n): the search's error bounds and range checks need them. The
    # covering index leads with _norm and serves them where it exists (a second index on _norm
    # alone cost ~15 % of a bulk load at 384 dims).
    out = [] if has_vec_index(spec) and codes else [norm_index(spec)]
    if has_vec_index(spec):
        v = q(vec_table(spec.name))
        # New rows are mirrored in bulk by the writer (faster than a per-row trigger); updates
        # and deletes, from any statement, by these triggers. Rows without a vector have no
        # mirror row: a vector that appears is inserted, one that becomes NULL is deleted.
        update = f"AFTER UPDATE OF _vector ON {t} WHEN"
        out += [
            f"CREATE TRIGGER {q(spec.name + '__au')} {update} OLD._vector IS NOT NULL AND NEW._vector IS NOT NULL "
            f"BEGIN UPDATE {v} SET embedding = NEW._vector WHERE rowid = NEW._key; END",
            f"CREATE TRIGGER {q(spec.name + '__av')} {update} OLD._vector IS NULL AND NEW._vector IS NOT NULL "
            f"BEGIN INSERT INTO {v} (rowid, embedding) VALUES (NEW._key, NEW._vector); END",
            f"CREATE TRIGGER {q(spec.name + '__an')} {update} OLD._vector IS NOT NULL AND NEW._vector IS NULL "
            f"BEGIN DELETE FROM {v} WHERE rowid = OLD._key; END",
            f"CREATE TRIGGER {q(spec.name + '__ad')} AFTER DELETE ON {t} WHEN OLD._vector IS NOT NULL "
            f"BEGIN DELETE FROM {v} WHERE rowid = OLD._key; END",
            *([*code_triggers(spec), cover_index(spec)] if codes else []),
        ]
    return out


def create_statements(spec: CollectionSpec) -> list[str]:
    """DDL for a new collection (run inside the catalog insert's transaction)."""
    check_name(spec.name)
    out = [_table_statement(spec.name, spec)]
    if has_vec_index(spec):
        metric = "cosine" if spec.metric is Metric.COSINE else "l2"
        out.append(f"CREATE VIRTUAL TABLE {q(vec_table(spec.name))} USING "
                   f"vec0(embedding float[{spec.dim}] distance_metric={metric})")
        out += code_statements(spec)
    return out + _table_companions(spec)


def rebuild_statements(spec: CollectionSpec, *, codes: bool = True) -> list[str]:
    """Rebuild an existing collection's row table with the current DDL, keeping every row and
    its ``_key`` (so the vec0 mirror, whose rowids are the keys, stays valid and is not touched).

    SQLite cannot change a column's constraints in place; this is its documented
    procedure: create the new table, copy, drop the old one, rename, then re-create the
    index and triggers (dropped with the old table; DROP TABLE fires no trigger, so the
    mirror keeps its rows). It copies the table once, in the migration's transaction.
    """
    check_name(spec.name)
    staging = "vs_rebuild"  # the vs_ prefix is vectorstore's: no collection or user table has it
    cols = ", ".join(["_key", "id", *map(q, spec.fields), *vector_columns(spec), "_metadata"])
    return [
        _table_statement(staging, spec),
        f"INSERT INTO {q(staging)} ({cols}) SELECT {cols} FROM {q(spec.name)} ORDER BY _key",
        f"DROP TABLE {q(spec.name)}",
        f"ALTER TABLE {q(staging)} RENAME TO {q(spec.name)}",
        *_table_companions(spec, codes),
    ]


def vector_columns(spec: CollectionSpec) -> list[str]:
    """The row table's vector columns: ``_norm, _vector``, or none for a collection without vectors."""
    return ["_norm", "_vector"] if spec.has_vectors else []


def codes_table(spec_name: str) -> str:
    return f"{spec_name}__codes"


GENERATIONS_DDL = f"""CREATE TABLE IF NOT EXISTS "{GENERATIONS}" (
    name TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL,
    epoch TEXT NOT NULL,
    complete INTEGER NOT NULL
)"""


def code_statements(spec: CollectionSpec, *, complete: bool = True) -> list[str]:
    """DDL for a collection's code table and its generation row (the tombstone triggers are
    table companions). ``complete=False`` (an existing collection gaining codes) leaves the codes
    to the backend's backfill; until then its searches stay exact. ``epoch`` tells a re-created
    collection from the one before it."""
    c = q(codes_table(spec.name))
    return [
        f"CREATE TABLE {c} (_key INTEGER PRIMARY KEY, _gen INTEGER NOT NULL, bits BLOB, i8 BLOB, scale REAL)",
        f"CREATE INDEX {q(spec.name + '__codes_gen')} ON {c} (_gen)",
        f'INSERT OR REPLACE INTO "{GENERATIONS}" (name, gen, epoch, complete) '
        f"VALUES ({_literal(spec.name)}, 0, lower(hex(randomblob(8))), {int(complete)})",
    ]


def code_triggers(spec: CollectionSpec) -> list[str]:
    """A record that loses its vector (deleted, or set to None) leaves a tombstone code row
    stamped with the current write's generation, which the writer has already taken."""
    t, c = q(spec.name), q(codes_table(spec.name))
    gen = f'(SELECT gen FROM "{GENERATIONS}" WHERE name = {_literal(spec.name)})'
    # An upsert, not INSERT OR REPLACE: the outer statement's conflict policy would override that.
    tombstone = (f"INSERT INTO {c} (_key, _gen, bits, i8, scale) VALUES (OLD._key, {gen}, NULL, NULL, NULL) "
                 "ON CONFLICT (_key) DO UPDATE SET _gen = excluded._gen, bits = NULL, i8 = NULL, scale = NULL")
    return [
        f"CREATE TRIGGER IF NOT EXISTS {q(spec.name + '__cd')} AFTER DELETE ON {t} WHEN OLD._vector IS NOT NULL "
        f"BEGIN {tombstone}; END",
        f"CREATE TRIGGER IF NOT EXISTS {q(spec.name + '__cn')} AFTER UPDATE OF _vector ON {t} "
        f"WHEN OLD._vector IS NOT NULL AND NEW._vector IS NULL BEGIN {tombstone}; END",
    ]


#: Field types small and scalar enough for the covering index.
_COVERED = (FieldType.TEXT, FieldType.INT, FieldType.FLOAT, FieldType.BOOL, FieldType.DATE, FieldType.TIMESTAMP)


def norm_index(spec: CollectionSpec) -> str:
    """The index on ``_norm`` of a collection without a covering index."""
    return f"CREATE INDEX {q(spec.name + '__norm')} ON {q(spec.name)} (_norm)"


def cover_index(spec: CollectionSpec) -> str:
    """An index holding ``_norm`` and every scalar field: a quantized search with a filter on those
    fields finds the matching keys in it, without reading the rows (each carries its vector)."""
    cols = ", ".join(["_norm", *(q(name) for name, kind in spec.fields.items() if kind in _COVERED)])
    return f"CREATE INDEX IF NOT EXISTS {q(spec.name + '__cover')} ON {q(spec.name)} ({cols})"


def _literal(name: str) -> str:
    # Collection names are validated identifiers (letters, digits, underscores).
    return "'" + name.replace("'", "''") + "'"


def drop_statements(name: str) -> list[str]:
    check_name(name)
    # Dropping the row table drops its triggers and index too.
    return [f"DROP TABLE IF EXISTS {q(vec_table(name))}", f"DROP TABLE IF EXISTS {q(codes_table(name))}",
            f"DROP TABLE IF EXISTS {q(name)}", f'DELETE FROM "{GENERATIONS}" WHERE name = {_literal(name)}']


# -- values --------------------------------------------------------------------


def _date_out(value: dt.date) -> str:
    return value.isoformat()


def _timestamp_out(value: dt.datetime) -> int:
    # Exact integer arithmetic: no float rounding of microseconds.
    return (value - EPOCH) // ONE_MICROSECOND


def _bool_out(value: bool) -> int:
    return 1 if value else 0


def _identity(value: Any) -> Any:
    return value


_TO_SQL: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.TEXT: _identity,
    FieldType.INT: _identity,
    FieldType.FLOAT: float,
    FieldType.BOOL: _bool_out,
    FieldType.DATE: _date_out,
    FieldType.TIMESTAMP: _timestamp_out,
    FieldType.JSON: dump_json,
    FieldType.INT_ARRAY: dump_json,
    FieldType.TEXT_ARRAY: dump_json,
}


def _timestamp_in(value: int) -> dt.datetime:
    return EPOCH + value * ONE_MICROSECOND


def _bool_in(value: int) -> bool:
    return bool(value)


_FROM_SQL: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.TEXT: _identity,
    FieldType.INT: _identity,
    FieldType.FLOAT: float,
    FieldType.BOOL: _bool_in,
    FieldType.DATE: dt.date.fromisoformat,
    FieldType.TIMESTAMP: _timestamp_in,
    FieldType.JSON: json.loads,
    FieldType.INT_ARRAY: json.loads,
    FieldType.TEXT_ARRAY: json.loads,
}


def to_sql(kind: FieldType, value: Any) -> Any:
    """A field value (already normalised by the core) as stored; None stays NULL."""
    return None if value is None else _TO_SQL[kind](value)


def from_sql(kind: FieldType, value: Any) -> Any:
    return None if value is None else _FROM_SQL[kind](value)


class RowCodec:
    """Converts between a batch's records and row-table tuples for one collection."""

    def __init__(self, spec: CollectionSpec) -> None:
        self.spec = spec
        self.names = list(spec.fields)
        self._out = [(name, _TO_SQL[kind]) for name, kind in spec.fields.items()]
        self._in = [_FROM_SQL[kind] for kind in spec.fields.values()]
        t = q(spec.name)
        field_cols = "".join(f"{q(n)}, " for n in self.names)
        #: The columns a read selects, in the order :meth:`decode` expects.
        self.select_cols = f"id, {field_cols}_metadata"
        #: What a read selects after :attr:`select_cols` for the vector: NULL without vector columns.
        self.vector_col = "_vector" if spec.has_vectors else "NULL"
        #: Whether rows carry ``_norm, _vector`` (see :meth:`encode`).
        self.has_vectors = spec.has_vectors
        vector_cols = vector_columns(spec)
        cols = ", ".join(["id", *map(q, self.names), *vector_cols, "_metadata"])
        marks = ", ".join(["?"] * (len(self.names) + 2 + len(vector_cols)))
        updates = ", ".join(f"{c} = excluded.{c}" for c in [*map(q, self.names), *vector_cols, "_metadata"])
        self.insert_sql = f"INSERT INTO {t} ({cols}) VALUES ({marks})"
        self.upsert_sql = f"{self.insert_sql} ON CONFLICT (id) DO UPDATE SET {updates}"

    def encode(self, ids: list[Any], fields: list[dict[str, Any]], norms: list[float | None],
               blobs: list[bytes | None], metadata: list[str]) -> list[tuple[Any, ...]]:
        """Rows for :attr:`insert_sql` / :attr:`upsert_sql` (``norms`` and ``blobs`` are not
        written to a collection without vectors)."""
        out = self._out
        if not self.has_vectors:
            return [(rid, *[None if (v := f[name]) is None else conv(v) for name, conv in out], meta)
                    for rid, f, meta in zip(ids, fields, metadata, strict=True)]
        return [
            (rid, *[None if (v := f[name]) is None else conv(v) for name, conv in out], norm, blob, meta)
            for rid, f, norm, blob, meta in zip(ids, fields, norms, blobs, metadata, strict=True)
        ]

    def decode_fields(self, values: tuple[Any, ...] | list[Any]) -> dict[str, Any]:
        """Field values (in ``self.names`` order) back to Python types."""
        return {name: None if v is None else conv(v) for name, conv, v in zip(self.names, self._in, values,
                                                                               strict=True)}


# -- filters -------------------------------------------------------------------


def json_path(keys: Sequence[str]) -> str:
    """``$."a"."b"``, always bound as a parameter. Quoted labels only ever name object
    members (never array elements, even for a key such as ``0``), as in the reference."""
    return "$" + "".join(f'."{key}"' for key in keys)


def _labels_can_name(keys: Sequence[str]) -> bool:
    """Whether a JSON path of quoted labels names exactly these keys: SQLite's path syntax has no
    escape for ``"`` in a label and reads ``\\`` as one, so keys holding either are walked with
    ``json_each`` instead (never spliced into a path)."""
    return not any('"' in key or "\\" in key for key in keys)


@attrs.frozen(slots=True)
class MetaAccess:
    """SQL for the JSON type and the SQL value of the metadata value at a path, and the
    parameters each needs (every use of ``type_sql`` / ``value_sql`` appends its own)."""

    type_sql: str
    value_sql: str
    params: tuple[str, ...]

    @classmethod
    def of(cls, keys: Sequence[str]) -> MetaAccess:
        if _labels_can_name(keys):
            # NULL from json_type (a missing key, also one under a value that is not an object)
            # becomes 'null', like a JSON null. One parameter: the path.
            return cls("ifnull(json_type(_metadata, ?), 'null')", "json_extract(_metadata, ?)", (json_path(keys),))
        # One json_each per level, each key a parameter compared with the member's key (an array's
        # integer keys never equal a text key); only objects are descended into.
        joins, conds = ["json_each(_metadata) AS vs_m1"], ["vs_m1.key = ?"]
        for level in range(2, len(keys) + 1):
            parent = f"vs_m{level - 1}"
            joins.append(f"json_each(CASE {parent}.type WHEN 'object' THEN {parent}.value ELSE '{{}}' END) "
                         f"AS vs_m{level}")
            conds.append(f"vs_m{level}.key = ?")
        last = f"vs_m{len(keys)}"
        walk = f"FROM {', '.join(joins)} WHERE {' AND '.join(conds)}"
        return cls(f"ifnull((SELECT {last}.type {walk}), 'null')", f"(SELECT {last}.atom {walk})", tuple(keys))


class SqliteDialect:
    """The :class:`vectorstore.sqlfilter.SqlDialect` for SQLite.

    Every fragment is two-valued (never NULL) so ``NOT`` is an exact complement.
    Arrays are JSON text, read with ``json_each``. Metadata conditions test the value's
    ``json_type`` before comparing its ``json_extract``: SQLite extracts JSON booleans
    as the integers 1 and 0, and the reference never equates true with 1.
    """

    placeholder = "?"

    def column(self, field: str) -> str:
        return q(check_name(field, "field"))

    def adapt(self, kind: FieldType, value: Any) -> Any:
        return to_sql(kind, value)

    def null_safe_eq(self, column: str, placeholder: str) -> str:
        # The parameter is never NULL here, so IS is plain equality that is false on NULL.
        return f"({column} IS {placeholder})"

    def array_overlap(self, column: str, kind: FieldType, values: tuple[Any, ...], params: list[Any]) -> str:
        distinct = list(dict.fromkeys(values))
        if not distinct:
            return "(1=0)"
        params.extend(distinct)
        marks = ", ".join(["?"] * len(distinct))
        return (f"({column} IS NOT NULL AND EXISTS (SELECT 1 FROM json_each({column}) "
                f"WHERE json_each.value IN ({marks})))")

    def array_contains(self, column: str, kind: FieldType, values: tuple[Any, ...], params: list[Any]) -> str:
        distinct = list(dict.fromkeys(values))
        if not distinct:
            return f"({column} IS NOT NULL)"
        params.extend(distinct)
        marks = ", ".join(["?"] * len(distinct))
        return (f"({column} IS NOT NULL AND (SELECT count(DISTINCT json_each.value) FROM json_each({column}) "
                f"WHERE json_each.value IN ({marks})) = {len(distinct)})")

    def in_array(self, column: str, kind: FieldType, values: list[Any], params: list[Any]) -> str:
        params.append(json.dumps(values, ensure_ascii=False))
        return f"({column} IS NOT NULL AND {column} IN (SELECT value FROM json_each(?)))"

    def metadata_condition(self, node: MetaComparison, params: list[Any]) -> str:
        access = MetaAccess.of(node.path)
        if node.op is Op.EXISTS or node.value is None:
            # $exists, and $eq / $ne None: missing or JSON null vs anything else.
            present = node.value if node.op is Op.EXISTS else node.op is Op.NE
            params.extend(access.params)
            return f"({access.type_sql} {'<>' if present else '='} 'null')"
        values = node.value if node.op in (Op.IN, Op.NIN) else (node.value,)
        equal = self._json_equal(access, values, params)
        return f"(NOT {equal})" if node.op in (Op.NE, Op.NIN) else equal

    def _json_equal(self, access: MetaAccess, values: Sequence[Any], params: list[Any]) -> str:
        """The value at the path equals one of ``values`` as JSON: by type, then by value
        (numbers numerically, whether stored as integer or real)."""
        bools = list(dict.fromkeys("true" if v else "false" for v in values if isinstance(v, bool)))
        texts = list(dict.fromkeys(v for v in values if isinstance(v, str)))
        numbers = list(dict.fromkeys(v for v in values if not isinstance(v, (bool, str))))
        parts = []
        if bools:
            params += [*access.params, *bools]
            parts.append(f"{access.type_sql} IN ({', '.join('?' * len(bools))})")
        for group, types in ((texts, "'text'"), (numbers, "'integer', 'real'")):
            if group:
                params += [*access.params, *access.params, *group]
                parts.append(f"({access.type_sql} IN ({types}) AND {access.value_sql} IN "
                             f"({', '.join('?' * len(group))}))")
        return "(" + " OR ".join(parts) + ")" if parts else "(1=0)"


DIALECT = SqliteDialect()
