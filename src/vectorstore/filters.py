"""The filter language: one typed tree, parsed once, evaluated or compiled per backend.

Dict form (MongoDB-like)::

    {"genre": "drama"}                                   # equality
    {"vote_average": {"$gte": 7}, "adult": False}        # implicit $and
    {"$or": [{"year": {"$lt": 1990}}, {"tags": {"$overlap": ["noir"]}}]}

NULL semantics (decided here, pinned by the conformance suite's filter cases,
``contracts/filters.toml``). A field that is missing from a record is NULL.
Every condition is two-valued: it is either true or false for a record, never
unknown, so ``$not`` is always the exact complement.

======================  =============================================================
``$eq`` v               equal; NULL never equals a value. ``$eq: None`` means "is NULL"
``$ne`` v               not equal; NULL *is* "not equal" to a value (IS DISTINCT FROM).
                        ``$ne: None`` means "is not NULL"
``$gt $gte $lt $lte``   comparison; NULL never matches
``$between`` [lo, hi]   ``lo <= x <= hi``, both ends inclusive; NULL never matches
``$in`` [v, ...]        equal to one of the values; NULL never matches; [] matches nothing
``$nin`` [v, ...]       equal to none of the values; NULL matches; [] matches everything
``$exists`` bool        the field is (not) NULL
``$overlap`` [v, ...]   array fields: shares at least one element; NULL never matches
``$contains`` [v, ...]  array fields: holds every listed element; NULL never matches
``$and $or $not``       combinators; ``$and``/``$or`` need at least one condition
======================  =============================================================

Metadata is free JSON, so it has no declared types; ``"metadata.<key>[.<key>...]"``
names a value inside it and takes ``$eq $ne $in $nin $exists`` with JSON scalars.
Values compare as JSON values: numbers numerically (``7 == 7.0``), strings exactly,
booleans only with booleans (``true != 1``); a missing key or a JSON ``null`` is
NULL, with the rules above. Keys are 1-64 characters of ``A-Z a-z 0-9 _ -``.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from vectorstore.errors import InvalidFilter, InvalidRecord
from vectorstore.records import coerce_field
from vectorstore.schema import CollectionSpec, FieldType


class Op(enum.StrEnum):
    EQ = "$eq"
    NE = "$ne"
    GT = "$gt"
    GTE = "$gte"
    LT = "$lt"
    LTE = "$lte"
    IN = "$in"
    NIN = "$nin"
    BETWEEN = "$between"
    EXISTS = "$exists"
    OVERLAP = "$overlap"
    CONTAINS = "$contains"


ORDERING_OPS = frozenset({Op.GT, Op.GTE, Op.LT, Op.LTE, Op.BETWEEN})
EQUALITY_OPS = frozenset({Op.EQ, Op.NE, Op.IN, Op.NIN})
ARRAY_OPS = frozenset({Op.OVERLAP, Op.CONTAINS})


@attrs.frozen(slots=True)
class Comparison:
    """``field <op> value``; ``value`` is already normalised to the field's type."""

    field: str
    op: Op
    value: Any = None


@attrs.frozen(slots=True)
class MetaComparison:
    """``metadata.<path> <op> value`` on the record's JSON metadata (see the module docs)."""

    path: tuple[str, ...]
    op: Op
    value: Any = None


@attrs.frozen(slots=True)
class And:
    children: tuple[Filter, ...]


@attrs.frozen(slots=True)
class Or:
    children: tuple[Filter, ...]


@attrs.frozen(slots=True)
class Not:
    child: Filter


@attrs.frozen(slots=True)
class MatchAll:
    """The empty filter: every record matches."""


Filter = Comparison | MetaComparison | And | Or | Not | MatchAll

META_PREFIX = "metadata."
META_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
META_OPS = frozenset({Op.EQ, Op.NE, Op.IN, Op.NIN, Op.EXISTS})

COMBINATORS = ("$and", "$or", "$not")


#: How deeply $and / $or / $not may nest (a filter is a tree, not a program).
MAX_DEPTH = 64
#: Conditions a filter may hold in all.
MAX_NODES = 100_000


