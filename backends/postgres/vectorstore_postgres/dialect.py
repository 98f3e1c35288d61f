"""The two server flavours the backend speaks: stock pgvector and the ruvector extension.

Everything that differs between them lives here, in one class per flavour: the
vector type, operators and opclasses, the HNSW access method, the session settings
that tune a search, and how a vector travels on the wire (the *codec*). The rest of
the backend asks the dialect and never tests for a flavour itself.

ruvector facts come from ``shared/compat/ruvector.md`` (a reading of ruvector 0.3.0's
source; no ruvector server runs here): its ``<#>`` returns the *positive* dot product,
its vectors travel as text (``[1,2,3]::ruvector``), its column dimension is not
enforced by the server, an index scan yields at most 100 rows and an all-zero query
vector makes its index scan fail. The dialect turns each of these into a rule: rank
inner product by an explicit expression, encode/decode text client-side with
dimension checks, and search exactly whenever the index cannot answer correctly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np
from psycopg import sql

from vectorstore.errors import DimensionMismatch, InvalidVector
from vectorstore.records import Vector
from vectorstore.schema import Metric

#: pgvector's HNSW index covers ``vector`` columns of at most this many dimensions.
PGVECTOR_MAX_INDEX_DIM = 2000
#: pgvector's hard limit on ``hnsw.ef_search``.
PGVECTOR_MAX_EF_SEARCH = 1000


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@attrs.frozen(slots=True)
class Dialect:
    """What the backend needs to know about the server's vector extension.

    Subclasses fix the class-level constants; instances carry what was detected on
    the server (extension version, HNSW access method).
    """

    extension_version: str = ""
    access_method: str = "hnsw"

    name: ClassVar[str] = ""
    extension: ClassVar[str] = ""
    type_name: ClassVar[str] = ""
    ef_search_setting: ClassVar[str] = ""
    #: COPY format used for bulk writes ("binary" or "text").
    copy_format: ClassVar[str] = "binary"
    #: Whether vectors travel in pgvector's binary format (needs its psycopg adapters).
    binary_vectors: ClassVar[bool] = False
    _opclasses: ClassVar[dict[Metric, str]] = {}
    _operators: ClassVar[dict[Metric, str]] = {}

    # -- DDL -------------------------------------------------------------------

    def column_type(self, dim: int) -> sql.Composable:
        """The vector column's type, e.g. ``vector(384)``."""
        return sql.SQL("{}({})").format(sql.Identifier(self.type_name), sql.Literal(int(dim)))

    def opclass(self, metric: Metric) -> str:
        return self._opclasses[metric]

    def can_index(self, metric: Metric, dim: int) -> bool:
        """Whether an HNSW index can serve searches of this metric and dimension."""
        return True

    # -- expressions -----------------------------------------------------------

    def vector_param(self) -> str:
        """The placeholder (with any cast) a query vector is sent through."""
        raise NotImplementedError

    def select_vector(self, column: sql.Composable) -> sql.Composable:
        """How the vector column is selected so that :meth:`decode` can read it."""
        return column

    def distance(self, metric: Metric, column: sql.Composable) -> sql.Composable:
        """The metric's distance as SQL (``1 - cos``, ``L2``, ``-dot``), query vector as the placeholder."""
        raise NotImplementedError

    def index_order(self, metric: Metric, column: sql.Composable) -> sql.Composable | None:
        """The expression an HNSW index can order by, or None when no index path exists."""
        raise NotImplementedError

    # -- search tuning ---------------------------------------------------------

    def search_settings(self, ef_search: int, scan_tuples: int) -> list[tuple[str, str]]:
        """Transaction-local settings for one search batch (``set_config(name, value, true)``)."""
        raise NotImplementedError

    def index_usable(self, query: Vector, fetch: int) -> bool:
        """Whether the index can answer this query at all (else search exactly)."""
        return True

    # -- codec -----------------------------------------------------------------

    def encode(self, vector: Vector, dim: int) -> Any:
        """The parameter value sent for one vector (query or record)."""
        raise NotImplementedError

    def decode(self, value: Any, dim: int) -> Vector:
        """A stored vector as a fresh float32 array of ``dim`` elements."""
        raise NotImplementedError

    # -- diagnostics -----------------------------------------------------------

    def warnings(self) -> list[tuple[str, str, str]]:
        """Known server-side defects: ``(name, detail, fix)`` for ``doctor``."""
        return []

    def describe(self) -> str:
        return f"{self.name} ({self.extension} {self.extension_version}, index access method {self.access_method})"


