"""The shared SQL compiler: values only ever travel as parameters."""

from __future__ import annotations

from typing import Any

import pytest

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
