"""The shared SQL compiler: values only ever travel as parameters."""

from __future__ import annotations

import re
from typing import Any

import pytest

import vectorstore as vs
from vectorstore.filters import parse_filter
from vectorstore.schema import CollectionSpec, FieldType
from vectorstore.sqlfilter import compile_filter

SPEC = CollectionSpec(name="films", dim=2, fields={"title": "text", "year": "int", "tags": "text[]"})


class Dialect:
    placeholder = "?"

    def column(self, field: str) -> str:
        return f'"{field}"'

    def adapt(self, kind: FieldType, value: Any) -> Any:
        return value

    def null_safe_eq(self, column: str, placeholder: str) -> str:
        return f"({column} IS {placeholder})"

    def array_overlap(self, column: str, kind: FieldType, values: tuple[Any, ...], params: list[Any]) -> str:
        params.extend(values)
        return f"overlap({column}, {', '.join('?' * len(values))})"

    def array_contains(self, column: str, kind: FieldType, values: tuple[Any, ...], params: list[Any]) -> str:
        params.extend(values)
        return f"contains({column}, {', '.join('?' * len(values))})"


@pytest.mark.parametrize("where", [
    {"title": "x'; DROP TABLE films;--"},
    {"title": {"$in": ["a'", "b\""]}, "year": {"$between": [1, 2]}},
    {"$or": [{"tags": {"$overlap": ["1 OR 1=1"]}}, {"$not": {"year": {"$gt": 3}}}]},
])
def test_values_are_parameters(where: dict[str, Any]) -> None:
    sql, params = compile_filter(parse_filter(where, SPEC), SPEC, Dialect())
    assert sql.count("?") == len(params)
    for value in params:
        if isinstance(value, str):
            assert value not in sql


def test_every_comparison_is_two_valued() -> None:
    sql, _ = compile_filter(parse_filter({"year": {"$gt": 3}}, SPEC), SPEC, Dialect())
    assert "IS NOT NULL" in sql
    sql, _ = compile_filter(parse_filter({"year": {"$nin": [3]}}, SPEC), SPEC, Dialect())
    assert "IS NULL OR" in sql


@pytest.mark.parametrize(("tree", "says"), [
    (vs.MetaComparison(("a\x00",), vs.Op.EQ, 1), "NUL"),
    (vs.MetaComparison(("a\ud800",), vs.Op.EQ, 1), "lone surrogate"),
    (vs.MetaComparison("abc", vs.Op.EQ, 1), "tuple of 1 to 8 keys"),  # type: ignore[arg-type]
    (vs.MetaComparison((), vs.Op.EQ, 1), "tuple of 1 to 8 keys"),
    (vs.MetaComparison(("",), vs.Op.EQ, 1), "non-empty strings"),
    (vs.MetaComparison((7,), vs.Op.EQ, 1), "non-empty strings"),  # type: ignore[arg-type]
    (vs.MetaComparison(("k",), "$regex", 1), "unknown operator '$regex'"),  # type: ignore[arg-type]
    (vs.Comparison("n", "$regex", 1), "unknown operator '$regex'"),  # type: ignore[arg-type]
    (vs.Or(9), "takes a tuple of filters"),  # type: ignore[arg-type]
    (vs.MetaComparison(("k",), vs.Op.GT, None), "does not apply to metadata"),  # (found by the fuzzer)
    (vs.And(()), "needs at least one condition"),
    (vs.Not(7), "takes filters"),  # type: ignore[arg-type]
])
def test_typed_trees_are_checked_like_dict_filters(tree: Any, says: str) -> None:
    """A typed tree with a path key no stored key can hold, or an unknown operator, raises
    InvalidFilter naming the problem (it raised ValueError, or reached the driver)."""
    spec = CollectionSpec(name="c", dim=2, fields={"n": "int"})
    with pytest.raises(vs.InvalidFilter, match=re.escape(says)):
        parse_filter(tree, spec)


def test_dict_children_of_typed_trees_are_parsed_as_dict_filters() -> None:
    """vs.Not({...}) and vs.And(({...},)) mix the two forms: the dicts are parsed as filters (they
    raised AttributeError)."""
    spec = CollectionSpec(name="c", dim=2, fields={"n": "int"})
    assert parse_filter(vs.Not({"n": 1}), spec) == vs.Not(vs.Comparison("n", vs.Op.EQ, 1))
    assert parse_filter(vs.And(({"n": {"$gt": 1}}, vs.Comparison("n", vs.Op.LT, 5))), spec) == vs.And(
        (vs.Comparison("n", vs.Op.GT, 1), vs.Comparison("n", vs.Op.LT, 5)))


@pytest.mark.parametrize("form", ["dict", "tree"])
def test_a_filter_nested_too_deep_is_invalid_not_a_recursion_error(form: str) -> None:
    spec = CollectionSpec(name="c", dim=2, fields={"n": "int"})
    where: Any = {"n": 1} if form == "dict" else vs.Comparison("n", vs.Op.EQ, 1)
    for _ in range(1000):
        where = {"$not": where} if form == "dict" else vs.Not(where)
    with pytest.raises(vs.InvalidFilter, match="deeper than 64 levels"):
        parse_filter(where, spec)


def test_long_and_or_lists_compile_to_shallow_sql() -> None:
    """1,000 terms joined by OR nest in groups of 16: SQLite refuses expressions deeper than 1,000."""
    where = parse_filter({"$or": [{"year": y} for y in range(1000)]}, SPEC)
    sql, params = compile_filter(where, SPEC, Dialect())
    assert len(params) == 1000
    depth = max_depth = 0
    for char in sql:
        depth += {"(": 1, ")": -1}.get(char, 0)
        max_depth = max(max_depth, depth)
    assert max_depth <= 6, max_depth
