"""SQL for one collection, built once per (schema, spec, dialect) and cached.

Pure string building (no connection), so the SQL of both dialects is unit-tested
without a server. Identifiers go through :class:`psycopg.sql.Identifier`; values are
always parameters. Every statement text carries a short hash of the collection's
definition: prepared statements are keyed by text, so dropping a collection and
re-creating it with other column types can never reuse a stale prepared plan
("cached plan must not change result type").

A collection without vectors (``dim=None``) has no vector column (and no HNSW index): its
table is ``id, fields..., metadata``; reads select ``NULL`` in the vector's place, so every
read row keeps the layout ``id, vector, fields..., metadata``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int8

from vectorstore.filters import Filter, MetaComparison, Op
from vectorstore.records import dump_json
from vectorstore.schema import CollectionSpec, FieldType, IdType
from vectorstore.sqlfilter import compile_filter
from vectorstore_postgres.dialect import Dialect

#: Column types of typed fields. Text sorts and compares by code point (COLLATE "C"),
#: like Python strings.
FIELD_TYPES: dict[FieldType, str] = {
    FieldType.TEXT: 'text COLLATE "C"',
    FieldType.INT: "bigint",
    FieldType.FLOAT: "double precision",
    FieldType.BOOL: "boolean",
    FieldType.DATE: "date",
    FieldType.TIMESTAMP: "timestamptz",
    FieldType.JSON: "jsonb",
    FieldType.INT_ARRAY: "bigint[]",
    FieldType.TEXT_ARRAY: 'text[] COLLATE "C"',
}

#: Type names for binary COPY (psycopg's ``set_types``).
COPY_TYPES: dict[FieldType, str] = {
    FieldType.TEXT: "text",
    FieldType.INT: "int8",
    FieldType.FLOAT: "float8",
    FieldType.BOOL: "bool",
    FieldType.DATE: "date",
    FieldType.TIMESTAMP: "timestamptz",
    FieldType.JSON: "jsonb",
    FieldType.INT_ARRAY: "int8[]",
    FieldType.TEXT_ARRAY: "text[]",
}

ID_COLUMN = "id"
# "vector" and "metadata" are reserved field names, so these never collide with a field.
VECTOR_COLUMN = "vector"
METADATA_COLUMN = "metadata"


def table_name(collection: str) -> str:
    """``vs_c_<name>``: the vs_ prefix is reserved, so no user table is ever clobbered."""
    return f"vs_c_{collection}"


#: Collection tables move values to TOAST only when a row would not fit in a page otherwise:
#: vectors up to ~2,000 dimensions stay in the row. Measured on 10k x 768 (pgvector 0.8,
#: PostgreSQL 18): HNSW search ~10 % less server time, binary COPY ~35 % faster.
TOAST_TUPLE_TARGET = 8160


def index_name(collection: str) -> str:
    # A different prefix from tables: "vs_c_a_hnsw" could be the table of collection "a_hnsw".
    return f"vs_i_{collection}"


#: Declared field types with a B-tree index: fixed-size values a selective filter compares by
#: order or equality. Not text: a B-tree entry holds at most ~2.7 kB, and text fields carry whole
#: documents (an agent's output, an overview), which the index would refuse, failing the write.
#: Not bool (two values: the index would rarely beat a scan), json (no filter operator on it is
#: B-tree indexable) nor arrays (their operators need GIN, dearer to write).
INDEXED_FIELD_TYPES = frozenset({FieldType.INT, FieldType.FLOAT, FieldType.DATE, FieldType.TIMESTAMP})


def field_index_name(collection: str, field: str) -> str:
    """``vs_f_`` and 20 hex digits of md5("<collection>.<field>"): two 48-character names would
    not fit PostgreSQL's 63, and migration 6 computes the same name in SQL (md5 of the text)."""
    digest = hashlib.md5(f"{collection}.{field}".encode(), usedforsecurity=False).hexdigest()[:20]
    return f"vs_f_{digest}"


#: The array type an $in list of each scalar field type is bound as.
_ARRAY_TYPES = {FieldType.INT: "bigint[]", FieldType.FLOAT: "double precision[]", FieldType.TEXT: "text[]",
                FieldType.BOOL: "boolean[]", FieldType.DATE: "date[]", FieldType.TIMESTAMP: "timestamptz[]"}


