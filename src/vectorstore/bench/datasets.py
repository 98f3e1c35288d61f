"""Benchmark data: vectors, queries, exact neighbours and a selectivity label per row.

``clustered`` is a mixture of isotropic Gaussians (so nearest neighbours are
structured and recall means something); ``sentences`` embeds a text corpus that
ships with Python with all-MiniLM-L6-v2 (needs the ``minilm`` extra). Both are
deterministic for a seed. Queries are drawn like the data but are not data rows.

Every row carries ``bucket`` = ``i % 100``, spread evenly over the rows, so the filter
``bucket < p`` passes exactly ``p`` % of them: the filtered-search selectivities.
"""

from __future__ import annotations

import attrs
import numpy as np
import numpy.typing as npt

from vectorstore.errors import InvalidInput

F32 = npt.NDArray[np.float32]


@attrs.frozen(slots=True, eq=False)
class Dataset:
    name: str
    vectors: F32
    queries: F32
    metric: str = "cosine"

    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def buckets(self) -> npt.NDArray[np.int64]:
        """``bucket`` of every row: ``i % 100``."""
        return np.arange(self.n, dtype=np.int64) % 100

    def exact_neighbours(self, k: int, rows: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.int64]:
        """Row indices of the exact k nearest neighbours (cosine) of every query, nearest first,
        among ``rows`` (a mask; all rows when None). Ties break on the lower row index."""
        data = _unit(self.vectors)
        index = np.arange(self.n) if rows is None else np.flatnonzero(rows)
        data = data[index]
        out = np.empty((len(self.queries), min(k, len(index))), dtype=np.int64)
        queries = _unit(self.queries)
        for start in range(0, len(queries), 256):
            block = queries[start:start + 256].astype(np.float64) @ data.T.astype(np.float64)
            dist = 1.0 - block
            kk = out.shape[1]
            for j, row in enumerate(dist):
                # The k smallest, ties at the boundary included, then ordered by (distance, row).
                bound = np.partition(row, kk - 1)[kk - 1] if kk < len(row) else np.inf
                near = np.flatnonzero(row <= bound)
                top = near[np.lexsort((index[near], row[near]))[:kk]]
                out[start + j] = index[top]
        return out


def _unit(x: F32) -> F32:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: F32 = (x / norms).astype(np.float32)
    return out


def clustered(n: int, dim: int, *, queries: int = 200, seed: int = 0, clusters: int | None = None,
              spread: float = 0.6) -> Dataset:
    """``n`` vectors from a mixture of ``clusters`` Gaussians (default ``max(8, n // 1000)``):
    centres ~ N(0, 1) per dimension, points centre + ``spread`` * N(0, 1)."""
    if n < 1 or dim < 2 or queries < 1:
        raise InvalidInput(f"need n >= 1, dim >= 2 and queries >= 1, got n={n}, dim={dim}, queries={queries}")
    rng = np.random.default_rng(seed)
    c = clusters or max(8, n // 1000)
    centres = rng.standard_normal((c, dim), dtype=np.float32)
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65536):  # bounded temporary memory at 1M x 768
        stop = min(n, start + 65536)
        labels = rng.integers(0, c, stop - start)
        vectors[start:stop] = centres[labels] + spread * rng.standard_normal((stop - start, dim), dtype=np.float32)
    labels = rng.integers(0, c, queries)
    qs = centres[labels] + spread * rng.standard_normal((queries, dim), dtype=np.float32)
    return Dataset(f"clustered-{n // 1000}k-{dim}d" if n >= 1000 else f"clustered-{n}-{dim}d", vectors,
                   qs.astype(np.float32))
