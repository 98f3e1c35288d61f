"""Collection definitions: metric, field types, index parameters, names.

Everything here is validated once, at construction, so backends receive
definitions they can trust.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any

import attrs

from vectorstore.errors import InvalidName, InvalidSchema

#: Collection and field names: lower-case ASCII identifiers. Backends build table
#: and column names from them, so the rule is strict enough to be safe unquoted
#: in SQLite and PostgreSQL (they are still quoted everywhere).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,47}$")

#: Field names the record itself uses; a field may not shadow them.
RESERVED_FIELD_NAMES = frozenset({"id", "vector", "metadata", "distance", "similarity"})
#: Column names a backend keeps for itself (PostgreSQL's system columns, SQLite's rowid aliases):
#: new collections may not use them as fields, so a store can move between backends.
SYSTEM_COLUMNS = frozenset({"xmin", "xmax", "cmin", "cmax", "ctid", "tableoid", "oid", "rowid"})

MAX_DIM = 16000


def check_name(name: object, what: str = "collection") -> str:
    """Return ``name`` if it is a valid collection or field name, else raise InvalidName."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"invalid {what} name {name!r}: use 1-48 characters of a-z, 0-9 and _, "
            "starting with a letter (for example 'movie_embeddings')"
        )
    if name.startswith("vs_") or "__" in name:
        raise InvalidName(
            f"invalid {what} name {name!r}: names starting with 'vs_' or containing '__' "
            "are reserved for vectorstore's own tables; choose another name"
        )
    return name


class Metric(enum.StrEnum):
    """Distance metric of a collection.

    Scores are defined once here and are identical on every backend
    (conformance: ``test_scores_match_numpy_reference``):

    ========================  ======================  ===========================
    metric                    distance                similarity
    ========================  ======================  ===========================
    ``cosine``                ``1 - cos(q, x)``       ``cos(q, x)``
    ``l2``                    ``||q - x||``           ``1 / (1 + distance)``
    ``inner_product``         ``-(q . x)``            ``q . x``
    ========================  ======================  ===========================
    """

    COSINE = "cosine"
    L2 = "l2"
    INNER_PRODUCT = "inner_product"

    @classmethod
    def parse(cls, value: object) -> Metric:
        if isinstance(value, Metric):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            choices = ", ".join(repr(m.value) for m in cls)
            raise InvalidSchema(f"unknown metric {value!r}: choose one of {choices}") from None

    def similarity(self, distance: float) -> float:
        """The similarity that corresponds to ``distance`` under this metric."""
        if self is Metric.COSINE:
            return 1.0 - distance
        if self is Metric.INNER_PRODUCT:
            return -distance
        return 1.0 / (1.0 + distance)

    def max_distance(self, threshold: float) -> float | None:
        """The largest distance whose similarity is still ``>= threshold``.

        ``None`` means every distance qualifies (an L2 threshold of 0 or less).
        """
        if self is Metric.COSINE:
            return 1.0 - threshold
        if self is Metric.INNER_PRODUCT:
            return -threshold
        if threshold <= 0.0:
            return None
        return 1.0 / threshold - 1.0


class FieldType(enum.StrEnum):
    """Type of a filterable field."""

    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    TIMESTAMP = "timestamp"
    JSON = "json"
    INT_ARRAY = "int[]"
    TEXT_ARRAY = "text[]"

    @classmethod
    def parse(cls, value: object) -> FieldType:
        if isinstance(value, FieldType):
            return value
        aliases = {"str": "text", "integer": "int", "double": "float", "boolean": "bool",
                   "datetime": "timestamp", "list[int]": "int[]", "list[str]": "text[]"}
        text = str(value).strip().lower()
        try:
            return cls(aliases.get(text, text))
        except ValueError:
            choices = ", ".join(repr(t.value) for t in cls)
            raise InvalidSchema(f"unknown field type {value!r}: choose one of {choices}") from None

    @property
    def is_array(self) -> bool:
        return self in (FieldType.INT_ARRAY, FieldType.TEXT_ARRAY)

    @property
    def is_ordered(self) -> bool:
        """Whether ``$gt``/``$lt``/``$between`` apply to this type."""
        return self in (FieldType.TEXT, FieldType.INT, FieldType.FLOAT, FieldType.DATE,
                        FieldType.TIMESTAMP)


class IdType(enum.StrEnum):
    """Type of a collection's record ids."""

    TEXT = "text"
    INT = "int"

    @classmethod
    def parse(cls, value: object) -> IdType:
        if isinstance(value, IdType):
            return value
        if value is str:
            return IdType.TEXT
        if value is int:
            return IdType.INT
        try:
            return cls({"str": "text", "integer": "int"}.get(str(value), str(value)))
        except ValueError:
            raise InvalidSchema(f"unknown id type {value!r}: choose 'text' or 'int'") from None