@attrs.frozen(slots=True)
class PgVector(Dialect):
    """Stock pgvector: binary wire format, ``<#>`` is the negative dot product."""

    name: ClassVar[str] = "pgvector"
    extension: ClassVar[str] = "vector"
    type_name: ClassVar[str] = "vector"
    ef_search_setting: ClassVar[str] = "hnsw.ef_search"
    copy_format: ClassVar[str] = "binary"
    binary_vectors: ClassVar[bool] = True
    _opclasses: ClassVar[dict[Metric, str]] = {
        Metric.COSINE: "vector_cosine_ops", Metric.L2: "vector_l2_ops", Metric.INNER_PRODUCT: "vector_ip_ops",
    }
    _operators: ClassVar[dict[Metric, str]] = {
        Metric.COSINE: "<=>", Metric.L2: "<->", Metric.INNER_PRODUCT: "<#>",
    }

    @property
    def iterative_scan(self) -> bool:
        """pgvector 0.8 added iterative index scans (filtered HNSW without starvation)."""
        return _version_tuple(self.extension_version) >= (0, 8)

    def can_index(self, metric: Metric, dim: int) -> bool:
        return dim <= PGVECTOR_MAX_INDEX_DIM

    def vector_param(self) -> str:
        # %b: pgvector's binary dumper, registered on every pooled connection.
        return "%b"

    def distance(self, metric: Metric, column: sql.Composable) -> sql.Composable:
        # pgvector's operators already are the metric's distances (<#> is -dot).
        return sql.SQL("({} {} {})").format(column, sql.SQL(self._operators[metric]), sql.SQL(self.vector_param()))

    def index_order(self, metric: Metric, column: sql.Composable) -> sql.Composable | None:
        return sql.SQL("{} {} {}").format(column, sql.SQL(self._operators[metric]), sql.SQL(self.vector_param()))

    def search_settings(self, ef_search: int, scan_tuples: int) -> list[tuple[str, str]]:
        out = [(self.ef_search_setting, str(min(max(ef_search, 1), PGVECTOR_MAX_EF_SEARCH)))]
        if self.iterative_scan:
            # strict_order keeps results in distance order while the scan continues past
            # ef_search until enough rows pass the filter.
            out.append(("hnsw.iterative_scan", "strict_order"))
            out.append(("hnsw.max_scan_tuples", str(scan_tuples)))
        return out

    def encode(self, vector: Vector, dim: int) -> Any:
        return vector

    def decode(self, value: Any, dim: int) -> Vector:
        # pgvector's binary loader returns a pgvector.Vector; copy into a fresh array.
        arr: Vector = np.array(value.to_numpy(), dtype=np.float32, copy=True)
        return arr

    def warnings(self) -> list[tuple[str, str, str]]:
        if not self.iterative_scan:
            return [("pgvector iterative scans", f"pgvector {self.extension_version} has no iterative index "
                     "scans: filtered searches fall back to exact scans more often",
                     "upgrade pgvector to 0.8 or later (ALTER EXTENSION vector UPDATE)")]
        return []


def format_vector_text(vector: Vector) -> str:
    """``[a,b,c]``: shortest float32 round-trip digits, never exponent notation."""
    return "[" + ",".join(np.format_float_positional(x, unique=True, trim="-") for x in
                          np.asarray(vector, dtype=np.float32)) + "]"


def parse_vector_text(text: str) -> Vector:
    body = text.strip()
    if len(body) < 2 or body[0] != "[" or body[-1] != "]":
        raise InvalidVector(f"the server returned {text[:40]!r}, which is not a vector literal '[a,b,...]'")
    inner = body[1:-1].strip()
    if not inner:
        return np.empty(0, dtype=np.float32)
    arr: Vector = np.array([float(x) for x in inner.split(",")], dtype=np.float32)
    return arr


