"""Compile a parsed filter to a parameterised SQL condition.

Shared by the SQL backends; each supplies a :class:`SqlDialect` for the few
places SQL engines differ (placeholders, null-safe equality, arrays, how a
value is sent). Values always travel as parameters; column names come from
validated field names and are quoted.

Every condition compiles to a two-valued expression (never NULL), matching the
reference evaluator in :mod:`vectorstore.filters`.
"""

from __future__ import annotations

from typing import Any, Protocol

from vectorstore.filters import And, Comparison, Filter, MatchAll, MetaComparison, Not, Op, Or
from vectorstore.schema import CollectionSpec, FieldType

_CMP = {Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}
#: $in / $nin lists longer than this are bound as one array parameter (SqlDialect.in_array).
LIST_AS_ARRAY = 64


class SqlDialect(Protocol):
    placeholder: str

    def column(self, field: str) -> str:
        """The quoted column expression for ``field``."""

    def adapt(self, kind: FieldType, value: Any) -> Any:
        """The parameter value sent for a scalar of type ``kind``."""

    def null_safe_eq(self, column: str, placeholder: str) -> str:
        """``column`` equals the parameter, false (not NULL) when column is NULL."""

    def array_overlap(self, column: str, kind: FieldType, values: tuple[Any, ...],
                      params: list[Any]) -> str:
        """True when the array column shares an element with ``values`` (column not NULL)."""

    def array_contains(self, column: str, kind: FieldType, values: tuple[Any, ...],
                       params: list[Any]) -> str:
        """True when the array column holds every element of ``values`` (column not NULL)."""

    def metadata_condition(self, node: MetaComparison, params: list[Any]) -> str:
        """A two-valued condition on the record's JSON metadata with the semantics of
        :func:`vectorstore.filters.matches` (JSON-typed equality; missing or null = NULL)."""

    def in_array(self, column: str, kind: FieldType, values: list[Any], params: list[Any]) -> str:
        """``column`` (not NULL) equals one of ``values`` (adapted), the list bound as ONE parameter:
        used for lists longer than :data:`LIST_AS_ARRAY` (a parameter per value would meet a
        driver's or server's parameter limit: 32,767 on PostgreSQL's protocol, 32,766 in SQLite)."""


def compile_filter(node: Filter, spec: CollectionSpec, dialect: SqlDialect) -> tuple[str, list[Any]]:
    """Return ``(sql, params)``; ``sql`` is ``"TRUE"``-like for the empty filter."""
    params: list[Any] = []
    sql = _compile(node, spec, dialect, params)
    return sql, params


def _compile(node: Filter, spec: CollectionSpec, d: SqlDialect, params: list[Any]) -> str:
    if isinstance(node, MatchAll):
        return "1=1"
    if isinstance(node, (And, Or)):
        parts = [_compile(c, spec, d, params) for c in node.children]
        return _balanced(parts, " AND " if isinstance(node, And) else " OR ")
    if isinstance(node, Not):
        return "(NOT " + _compile(node.child, spec, d, params) + ")"
    if isinstance(node, MetaComparison):
        return d.metadata_condition(node, params)
    return _comparison(node, spec.fields[node.field], d, params)


#: Terms joined flat in one group; longer lists are nested in groups of this size, so the
#: expression's depth grows with the logarithm of the terms (a chain of 1,000 ORs exceeds
#: SQLite's maximum expression depth, 1,000).
GROUP = 16


def _balanced(parts: list[str], joiner: str) -> str:
    while len(parts) > GROUP:
        parts = ["(" + joiner.join(parts[i:i + GROUP]) + ")" for i in range(0, len(parts), GROUP)]
    return "(" + joiner.join(parts) + ")"


def _comparison(node: Comparison, kind: FieldType, d: SqlDialect, params: list[Any]) -> str:
    col = d.column(node.field)
    ph = d.placeholder
    op, value = node.op, node.value
    if op is Op.EXISTS:
        return f"({col} IS NOT NULL)" if value else f"({col} IS NULL)"
    if op is Op.OVERLAP:
        return d.array_overlap(col, kind, value, params)
    if op is Op.CONTAINS:
        return d.array_contains(col, kind, value, params)
    if op is Op.EQ:
        if value is None:
            return f"({col} IS NULL)"
        params.append(d.adapt(kind, value))
        return d.null_safe_eq(col, ph)
    if op is Op.NE:
        if value is None:
            return f"({col} IS NOT NULL)"
        params.append(d.adapt(kind, value))
        return f"(NOT {d.null_safe_eq(col, ph)})"
    if op in (Op.IN, Op.NIN):
        if not value:
            return "(1=0)" if op is Op.IN else "(1=1)"
        if len(value) > LIST_AS_ARRAY:
            member = d.in_array(col, kind, [d.adapt(kind, v) for v in value], params)
            return member if op is Op.IN else f"(NOT {member})"
        params.extend(d.adapt(kind, v) for v in value)
        listed = ", ".join([ph] * len(value))
        if op is Op.IN:
            return f"({col} IS NOT NULL AND {col} IN ({listed}))"
        return f"({col} IS NULL OR {col} NOT IN ({listed}))"
    if op is Op.BETWEEN:
        params.append(d.adapt(kind, value[0]))
        params.append(d.adapt(kind, value[1]))
        return f"({col} IS NOT NULL AND {col} >= {ph} AND {col} <= {ph})"
    params.append(d.adapt(kind, value))
    return f"({col} IS NOT NULL AND {col} {_CMP[op]} {ph})"
