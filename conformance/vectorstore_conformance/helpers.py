"""Shared helpers of the conformance suite: contract loading, the NumPy reference, datasets."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

import vectorstore
from vectorstore.schema import Metric

TOLERANCE = 1e-6


def load_contract(name: str) -> dict[str, Any]:
    """Read a contract file: packaged beside the suite in a wheel, or the repo's ``contracts/``."""
    packaged = resources.files("vectorstore_conformance") / "contracts" / name
    if packaged.is_file():
        data: dict[str, Any] = json.loads(packaged.read_text(encoding="utf-8"))
        return data
    repo = Path(__file__).resolve().parents[2] / "contracts" / name
    result: dict[str, Any] = json.loads(repo.read_text(encoding="utf-8"))
    return result


def reference_distances(metric: Metric | str, matrix: Any, query: Any) -> np.ndarray:
    """float64 distances computed from the float32-rounded inputs (what backends store)."""
    metric = Metric.parse(metric)
    x = np.asarray(matrix, dtype=np.float32).astype(np.float64)
    q = np.asarray(query, dtype=np.float32).astype(np.float64)
    if metric is Metric.L2:
        result: np.ndarray = np.sqrt(((x - q) ** 2).sum(axis=1))
        return result
    dots: np.ndarray = x @ q
    if metric is Metric.INNER_PRODUCT:
        return -dots
    cosine: np.ndarray = 1.0 - dots / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    return cosine


def score_scale(metric: Metric | str, query: Any, vector: Any) -> float:
    """How much rounding a score may carry (see contracts/distances.json)."""
    metric = Metric.parse(metric)
    qn = float(np.linalg.norm(np.asarray(query, dtype=np.float64)))
    xn = float(np.linalg.norm(np.asarray(vector, dtype=np.float64)))
    if metric is Metric.COSINE:
        return 1.0
    if metric is Metric.INNER_PRODUCT:
        return max(1.0, qn * xn)
    return max(1.0, qn + xn)


def assert_score(metric: Metric | str, got: float, expected: float, query: Any, vector: Any, what: str) -> None:
    allowed = TOLERANCE * score_scale(metric, query, vector)
    assert abs(got - expected) <= allowed, (
        f"{what}: got {got!r}, expected {expected!r} (|diff| = {abs(got - expected):.3g} > {allowed:.3g}) "
        f"under {Metric.parse(metric).value}"
    )


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 8) -> np.ndarray:
    """A mixture of Gaussians, float32, so nearest neighbours are meaningful."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (clusters, dim))
    labels = rng.integers(0, clusters, n)
    data: np.ndarray = (centers[labels] + rng.normal(0.0, 0.35, (n, dim))).astype(np.float32)
    return data


def ids_of(hits: Sequence[vectorstore.Hit]) -> list[Any]:
    return [h.id for h in hits]


def expected_order(metric: Metric | str, ids: Sequence[Any], matrix: Any, query: Any) -> list[Any]:
    """Reference ranking: by distance, ties by id."""
    dist = reference_distances(metric, matrix, query)
    return [ids[i] for i in sorted(range(len(ids)), key=lambda i: (dist[i], ids[i]))]


def records(ids: Sequence[Any], matrix: Any, fields: Sequence[dict[str, Any]] | None = None,
            metadata: Sequence[dict[str, Any]] | None = None) -> list[vectorstore.Record]:
    return [vectorstore.Record(rid, matrix[i], (fields[i] if fields else {}), (metadata[i] if metadata else {}))
            for i, rid in enumerate(ids)]


@contextlib.contextmanager
def reopened(store: vectorstore.Store, store_url: str) -> Iterator[vectorstore.Store | None]:
    """Close ``store`` and open its URL again. Yields the reopened store; for a backend that
    declares no persistence, checks that the reopened store is empty (as declared) and yields None.
    Afterwards every collection is dropped and the store closed."""
    persistent = store.capabilities.persistent
    store.close()
    again = vectorstore.connect(store_url)
    try:
        if not persistent:
            assert again.list_collections() == [], "a backend that declares no persistence kept data"
            yield None
        else:
            yield again
    finally:
        for spec in again.list_collections():
            again.drop_collection(spec.name)
        again.close()