@attrs.frozen(slots=True)
class RuVector(Dialect):
    """The ruvector extension (0.3.x): text wire format, positive ``<#>``, capped index scans."""

    #: Sign of ruvector's ``<#>``: +1 when it returns the positive dot product (0.3.0).
    ip_sign: int = 1

    name: ClassVar[str] = "ruvector"
    extension: ClassVar[str] = "ruvector"
    type_name: ClassVar[str] = "ruvector"
    ef_search_setting: ClassVar[str] = "ruvector.ef_search"
    copy_format: ClassVar[str] = "text"
    binary_vectors: ClassVar[bool] = False
    #: ruvector 0.3.0's index scan stops after this many rows.
    index_scan_cap: ClassVar[int] = 100
    _opclasses: ClassVar[dict[Metric, str]] = {
        Metric.COSINE: "ruvector_cosine_ops", Metric.L2: "ruvector_l2_ops", Metric.INNER_PRODUCT: "ruvector_ip_ops",
    }
    _operators: ClassVar[dict[Metric, str]] = {Metric.COSINE: "<=>", Metric.L2: "<->"}

    def can_index(self, metric: Metric, dim: int) -> bool:
        # Inner product is ranked by an explicit expression (see distance()), which no
        # index can serve; an index would only slow writes down.
        return metric is not Metric.INNER_PRODUCT

    def vector_param(self) -> str:
        return "%s::ruvector"

    def select_vector(self, column: sql.Composable) -> sql.Composable:
        # ruvector's binary format differs from pgvector's: read vectors as text.
        return sql.SQL("{}::text").format(column)

    def distance(self, metric: Metric, column: sql.Composable) -> sql.Composable:
        param = sql.SQL(self.vector_param())
        if metric is Metric.INNER_PRODUCT:
            # <#> is +dot on ruvector 0.3.0 (the opposite of pgvector): negate it so the
            # distance is -dot, as the sign detected at connect time says.
            sign = sql.SQL("-") if self.ip_sign > 0 else sql.SQL("")
            return sql.SQL("({}({} <#> {}))").format(sign, column, param)
        return sql.SQL("({} {} {})").format(column, sql.SQL(self._operators[metric]), param)

    def index_order(self, metric: Metric, column: sql.Composable) -> sql.Composable | None:
        if metric is Metric.INNER_PRODUCT:
            return None
        return sql.SQL("{} {} {}").format(column, sql.SQL(self._operators[metric]), sql.SQL(self.vector_param()))

    def search_settings(self, ef_search: int, scan_tuples: int) -> list[tuple[str, str]]:
        # Registered by ruvector but not read by its index code (0.3.0); set for when it is.
        return [(self.ef_search_setting, str(max(ef_search, 1)))]

    def index_usable(self, query: Vector, fetch: int) -> bool:
        # The index yields at most 100 rows, and an all-zero query raises inside it.
        return fetch <= self.index_scan_cap and bool(np.any(query))

    def encode(self, vector: Vector, dim: int) -> Any:
        if vector.ndim != 1 or vector.shape[0] != dim:
            # The server does not enforce ruvector(N): this check is the only one.
            raise DimensionMismatch(f"vector has {vector.shape[-1] if vector.ndim else 0} dimensions, "
                                    f"but the collection expects {dim}")
        return format_vector_text(vector)

    def decode(self, value: Any, dim: int) -> Vector:
        if isinstance(value, (bytes, memoryview)):
            value = bytes(value).decode("ascii")
        arr = parse_vector_text(str(value))
        if arr.shape[0] != dim:
            raise DimensionMismatch(
                f"the server returned a {arr.shape[0]}-dimensional vector for a {dim}-dimensional collection; "
                "ruvector does not enforce column dimensions, so a row was written by another client with the "
                "wrong length: fix or delete it")
        return arr

    def warnings(self) -> list[tuple[str, str, str]]:
        return [
            ("ruvector index parameters", "ruvector 0.3 accepts WITH (m, ef_construction) and ignores it; "
             f"{self.ef_search_setting} is registered but not read by the index",
             "expect default index quality; vectorstore falls back to exact search when the index returns "
             "too few rows"),
            ("ruvector index scan cap", "an index scan returns at most 100 rows",
             "searches asking for more than 99 hits run exactly (a sequential scan)"),
            ("ruvector zero vectors", "an all-zero query vector makes the index scan fail",
             "vectorstore searches such queries exactly"),
            ("ruvector crash safety", "index pages are not WAL-logged: after a crash or on a streaming replica "
             "the HNSW index may be missing or corrupt",
             "REINDEX the collection tables after a crash; do not serve searches from replicas"),
            ("ruvector inner product", "<#> returns the positive dot product (pgvector: negative)",
             "vectorstore ranks inner-product collections by an explicit expression, without the index"),
        ]


DIALECTS: dict[str, type[Dialect]] = {PgVector.extension: PgVector, RuVector.extension: RuVector}
