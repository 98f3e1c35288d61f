"""Exact k-NN search on SQLite: SQL finds candidates, NumPy decides.

sqlite-vec computes distances in float32, which can order two records
differently from the float64 reference (and knows nothing of the id
tie-break). So SQL only *proposes* candidates, ordered by its approximate
distance ``a``; the hits are chosen by re-scoring the candidates' exact stored
vectors in float64, exactly as the memory backend does.

That is exact, not a heuristic, because the float32 error is bounded: for
every record ``|a - d| <= rel * |d| + abs`` (:class:`ErrorBound`, from the
standard floating-point summation bound ``n * 2**-24``). After re-scoring the
first ``L`` candidates, let ``T`` be the largest distance a hit may have (the
k-th best exact distance, or ``max_distance``). Every record SQL did not return
has ``a >= a_last``, hence ``d >= lower(a_last)``; if that is ``> T`` no such
record can be a hit (not even a tie that wins on id). Otherwise a second pass
fetches every record with ``a <= upper(T)`` -- a superset of all records with
``d <= T`` -- and re-scores those. Ties at the k-th place (duplicates) always
take the second pass, which is what orders them by id.

Where the bound's assumptions fail (norms so large or small that float32
overflows or underflows) SQL distances are not trusted at all and every
matching record is re-scored.

Candidate passes:

- unfiltered cosine / l2: the ``vec0`` KNN (fastest; it cannot evaluate a filter);
- filtered, inner product, or ``L`` above vec0's limit: a scan of the row table
  with the compiled filter in ``WHERE``, so filtering never starves the results.

Records without a vector (NULL ``_vector`` and ``_norm``) are in neither: vec0 has
no row for them, every scan skips them, and the norm statistics ignore them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from vectorstore.records import Hit, Vector
from vectorstore.schema import CollectionSpec, Metric
from vectorstore.scoring import exact_distances
from vectorstore_sqlite.sql import RowCodec, has_vec_index, q, vec_table

#: sqlite-vec refuses ``k`` above this in a vec0 KNN query.
VEC0_MAX_K = 4096
#: Unit roundoff of float32.
U32 = 2.0**-24
#: Norms (of stored and query vectors) within which float32 neither overflows nor
#: underflows badly enough to break :class:`ErrorBound`.
SAFE_NORM_LOW, SAFE_NORM_HIGH = 1e-10, 1e15


@attrs.frozen(slots=True)
class ErrorBound:
    """``|approx - exact| <= rel * |exact| + abs`` for every record."""

    rel: float
    abs: float

    def lower(self, approx: float) -> float:
        """The smallest exact distance a record with this approximate distance may have."""
        return (approx - self.abs) / (1.0 + self.rel)

    def upper(self, exact: float) -> float:
        """The largest approximate distance a record with this exact distance may have."""
        return exact + self.rel * abs(exact) + self.abs


def error_bound(metric: Metric, dim: int, query_norm: float, max_norm: float) -> ErrorBound:
    """The float32 error of sqlite-vec's distances (and of the inner-product expression below).

    The generous constants only make the second pass a little more frequent.
    """
    # Dot product and both squared norms each err by at most ~dim*u relative to |q||x|.
    cos_abs = (2 * dim + 16) * U32 + 1e-12
    if metric is Metric.COSINE:
        return ErrorBound(0.0, cos_abs)
    if metric is Metric.INNER_PRODUCT:
        # -dot is computed as (cosine distance - 1) * |x| * |q|.
        return ErrorBound(0.0, cos_abs * max_norm * query_norm + 1e-12)
    return ErrorBound((dim + 8) * U32, 1e-12)


def trusted(metric: Metric, query_norm: float, min_norm: float | None, max_norm: float | None) -> bool:
    """Whether the float32 SQL distances obey :func:`error_bound` for this query and collection."""
    if max_norm is not None and max_norm > SAFE_NORM_HIGH:
        return False
    if query_norm > SAFE_NORM_HIGH:
        return False
    if metric is Metric.L2:
        return True  # tiny values only cost absolute error, which the bound's abs covers
    if query_norm != 0.0 and query_norm < SAFE_NORM_LOW:
        return False
    return min_norm is None or min_norm >= SAFE_NORM_LOW


def approx_expression(metric: Metric) -> tuple[str, int]:
    """SQL for the approximate distance of ``_vector`` to the query; returns (sql, number of
    query-dependent parameters: the query blob, then for inner product the query norm)."""
    if metric is Metric.COSINE:
        return "vec_distance_cosine(_vector, ?)", 1
    if metric is Metric.L2:
        return "vec_distance_l2(_vector, ?)", 1
    # sqlite-vec has no dot product: -dot = (cos_distance - 1) * |x| * |q|; cosine is undefined
    # for a zero vector, whose dot product is 0.
    return "(CASE WHEN _norm = 0 THEN 0.0 ELSE (vec_distance_cosine(_vector, ?) - 1.0) * _norm * ? END)", 2


class Conn(Protocol):
    """What the search needs from a connection."""

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...


@attrs.define(slots=True)
class _Candidates:
    keys: list[int]
    ids: list[Any]
    approx: list[float | None]
    matrix: npt.NDArray[np.float32]


def _candidates(rows: list[Any], dim: int) -> _Candidates:
    """Rows of ``(_key, id, _vector, approx)``."""
    if not rows:
        return _Candidates([], [], [], np.empty((0, dim), dtype=np.float32))
    keys, ids, blobs, approx = zip(*rows, strict=True)
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(rows), dim)
    return _Candidates(list(keys), list(ids), list(approx), matrix)


class ExactSearch:
    """Exact search over one collection, given a connection and the compiled filter."""

    def __init__(self, conn: Conn, spec: CollectionSpec, codec: RowCodec, where_sql: str,
                 where_params: list[Any], filtered: bool) -> None:
        self.conn = conn
        self.spec = spec
        self.codec = codec
        # Records without a vector are never hits (and have no vec0 row, nor a norm).
        self.where_sql = f"(_vector IS NOT NULL AND {where_sql})"
        self.where_params = where_params
        self.filtered = filtered
        self.table = q(spec.name)
        self.approx_sql, self.n_query_params = approx_expression(spec.metric)
        #: Counters for tests and diagnostics: which passes ran.
        self.passes: dict[str, int] = {"vec0": 0, "scan": 0, "second": 0, "exhaustive": 0}

    def _query_params(self, blob: bytes, query_norm: float) -> list[Any]:
        return [blob] if self.n_query_params == 1 else [blob, query_norm]

    async def run(self, queries: Vector, k: int, max_distance: float | None,
                  include_vector: bool) -> list[list[Hit]]:
        stats = await self.conn.fetchall(
            f"SELECT (SELECT min(_norm) FROM {self.table} WHERE _norm > 0), (SELECT max(_norm) FROM {self.table})")
        min_norm, max_norm = stats[0]
        out: list[list[Hit]] = []
        for query in queries:
            if max_norm is None:  # empty collection
                out.append([])
                continue
            order, cands, dist = await self._nearest(query, k, max_distance, min_norm, max_norm)
            out.append(await self._hits(order, cands, dist, include_vector))
        return out

    async def _nearest(self, query: npt.NDArray[np.float32], k: int, max_distance: float | None,
                       min_norm: float | None, max_norm: float) -> tuple[list[int], _Candidates,
                                                                         npt.NDArray[np.float64]]:
        """Indices into the final candidates of the hits, in hit order."""
        metric, dim = self.spec.metric, self.spec.dim
        assert dim is not None, "a collection without vectors is never searched"
        query_norm = float(np.linalg.norm(query.astype(np.float64)))
        blob = np.ascontiguousarray(query, dtype=np.float32).tobytes()
        if not trusted(metric, query_norm, min_norm, max_norm):
            return self._select(await self._exhaustive(), query, k, max_distance)
        bound = error_bound(metric, dim, query_norm, max_norm)
        limit = k + max(16, k // 4)
        if not self.filtered and has_vec_index(self.spec) and limit <= VEC0_MAX_K:
            rows = await self._vec0(blob, limit)
        else:
            rows = await self._scan(blob, query_norm, limit=limit)
        cands = _candidates(rows, dim)
        if any(a is None or not math.isfinite(a) for a in cands.approx):
            return self._select(await self._exhaustive(), query, k, max_distance)
        order, cands, dist = self._select(cands, query, k, max_distance)
        if len(rows) < limit:
            return order, cands, dist  # SQL returned every matching record
        if len(order) == k:
            worst = float(dist[order[-1]])
            top = worst if max_distance is None else min(worst, max_distance)
        else:
            assert max_distance is not None  # fewer than k of L >= k candidates passed: a threshold cut them
            top = max_distance
        if bound.lower(max(a for a in cands.approx if a is not None)) > top:
            return order, cands, dist
        self.passes["second"] += 1
        rows = await self._scan(blob, query_norm, at_most=bound.upper(top))
        cands = _candidates(rows, dim)
        if any(a is None or not math.isfinite(a) for a in cands.approx):  # pragma: no cover - trusted() rules it out
            return self._select(await self._exhaustive(), query, k, max_distance)
        return self._select(cands, query, k, max_distance)

    def _select(self, cands: _Candidates, query: npt.NDArray[np.float32], k: int,
                max_distance: float | None) -> tuple[list[int], _Candidates, npt.NDArray[np.float64]]:
        dist = exact_distances(self.spec.metric, cands.matrix, query)
        ids = cands.ids
        idx = range(len(ids)) if max_distance is None else [i for i in range(len(ids)) if dist[i] <= max_distance]
        order = sorted(idx, key=lambda i: (dist[i], ids[i]))[:k]
        return order, cands, dist

    async def _vec0(self, blob: bytes, limit: int) -> list[Any]:
        self.passes["vec0"] += 1
        vec = q(vec_table(self.spec.name))
        return await self.conn.fetchall(
            # (vs_ names are vectorstore's: a collection can be named "c", never "vs_knn".)
            f"WITH vs_knn AS (SELECT rowid AS k, distance AS d FROM {vec} WHERE embedding MATCH ? AND k = ?) "
            f"SELECT t._key, t.id, t._vector, vs_knn.d FROM vs_knn JOIN {self.table} AS t ON t._key = vs_knn.k",
            [blob, limit])

    async def _scan(self, blob: bytes, query_norm: float, *, limit: int | None = None,
                    at_most: float | None = None) -> list[Any]:
        self.passes["scan"] += 1
        qparams = self._query_params(blob, query_norm)
        if at_most is None:
            return await self.conn.fetchall(
                f"SELECT _key, id, _vector, {self.approx_sql} AS d FROM {self.table} WHERE {self.where_sql} "
                "ORDER BY d LIMIT ?", [*qparams, *self.where_params, limit])
        # Materialise (key, distance) so the distance is computed once per row, then read the
        # vectors of the few rows within the bound.
        return await self.conn.fetchall(
            f"WITH vs_cand AS MATERIALIZED (SELECT _key AS k, {self.approx_sql} AS d FROM {self.table} "
            f"WHERE {self.where_sql}) "
            f"SELECT t._key, t.id, t._vector, vs_cand.d FROM vs_cand JOIN {self.table} AS t ON t._key = vs_cand.k "
            # NULL (NaN) distances are kept so the caller notices them and falls back.
            "WHERE vs_cand.d <= ? OR vs_cand.d IS NULL",
            [*qparams, *self.where_params, at_most])

    async def _exhaustive(self) -> _Candidates:
        self.passes["exhaustive"] += 1
        rows = await self.conn.fetchall(
            f"SELECT _key, id, _vector, 0.0 FROM {self.table} WHERE {self.where_sql}", self.where_params)
        assert self.spec.dim is not None, "a collection without vectors is never searched"
        return _candidates(rows, self.spec.dim)

    async def _hits(self, order: list[int], cands: _Candidates, dist: npt.NDArray[np.float64],
                    include_vector: bool) -> list[Hit]:
        if not order:
            return []
        keys = [cands.keys[i] for i in order]
        rows = await self.conn.fetchall(
            f"SELECT _key, {self.codec.select_cols} FROM {self.table} "
            "WHERE _key IN (SELECT value FROM json_each(?))", [json.dumps(keys)])
        by_key = {row[0]: row for row in rows}
        metric = self.spec.metric
        nfields = len(self.codec.names)
        hits = []
        for i, key in zip(order, keys, strict=True):
            row = by_key[key]
            d = float(dist[i])
            hits.append(Hit(
                id=row[1], distance=d, similarity=metric.similarity(d),
                fields=self.codec.decode_fields(row[2:2 + nfields]),
                metadata=json.loads(row[2 + nfields]),
                vector=cands.matrix[i].copy() if include_vector else None,
            ))
        return hits