class FilterDialect:
    """:class:`vectorstore.sqlfilter.SqlDialect` for PostgreSQL (psycopg placeholders)."""

    placeholder = "%s"

    def column(self, field: str) -> str:
        return sql.Identifier(field).as_string()

    def adapt(self, kind: FieldType, value: Any) -> Any:
        # Int8 pins the parameter type, so one prepared statement serves every value.
        return Int8(value) if kind is FieldType.INT else value

    def null_safe_eq(self, column: str, placeholder: str) -> str:
        # Two-valued (false, never NULL, for a NULL column) and still index-friendly.
        return f"({column} IS NOT NULL AND {column} = {placeholder})"

    def _array(self, column: str, kind: FieldType, values: tuple[Any, ...], params: list[Any], op: str) -> str:
        cast = "bigint[]" if kind is FieldType.INT_ARRAY else "text[]"
        params.append(list(values))
        return f"({column} IS NOT NULL AND {column} {op} {self.placeholder}::{cast})"

    def array_overlap(self, column: str, kind: FieldType, values: tuple[Any, ...], params: list[Any]) -> str:
        return self._array(column, kind, values, params, "&&")

    def array_contains(self, column: str, kind: FieldType, values: tuple[Any, ...], params: list[Any]) -> str:
        return self._array(column, kind, values, params, "@>")

    def in_array(self, column: str, kind: FieldType, values: list[Any], params: list[Any]) -> str:
        params.append(values)
        return f"({column} IS NOT NULL AND {column} = ANY({self.placeholder}::{_ARRAY_TYPES[kind]}))"

    def metadata_condition(self, node: MetaComparison, params: list[Any]) -> str:
        # One ``-> key`` per path key, the key a text parameter: ``->`` with text only ever
        # reads an object member (NULL under anything else), as in the reference, whereas
        # ``#>`` would read a key such as "0" as an index into an array.
        value = "(" + sql.Identifier(METADATA_COLUMN).as_string() + " -> %s::text" * len(node.path) + ")"
        params.extend(node.path)
        if node.op is Op.EXISTS or node.value is None:
            # $exists, and $eq / $ne None: missing (SQL NULL) or JSON null vs anything else.
            present = node.value if node.op is Op.EXISTS else node.op is Op.NE
            return f"(COALESCE(jsonb_typeof({value}), 'null') {'<>' if present else '='} 'null')"
        # jsonb equality is JSON-typed: numbers compare as numeric (7 = 7.0, and exactly at any
        # size), a string never equals a number, true never equals 1. NULL (missing) -> false.
        values = node.value if node.op in (Op.IN, Op.NIN) else (node.value,)
        params.append([Jsonb(v) for v in values])
        equal = f"COALESCE({value} = ANY(%s::jsonb[]), false)"
        return f"(NOT {equal})" if node.op in (Op.NE, Op.NIN) else f"({equal})"


FILTER_DIALECT = FilterDialect()


