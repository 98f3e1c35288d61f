"""Exact float64 distances: the definition every backend's scores must match.

Backends that rank approximately (or in float32) re-score with this, so hits
carry the same distances everywhere. The conformance suite keeps an
independent copy of the formulas as its oracle.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vectorstore.schema import Metric


def exact_distances(metric: Metric, matrix: npt.NDArray[np.float32],
                    query: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """float64 distances from each row of ``matrix`` to ``query`` (see :class:`~vectorstore.schema.Metric`)."""
    x = matrix.astype(np.float64, copy=False)
    q = query.astype(np.float64, copy=False)
    if metric is Metric.L2:
        l2: npt.NDArray[np.float64] = np.sqrt(np.maximum(((x - q) ** 2).sum(axis=1), 0.0))
        return l2
    dots: npt.NDArray[np.float64] = x @ q
    if metric is Metric.INNER_PRODUCT:
        return -dots
    cosine: npt.NDArray[np.float64] = 1.0 - dots / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    return cosine