def _check_size(where: object) -> None:
    """Walk ``where`` without recursion: too deep or too large is InvalidFilter (recursing into a
    filter nested a thousand levels deep would exhaust Python's stack)."""
    stack: list[tuple[object, int]] = [(where, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH or nodes > MAX_NODES:
            raise InvalidFilter(
                f"the filter nests $and / $or / $not deeper than {MAX_DEPTH} levels or holds more than "
                f"{MAX_NODES:,} conditions; flatten it (an $in list replaces many $or'ed equalities)")
        children: list[object] = []
        if isinstance(node, (And, Or)):
            children = list(node.children) if isinstance(node.children, (tuple, list)) else []
        elif isinstance(node, Not):
            children = [node.child]
        elif isinstance(node, Mapping):
            for key, value in node.items():
                if key in ("$and", "$or") and isinstance(value, (list, tuple)):
                    children.extend(value)
                elif key == "$not":
                    children.append(value)
        stack.extend((child, depth + 1) for child in children)


def parse_filter(where: object, spec: CollectionSpec) -> Filter:
    """Parse and validate ``where`` (a dict or a typed tree) against ``spec``."""
    if where is None:
        return MatchAll()
    _check_size(where)
    if isinstance(where, (Comparison, MetaComparison, And, Or, Not, MatchAll)):
        return _revalidate(where, spec)
    if not isinstance(where, Mapping):
        raise InvalidFilter(f"a filter must be a dict such as {{'year': {{'$gte': 2000}}}}, got {where!r}")
    return _parse_mapping(where, spec, "where")


def _parse_mapping(where: Mapping[Any, Any], spec: CollectionSpec, path: str) -> Filter:
    parts: list[Filter] = []
    for key, value in where.items():
        if not isinstance(key, str):
            raise InvalidFilter(f"{path}: filter keys must be strings, got {key!r}")
        if key == "$and" or key == "$or":
            parts.append(_parse_list(key, value, spec, f"{path}.{key}"))
        elif key == "$not":
            if not isinstance(value, Mapping):
                raise InvalidFilter(f"{path}.$not takes a filter dict, got {value!r}")
            parts.append(Not(_parse_mapping(value, spec, f"{path}.$not")))
        elif key.startswith("$"):
            raise InvalidFilter(
                f"{path}: unknown operator {key!r} at the top level; use a field name, or one of "
                f"{', '.join(COMBINATORS)}"
            )
        elif key.startswith(META_PREFIX):
            parts.extend(_parse_meta(key, value, f"{path}.{key}"))
        else:
            parts.extend(_parse_field(key, value, spec, f"{path}.{key}"))
    if not parts:
        return MatchAll()
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _parse_list(key: str, value: object, spec: CollectionSpec, path: str) -> Filter:
    if isinstance(value, (Mapping, str)) or not isinstance(value, Sequence):
        raise InvalidFilter(f"{path} takes a list of filter dicts, got {value!r}")
    if not value:
        raise InvalidFilter(f"{path} needs at least one condition; an empty {key} is ambiguous")
    children = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidFilter(f"{path}[{i}] must be a filter dict, got {item!r}")
        children.append(_parse_mapping(item, spec, f"{path}[{i}]"))
    return And(tuple(children)) if key == "$and" else Or(tuple(children))


def _field_type(name: str, spec: CollectionSpec, path: str) -> FieldType:
    kind = spec.fields.get(name)
    if kind is None:
        known = ", ".join(spec.fields) or "(none declared)"
        raise InvalidFilter(
            f"{path}: unknown field {name!r}; collection {spec.name!r} has the filterable fields: {known}"
        )
    return kind


def _parse_field(name: str, value: object, spec: CollectionSpec, path: str) -> list[Filter]:
    kind = _field_type(name, spec, path)
    if isinstance(value, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in value):
        out: list[Filter] = []
        for op_name, operand in value.items():
            try:
                op = Op(op_name)
            except ValueError:
                raise InvalidFilter(
                    f"{path}: unknown operator {op_name!r}; use one of {', '.join(o.value for o in Op)}"
                ) from None
            out.append(make_comparison(name, kind, op, operand, f"{path}.{op_name}"))
        return out
    return [make_comparison(name, kind, Op.EQ, value, path)]


def _meta_path(key: str, path: str) -> tuple[str, ...]:
    parts = tuple(key[len(META_PREFIX):].split("."))
    if not 1 <= len(parts) <= 8 or not all(META_KEY.fullmatch(p) for p in parts):
        raise InvalidFilter(
            f"{path}: metadata paths are 'metadata.key' or 'metadata.key.sub' (up to 8 keys of 1-64 "
            "characters A-Z a-z 0-9 _ -)"
        )
    return parts


def _parse_meta(key: str, value: object, path: str) -> list[Filter]:
    meta = _meta_path(key, path)
    if isinstance(value, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in value):
        out: list[Filter] = []
        for op_name, operand in value.items():
            try:
                op = Op(op_name)
            except ValueError:
                op = None
            if op not in META_OPS:
                raise InvalidFilter(
                    f"{path}: {op_name!r} does not apply to metadata; use one of "
                    f"{', '.join(sorted(o.value for o in META_OPS))} (declare a typed field for ranges)"
                )
            assert op is not None
            out.append(make_meta_comparison(meta, op, operand, f"{path}.{op_name}"))
        return out
    return [make_meta_comparison(meta, Op.EQ, value, path)]


def _meta_value(value: object, path: str) -> Any:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise InvalidFilter(f"{path}: {value} does not fit in 64 bits")
        return value
    if isinstance(value, float) and math.isfinite(value):
        if abs(value) >= 2.0**53:
            # Beyond 2**53 a float is not an exact integer everywhere (PostgreSQL jsonb compares
            # its shortest decimal form); ask for the integer that is meant.
            raise InvalidFilter(f"{path}: {value!r} is too large to compare exactly as a float; "
                                f"pass an int (e.g. {int(value)})")
        return value
    raise InvalidFilter(f"{path}: metadata filters compare JSON scalars (str, int, float, bool), got {value!r}")


#: Keys of a metadata path built as a typed tree: any text a JSON object key can hold, but NUL
#: (which PostgreSQL's jsonb refuses) and lone surrogates (not text), at most this long.
MAX_META_KEY = 256


def _check_meta_path(meta: object, path: str) -> tuple[str, ...]:
    if isinstance(meta, str) or not isinstance(meta, (tuple, list)) or not 1 <= len(meta) <= 8:
        raise InvalidFilter(f"{path}: a metadata path is a tuple of 1 to 8 keys, such as ('flags', 'hd'); "
                            f"got {meta!r}")
    for key in meta:
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_META_KEY:
            raise InvalidFilter(f"{path}: metadata path keys are non-empty strings of at most {MAX_META_KEY} "
                                f"characters; got {key!r}")
        if "\x00" in key:
            raise InvalidFilter(f"{path}: the metadata path key {key!r} holds a NUL character, which no stored "
                                "metadata key can hold; remove it")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidFilter(f"{path}: the metadata path key {key!r} is not valid text (a lone surrogate); "
                                "pass a proper string") from None
    return tuple(meta)


def make_meta_comparison(meta: tuple[str, ...], op: Op, operand: object, path: str) -> MetaComparison:
    meta = _check_meta_path(meta, path)
    if op not in META_OPS:
        raise InvalidFilter(f"{path}: {op.value!r} does not apply to metadata; use one of "
                            f"{', '.join(sorted(o.value for o in META_OPS))} (declare a typed field for ranges)")
    if op is Op.EXISTS:
        if not isinstance(operand, bool):
            raise InvalidFilter(f"{path} takes true or false, got {operand!r}")
        return MetaComparison(meta, op, operand)
    if op in (Op.IN, Op.NIN):
        if isinstance(operand, (str, bytes, Mapping)) or not isinstance(operand, (list, tuple, set, frozenset)):
            raise InvalidFilter(f"{path} takes a list of values, got {operand!r}")
        return MetaComparison(meta, op, tuple(_meta_value(v, f"{path}[{i}]") for i, v in enumerate(operand)))
    if operand is None:
        return MetaComparison(meta, op, None)
    return MetaComparison(meta, op, _meta_value(operand, path))


def make_comparison(name: str, kind: FieldType, op: Op, operand: object, path: str) -> Comparison:
    """Check that ``op`` applies to ``kind`` and normalise the operand."""
    if op is Op.EXISTS:
        if not isinstance(operand, bool):
            raise InvalidFilter(f"{path} takes true or false, got {operand!r}")
        return Comparison(name, op, operand)
    if kind is FieldType.JSON:
        raise InvalidFilter(f"{path}: json field {name!r} supports only $exists; declare a typed field to filter on it")
    if kind.is_array:
        if op not in ARRAY_OPS:
            raise InvalidFilter(
                f"{path}: {op.value} does not apply to the array field {name!r}; use $overlap (any of) "
                "or $contains (all of)"
            )
        items = operand if isinstance(operand, (list, tuple)) else [operand]
        element = FieldType.INT if kind is FieldType.INT_ARRAY else FieldType.TEXT
        return Comparison(name, op, tuple(_value(name, element, v, f"{path}[{i}]") for i, v in enumerate(items)))
    if op in ARRAY_OPS:
        raise InvalidFilter(f"{path}: {op.value} applies only to int[] and text[] fields; {name!r} is {kind.value}")
    if op in ORDERING_OPS and not kind.is_ordered:
        raise InvalidFilter(f"{path}: {op.value} does not apply to the {kind.value} field {name!r}; use $eq or $in")
    if op is Op.BETWEEN:
        if not isinstance(operand, (list, tuple)) or len(operand) != 2:
            raise InvalidFilter(f"{path} takes [low, high], got {operand!r}")
        low = _value(name, kind, operand[0], f"{path}[0]")
        high = _value(name, kind, operand[1], f"{path}[1]")
        return Comparison(name, op, (low, high))
    if op in (Op.IN, Op.NIN):
        if isinstance(operand, (str, bytes, Mapping)) or not isinstance(operand, (list, tuple, set, frozenset)):
            raise InvalidFilter(f"{path} takes a list of values, got {operand!r}")
        values = []
        for i, v in enumerate(operand):
            if v is None:
                raise InvalidFilter(
                    f"{path}[{i}] is None; to match missing values use {{'$exists': false}} or {{'$eq': None}}"
                )
            values.append(_value(name, kind, v, f"{path}[{i}]"))
        return Comparison(name, op, tuple(values))
    if operand is None:
        if op in (Op.EQ, Op.NE):
            return Comparison(name, op, None)
        raise InvalidFilter(f"{path}: {op.value} cannot compare with None; use $exists")
    if isinstance(operand, (list, tuple)) and op is Op.EQ:
        raise InvalidFilter(f"{path}: a list is not a {kind.value} value; to match any of several values use $in")
    return Comparison(name, op, _value(name, kind, operand, path))


def _value(name: str, kind: FieldType, value: object, path: str) -> Any:
    if value is None:
        raise InvalidFilter(f"{path}: None is not a value here; use $exists to match missing values")
    try:
        return coerce_field(name, kind, value, path)
    except InvalidRecord as exc:
        raise InvalidFilter(str(exc)) from None


def _op(op: object, path: str) -> Op:
    try:
        return Op(op)  # type: ignore[arg-type]  # (anything: a bad one is the error below)
    except ValueError:
        raise InvalidFilter(f"{path}: unknown operator {op!r}; use one of {', '.join(o.value for o in Op)}") from None


def _revalidate(node: Filter, spec: CollectionSpec) -> Filter:
    """A typed tree built by the caller is checked like a dict filter."""
    if isinstance(node, MatchAll):
        return node
    if isinstance(node, MetaComparison):
        operand: object = list(node.value) if isinstance(node.value, tuple) else node.value
        return make_meta_comparison(node.path, _op(node.op, "where.metadata"), operand, "where.metadata")
    if isinstance(node, Comparison):
        kind = _field_type(node.field, spec, "where")
        operand = node.value
        if node.op in (Op.IN, Op.NIN, Op.BETWEEN, *ARRAY_OPS) and isinstance(operand, tuple):
            operand = list(operand)
        return make_comparison(node.field, kind, _op(node.op, f"where.{node.field}"), operand, f"where.{node.field}")
    if isinstance(node, Not):
        return Not(_revalidate_child(node.child, spec, "Not"))
    if isinstance(node, (And, Or)):
        name = type(node).__name__
        if isinstance(node.children, (str, bytes, Mapping)) or not isinstance(node.children, (tuple, list)):
            raise InvalidFilter(f"{name}(...) takes a tuple of filters, such as {name}((f1, f2)); got "
                                f"{node.children!r}")
        if not node.children:
            raise InvalidFilter(f"{name}(()) needs at least one condition: an empty {name} is ambiguous")
        children = tuple(_revalidate_child(c, spec, name) for c in node.children)
        return And(children) if isinstance(node, And) else Or(children)
    raise InvalidFilter(f"a filter is a dict or a typed tree (Comparison, MetaComparison, And, Or, Not, "
                        f"MatchAll); got {node!r}")


def _revalidate_child(child: object, spec: CollectionSpec, parent: str) -> Filter:
    """A child of a typed tree: a typed node, or a dict filter (parsed as such)."""
    if isinstance(child, Mapping):
        return _parse_mapping(child, spec, f"{parent}(...)")
    if isinstance(child, (Comparison, MetaComparison, And, Or, Not, MatchAll)):
        return _revalidate(child, spec)
    raise InvalidFilter(f"{parent}(...) takes filters (typed nodes or dicts), got {child!r}")


# -- the reference evaluator ---------------------------------------------------


def _json_equal(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return isinstance(wanted, bool) and isinstance(stored, bool) and stored is wanted
    if isinstance(wanted, str) or isinstance(stored, str):
        return isinstance(wanted, str) and isinstance(stored, str) and stored == wanted
    if isinstance(stored, (int, float)) and isinstance(wanted, (int, float)):
        return stored == wanted
    return False


def _meta_matches(node: MetaComparison, metadata: Mapping[str, Any] | None) -> bool:
    value: Any = metadata
    for key in node.path:
        value = value.get(key) if isinstance(value, Mapping) else None
    op, operand = node.op, node.value
    if op is Op.EXISTS:
        return (value is not None) is operand
    if op is Op.EQ:
        return value is None if operand is None else _json_equal(value, operand)
    if op is Op.NE:
        return value is not None if operand is None else not _json_equal(value, operand)
    hit = any(_json_equal(value, v) for v in operand)
    return hit if op is Op.IN else not hit


def matches(node: Filter, fields: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> bool:
    """Evaluate a parsed filter against one record's fields and metadata (the reference semantics)."""
    if isinstance(node, MatchAll):
        return True
    if isinstance(node, And):
        return all(matches(c, fields, metadata) for c in node.children)
    if isinstance(node, Or):
        return any(matches(c, fields, metadata) for c in node.children)
    if isinstance(node, Not):
        return not matches(node.child, fields, metadata)
    if isinstance(node, MetaComparison):
        return _meta_matches(node, metadata)
    value = fields.get(node.field)
    op, operand = node.op, node.value
    if op is Op.EXISTS:
        return (value is not None) is operand
    if op is Op.EQ:
        return value is None if operand is None else (value is not None and value == operand)
    if op is Op.NE:
        return value is not None if operand is None else (value is None or value != operand)
    if op is Op.NIN:
        return value is None or value not in operand
    if value is None:
        return False
    if op is Op.IN:
        return value in operand
    if op is Op.GT:
        return bool(value > operand)
    if op is Op.GTE:
        return bool(value >= operand)
    if op is Op.LT:
        return bool(value < operand)
    if op is Op.LTE:
        return bool(value <= operand)
    if op is Op.BETWEEN:
        return bool(operand[0] <= value <= operand[1])
    if op is Op.OVERLAP:
        return any(v in value for v in operand)
    if op is Op.CONTAINS:
        return all(v in value for v in operand)
    raise AssertionError(f"unhandled operator {op}")  # pragma: no cover