@attrs.frozen(slots=True)
class CollectionSQL:
    """Every statement the backend runs against one collection's table."""

    schema: str
    spec: CollectionSpec
    dialect: Dialect
    #: Search statements by (compiled filter condition, indexed, gated, vector, limits): composing SQL
    #: costs more than the query.
    _search_cache: dict[tuple[str, bool, bool, bool, tuple[int, int]], tuple[str, bool]] = attrs.field(
        factory=dict, init=False, eq=False, repr=False)

    # -- names -----------------------------------------------------------------

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier(self.schema, table_name(self.spec.name))

    @property
    def qualified_name(self) -> str:
        return self.table.as_string()

    @functools.cached_property
    def tag(self) -> str:
        digest = hashlib.sha1(dump_json(self.spec.to_dict()).encode()).hexdigest()[:12]
        return f"/* vs:{self.dialect.name}:{digest} */ "

    @functools.cached_property
    def read_fields(self) -> Callable[[Sequence[Any]], dict[str, Any]] | None:
        """The fields of a search row (``vs_path, id, vector, vs_distance, fields..., metadata``)
        as a dict, when every field reads back as stored (no timestamp to move to UTC), else
        None. Runs for every hit of every search: one field, the common shape, is read without
        ``dict(zip(...))`` (a third of the cost)."""
        if any(kind is FieldType.TIMESTAMP for kind in self.spec.fields.values()):
            return None
        names = tuple(self.spec.fields)
        if len(names) == 1:
            (name,) = names
            return lambda row: {name: row[4]}
        end = 4 + len(names)
        return lambda row: dict(zip(names, row[4:end], strict=False))  # (the slice has len(names) items)

    @property
    def has_vectors(self) -> bool:
        """Whether the table has a vector column (not for a collection without vectors)."""
        return self.spec.dim is not None

    @property
    def columns(self) -> list[str]:
        """The table's columns, in the order writes send them."""
        return [ID_COLUMN, *([VECTOR_COLUMN] if self.has_vectors else []), *self.spec.fields, METADATA_COLUMN]

    def _cols(self) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)

    def _select_list(self) -> sql.Composable:
        vector = (self.dialect.select_vector(sql.Identifier(VECTOR_COLUMN)) if self.has_vectors
                  else sql.SQL("NULL AS {}").format(sql.Identifier(VECTOR_COLUMN)))
        items: list[sql.Composable] = [sql.Identifier(ID_COLUMN), vector]
        items += [sql.Identifier(f) for f in self.spec.fields]
        items.append(sql.Identifier(METADATA_COLUMN))
        return sql.SQL(", ").join(items)

    def _render(self, composed: sql.Composable) -> str:
        return self.tag + composed.as_string()

    @property
    def id_array_cast(self) -> str:
        return "bigint[]" if self.spec.id_type is IdType.INT else "text[]"

    # -- DDL -------------------------------------------------------------------

    def create_table(self) -> str:
        id_type = "bigint" if self.spec.id_type is IdType.INT else 'text COLLATE "C"'
        cols: list[sql.Composable] = [sql.SQL("{} {} PRIMARY KEY").format(sql.Identifier(ID_COLUMN), sql.SQL(id_type))]
        if self.spec.dim is not None:
            # NULL for a record without a vector (HNSW indexes skip NULLs; searches exclude them).
            cols.append(sql.SQL("{} {}").format(sql.Identifier(VECTOR_COLUMN), self.dialect.column_type(self.spec.dim)))
        cols += [sql.SQL("{} {}").format(sql.Identifier(f), sql.SQL(FIELD_TYPES[k]))
                 for f, k in self.spec.fields.items()]
        cols.append(sql.SQL("{} jsonb NOT NULL DEFAULT '{{}}'").format(sql.Identifier(METADATA_COLUMN)))
        # Rows up to a page stay whole (PostgreSQL's default moves any value of a row over ~2 kB,
        # a 768-d vector already, to the TOAST table): every search reads its hits' vectors, and
        # a read from TOAST costs an index lookup and extra pages per row (see TOAST_TUPLE_TARGET).
        return sql.SQL("CREATE TABLE {} ({}) WITH (toast_tuple_target = {})").format(
            self.table, sql.SQL(", ").join(cols), sql.Literal(TOAST_TUPLE_TARGET)).as_string()

    @property
    def has_index(self) -> bool:
        """Whether the collection has an HNSW index (never without vectors)."""
        return self.spec.dim is not None and self.dialect.can_index(self.spec.metric, self.spec.dim)

    def create_index(self, *, if_not_exists: bool = False) -> str | None:
        if not self.has_index:
            return None
        verb = "CREATE INDEX IF NOT EXISTS" if if_not_exists else "CREATE INDEX"
        return sql.SQL(verb + " {} ON {} USING {} ({} {}) WITH (m = {}, ef_construction = {})").format(
            sql.Identifier(index_name(self.spec.name)), self.table, sql.Identifier(self.dialect.access_method),
            sql.Identifier(VECTOR_COLUMN), sql.SQL(self.dialect.opclass(self.spec.metric)),
            sql.Literal(self.spec.index.m), sql.Literal(self.spec.index.ef_construction),
        ).as_string()

    def create_field_indexes(self) -> list[str]:
        """A B-tree index per declared field of an :data:`INDEXED_FIELD_TYPES` type. With them a
        filter that passes few rows is answered exactly from those rows (the planner's choice,
        on the filter's values: filtered searches are not prepared), not by an HNSW scan
        discarding thousands of rows that fail the filter."""
        return [sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                    sql.Identifier(field_index_name(self.spec.name, field)), self.table, sql.Identifier(field)
                ).as_string()
                for field in self._indexed_fields]

    def drop_field_indexes(self) -> list[str]:
        """For a bulk load: maintaining ten B-trees row by row made a 50k-row COPY ~40 % slower,
        building them afterwards takes a fraction of that."""
        return [sql.SQL("DROP INDEX IF EXISTS {}").format(
                    sql.Identifier(self.schema, field_index_name(self.spec.name, field))).as_string()
                for field in self._indexed_fields]

    @property
    def _indexed_fields(self) -> list[str]:
        return [field for field, kind in self.spec.fields.items() if kind in INDEXED_FIELD_TYPES]

    def drop_index(self) -> str:
        # IF EXISTS: a bulk load (or an interrupted one) may have dropped it already.
        return sql.SQL("DROP INDEX IF EXISTS {}").format(
            sql.Identifier(self.schema, index_name(self.spec.name))).as_string()

    @property
    def qualified_index_name(self) -> str:
        return sql.Identifier(self.schema, index_name(self.spec.name)).as_string()

    def estimate_rows_and_index(self) -> str:
        """The size gate's row estimate, and whether the HNSW index exists (a bulk load drops it)."""
        return sql.SQL("SELECT {}, to_regclass({}) IS NOT NULL").format(
            self._size_gate(), sql.Literal(self.qualified_index_name)).as_string()

    def analyze(self) -> str:
        return sql.SQL("ANALYZE {}").format(self.table).as_string()

    def estimate_rows(self) -> str:
        return sql.SQL("SELECT {}").format(self._size_gate()).as_string()

    def count_rows(self) -> str:
        """The exact row count (for budgets that a stale estimate would make too small)."""
        return sql.SQL("SELECT count(*) FROM {}").format(self.table).as_string()

    def drop_table(self) -> str:
        return sql.SQL("DROP TABLE IF EXISTS {}").format(self.table).as_string()

    # -- writes ----------------------------------------------------------------

    def _value_placeholders(self) -> sql.Composable:
        marks = ["%s", *([self.dialect.vector_param()] if self.has_vectors else [])]
        for kind in self.spec.fields.values():
            marks.append("%s::bigint[]" if kind is FieldType.INT_ARRAY
                         else "%s::text[]" if kind is FieldType.TEXT_ARRAY else "%s")
        marks.append("%s")
        return sql.SQL(", ").join(sql.SQL(m) for m in marks)

    def _on_conflict_update(self) -> sql.Composable:
        sets = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in self.columns[1:])
        return sql.SQL("ON CONFLICT ({}) DO UPDATE SET {}").format(sql.Identifier(ID_COLUMN), sets)

    @functools.cached_property
    def upsert_row(self) -> str:
        return self._render(sql.SQL("INSERT INTO {} ({}) VALUES ({}) {}").format(
            self.table, self._cols(), self._value_placeholders(), self._on_conflict_update()))

    @functools.cached_property
    def insert_row(self) -> str:
        return self._render(sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING RETURNING {}").format(
            self.table, self._cols(), self._value_placeholders(), sql.Identifier(ID_COLUMN),
            sql.Identifier(ID_COLUMN)))

    def create_stage(self, stage: str) -> str:
        return sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) WITH (toast_tuple_target = {}) "
                       "ON COMMIT DROP").format(sql.Identifier(stage), self.table,
                                                sql.Literal(TOAST_TUPLE_TARGET)).as_string()

    def copy_stage(self, stage: str) -> str:
        return self._copy_into(sql.Identifier(stage))

    def copy_table(self) -> str:
        """COPY straight into the collection's table (a batch none of whose ids exist yet)."""
        return self._copy_into(self.table)

    def _copy_into(self, target: sql.Identifier) -> str:
        fmt = sql.SQL(" (FORMAT BINARY)") if self.dialect.copy_format == "binary" else sql.SQL("")
        return sql.SQL("COPY {} ({}) FROM STDIN{}").format(target, self._cols(), fmt).as_string()

    def any_id_between(self) -> str:
        """Whether an id in ``[low, high]`` exists: one probe of the primary key (text ids are
        ``COLLATE "C"``, which orders like Python's ``str``)."""
        return sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {} BETWEEN %s AND %s)").format(
            self.table, sql.Identifier(ID_COLUMN)).as_string()

    def any_id_exists(self) -> str:
        return sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {} = ANY(%s::{}))").format(
            self.table, sql.Identifier(ID_COLUMN), sql.SQL(self.id_array_cast)).as_string()

    def copy_types(self, vector_type: str) -> list[str]:
        id_type = "int8" if self.spec.id_type is IdType.INT else "text"
        vector = [vector_type] if self.has_vectors else []
        return [id_type, *vector, *(COPY_TYPES[k] for k in self.spec.fields.values()), "jsonb"]

    def merge_stage(self, stage: str, *, replace: bool) -> str:
        conflict = self._on_conflict_update() if replace else sql.SQL(
            "ON CONFLICT ({}) DO NOTHING RETURNING {}").format(sql.Identifier(ID_COLUMN), sql.Identifier(ID_COLUMN))
        return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} {}").format(
            self.table, self._cols(), self._cols(), sql.Identifier(stage), conflict).as_string()

    def drop_stage(self, stage: str) -> str:
        return sql.SQL("DROP TABLE {}").format(sql.Identifier(stage)).as_string()

    @functools.cached_property
    def delete_ids(self) -> str:
        return self._render(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s::{})").format(
            self.table, sql.Identifier(ID_COLUMN), sql.SQL(self.id_array_cast)))

    def delete_where(self, where: Filter) -> tuple[str, list[Any]]:
        cond, params = compile_filter(where, self.spec, FILTER_DIALECT)
        return self._render(sql.SQL("DELETE FROM {} WHERE {}").format(self.table, sql.SQL(cond))), params

    # -- reads -----------------------------------------------------------------

    def count(self, where: Filter) -> tuple[str, list[Any]]:
        cond, params = compile_filter(where, self.spec, FILTER_DIALECT)
        return self._render(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(self.table, sql.SQL(cond))), params

    @functools.cached_property
    def get(self) -> str:
        return self._render(sql.SQL("SELECT {} FROM {} WHERE {} = ANY(%s::{})").format(
            self._select_list(), self.table, sql.Identifier(ID_COLUMN), sql.SQL(self.id_array_cast)))

    @functools.cached_property
    def page_first(self) -> str:
        return self._render(sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT %s").format(
            self._select_list(), self.table, sql.Identifier(ID_COLUMN)))

    @functools.cached_property
    def page_after(self) -> str:
        return self._render(sql.SQL("SELECT {} FROM {} WHERE {} > %s ORDER BY {} LIMIT %s").format(
            self._select_list(), self.table, sql.Identifier(ID_COLUMN), sql.Identifier(ID_COLUMN)))

    def page_where(self, where: Filter, after: bool) -> tuple[str, list[Any]]:
        """A filtered page; parameters: [after,] filter values..., limit."""
        cond, params = compile_filter(where, self.spec, FILTER_DIALECT)
        if after:
            cond = f"{sql.Identifier(ID_COLUMN).as_string()} > %s AND {cond}"
        return self._render(sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %s").format(
            self._select_list(), self.table, sql.SQL(cond), sql.Identifier(ID_COLUMN))), params

    # -- search ----------------------------------------------------------------

    def _size_gate(self) -> sql.Composable:
        # The planner's row estimate, or the live-tuple counter when that is higher (a
        # table filled since its last ANALYZE). Evaluated once per statement, as an
        # InitPlan: the branch whose gate is false is never executed.
        return sql.SQL(
            "(SELECT GREATEST(c.reltuples, pg_stat_get_live_tuples(c.oid)) FROM pg_class c WHERE c.oid = {}::regclass)"
        ).format(sql.Literal(self.qualified_name))

    def _search_list(self, vector: bool, distance: sql.Composable) -> sql.Composable:
        """``id, vector (or NULL), distance AS vs_distance, fields..., metadata``."""
        vec = sql.Identifier(VECTOR_COLUMN)
        assert self.spec.dim is not None, "a collection without vectors is never searched"
        items: list[sql.Composable] = [
            sql.Identifier(ID_COLUMN),
            self.dialect.select_vector(vec) if vector
            else sql.SQL("NULL::{}").format(self.dialect.column_type(self.spec.dim)),
            sql.SQL("{} AS vs_distance").format(distance),
        ]
        items += [sql.Identifier(f) for f in self.spec.fields]
        items.append(sql.Identifier(METADATA_COLUMN))
        return sql.SQL(", ").join(items)

    def _exact_branch(self, cond: str, gated: bool, limit: int) -> sql.Composable:
        gate = sql.SQL("{} < %s AND ").format(self._size_gate()) if gated else sql.SQL("")
        # The vectors come back: the hits are ranked on their float64 distances.
        # "+ 0" makes the ordering expression one no index can serve: otherwise the
        # planner may walk the (approximate) HNSW index and add an Incremental Sort on
        # id, and the "exact" search would silently be approximate.
        return sql.SQL("SELECT 0 AS vs_path, {} FROM {} WHERE {}{} IS NOT NULL AND {} ORDER BY {} + 0, {} LIMIT {}"
                       ).format(self._search_list(True, sql.SQL("NULL::float8")), self.table, gate,
                                sql.Identifier(VECTOR_COLUMN), sql.SQL(cond),
                                self.dialect.distance(self.spec.metric, sql.Identifier(VECTOR_COLUMN)),
                                sql.Identifier(ID_COLUMN), sql.Literal(int(limit)))

    def _index_branch(self, cond: str, gated: bool, vector: bool, limit: int) -> sql.Composable:
        # The server's distance comes back (and the vector only when asked for): no vector
        # crosses the wire (nor is read from TOAST) just to be scored again. ORDER BY the
        # output column is ORDER BY the operator expression, which the HNSW index serves.
        gate = sql.SQL("{} >= %s AND ").format(self._size_gate()) if gated else sql.SQL("")
        distance = self.dialect.distance(self.spec.metric, sql.Identifier(VECTOR_COLUMN))
        return sql.SQL(
            "SELECT 1 AS vs_path, {} FROM {} WHERE {}{} IS NOT NULL AND {} ORDER BY vs_distance LIMIT {}").format(
            self._search_list(vector, distance), self.table, gate, sql.Identifier(VECTOR_COLUMN), sql.SQL(cond),
            sql.Literal(int(limit)))

    def search(self, where: Filter, *, indexed: bool, limits: tuple[int, int], gated: bool = True,
               vector: bool = False) -> tuple[str, list[Any], bool]:
        """The search statement and its filter params.

        Returns ``(sql, filter_params, uses_index)``. Every statement's columns are
        ``vs_path, id, vector, vs_distance, fields..., metadata``; ``vs_path`` says which
        branch produced a row: 0, the exact branch (vectors, no distance: the caller ranks
        them in float64), or 1, the index branch (the server's distance; the vector only
        with ``vector=True``). ``limits`` are the rows each branch returns, (exact, index).
        With ``uses_index`` the statement is a UNION ALL of an exact branch (run when the
        table is small) and an index branch; its parameters are ``[gate, *filter, vector,
        vector, gate, *filter]``. With ``gated=False`` (the caller knows the table is large)
        it is the index branch alone, ``[vector, *filter]``; the exact branch alone
        (``uses_index`` False) takes ``[*filter, vector]``. Rows without a vector are never
        candidates.

        The limits are written into the statement (integers, as ``sql.Literal``), not sent
        as parameters: with ``LIMIT $n`` the server cannot cost a prepared statement's
        generic plan (an unknown LIMIT reads as a tenth of the table), finds it far dearer
        than a plan for the actual limit, and so plans the statement again on every
        execution (``pg_prepared_statements.custom_plans``); measured ~0.15 ms of server
        time per search at 10k x 768, ~15 %. One statement per limit is prepared instead.
        """
        cond, params = compile_filter(where, self.spec, FILTER_DIALECT)
        key = (cond, indexed, gated, vector, limits)
        found = self._search_cache.get(key)
        if found is None:
            if len(self._search_cache) >= 512:  # many distinct filter shapes: start over
                self._search_cache.clear()
            found = self._search_cache[key] = self._search_statement(cond, indexed, gated, vector, limits)
        return found[0], params, found[1]

    def _search_statement(self, cond: str, indexed: bool, gated: bool, vector: bool,
                          limits: tuple[int, int]) -> tuple[str, bool]:
        order = self.dialect.index_order(self.spec.metric, sql.Identifier(VECTOR_COLUMN))
        if not indexed or order is None or not self.has_index:
            return self._render(self._exact_branch(cond, gated=False, limit=limits[0])), False
        index_branch = self._index_branch(cond, gated, vector, limits[1])
        if not gated:
            return self._render(index_branch), True
        statement = sql.SQL("({}) UNION ALL ({})").format(
            self._exact_branch(cond, gated=True, limit=limits[0]), index_branch)
        return self._render(statement), True