def _check_positive_int(name: str, low: int, high: int) -> Any:
    def check(_inst: object, _attr: object, value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidSchema(f"{name} must be an integer from {low} to {high}, got {value!r}")

    return check


@attrs.frozen(slots=True)
class HNSW:
    """HNSW index parameters. Backends without HNSW (memory, sqlite) store them and search exactly."""

    m: int = attrs.field(default=16, validator=_check_positive_int("HNSW m", 2, 100))
    ef_construction: int = attrs.field(
        default=64, validator=_check_positive_int("HNSW ef_construction", 4, 1000)
    )

    def to_dict(self) -> dict[str, int]:
        return {"m": self.m, "ef_construction": self.ef_construction}


def _convert_fields(value: Mapping[str, object] | None) -> dict[str, FieldType]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSchema(f"fields must be a mapping of name to type, got {type(value).__name__}")
    out: dict[str, FieldType] = {}
    for name, kind in value.items():
        check_name(name, "field")
        if name in RESERVED_FIELD_NAMES:
            raise InvalidName(
                f"field name {name!r} is reserved (reserved: {', '.join(sorted(RESERVED_FIELD_NAMES))}); "
                "choose another name"
            )
        out[name] = FieldType.parse(kind)
    return out


def _to_metric(value: object) -> Metric:
    return Metric.parse(value)


def _to_id_type(value: object) -> IdType:
    return IdType.parse(value)


def _check_dim(_inst: Any, _attr: Any, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DIM:
        raise InvalidSchema(f"dim must be an integer from 1 to {MAX_DIM} (or None for a collection without "
                            f"vectors), got {value!r}")


@attrs.frozen(slots=True)
class CollectionSpec:
    """The full, validated definition of a collection.

    ``dim=None`` defines a collection *without vectors*: its records carry ids, fields and metadata
    only (a record's ``vector`` is left out or ``None``; a vector is refused), they are read,
    filtered, counted, paged and deleted as usual, and searching it raises ``InvalidInput``. Backends
    keep no vector column or index for it. Its ``metric`` and ``index`` mean nothing: the spec holds
    the defaults (``cosine``, ``HNSW()``), any other value is refused with ``InvalidSchema``, and
    :meth:`to_dict` writes ``null`` for them (and for ``dim``).
    """

    name: str = attrs.field(converter=check_name)
    dim: int | None = attrs.field(validator=_check_dim)
    metric: Metric = attrs.field(default=Metric.COSINE, converter=_to_metric)
    # Excluded from the hash (a dict is not hashable) but not from equality.
    fields: Mapping[str, FieldType] = attrs.field(factory=dict, converter=_convert_fields, hash=False)
    index: HNSW = attrs.field(factory=HNSW)
    id_type: IdType = attrs.field(default=IdType.TEXT, converter=_to_id_type)

    @index.validator
    def _check_index(self, _attr: object, value: object) -> None:
        if not isinstance(value, HNSW):
            raise InvalidSchema(f"index must be vectorstore.HNSW(...), got {value!r}")

    def __attrs_post_init__(self) -> None:
        if self.dim is None and (self.metric is not Metric.COSINE or self.index != HNSW()):
            raise InvalidSchema(
                f"collection {self.name!r} has no vectors (dim=None), so it has no metric or vector index; "
                f"leave metric= and index= out (got metric={self.metric.value!r}, index={self.index!r}), or give "
                "dim=N to store N-dimensional vectors")

    @property
    def has_vectors(self) -> bool:
        """Whether records of this collection carry vectors (``dim`` is not None)."""
        return self.dim is not None

    def describe_dim(self) -> str:
        """``"384-d cosine"``, or ``"no vectors"``: the dimension as listings print it."""
        return "no vectors" if self.dim is None else f"{self.dim}-d {self.metric.value}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, stored in each backend's catalog.

        Fields are a list of ``[name, type]`` pairs: their order is the column order, and JSON
        objects do not keep order everywhere (PostgreSQL ``jsonb`` reorders keys). A collection
        without vectors has ``null`` dim, metric and index.
        """
        vectors = self.dim is not None
        return {
            "name": self.name,
            "dim": self.dim,
            "metric": self.metric.value if vectors else None,
            "fields": [[k, v.value] for k, v in self.fields.items()],
            "index": self.index.to_dict() if vectors else None,
            "id_type": self.id_type.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollectionSpec:
        """Inverse of :meth:`to_dict`; also reads catalogs written with fields as an object."""
        fields = data.get("fields", {})
        metric = data["metric"]  # null for a collection without vectors
        return cls(
            name=data["name"],
            dim=data["dim"],
            metric=Metric.COSINE if metric is None else metric,
            fields=dict(fields) if isinstance(fields, list) else fields,
            index=HNSW(**(data.get("index") or {})),
            id_type=data.get("id_type", "text"),
        )
