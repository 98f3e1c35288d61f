"""Shared machinery of the agent memory classes: argument checks, the embedder, the clock,
collection set-up, and serializable read-modify-write transactions."""

from __future__ import annotations

import decimal
import json
import math
import numbers
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from vectorstore.embedding import Embedder, aembed, get_embedder
from vectorstore.errors import CollectionNotFound, DimensionMismatch, InvalidVector, NotSupported
from vectorstore.records import coerce_vector
from vectorstore.schema import Metric
from vectorstore.store import MAX_K, AsyncStore
from vectorstore.sync import Store

from .errors import InvalidMemoryInput
from .schema import Collections, ensure_collections, resolve_dim

T = TypeVar("T")
Clock = Callable[[], float]
DAY = 86_400
CONFLICT_RETRIES = 6


# -- argument checks (all raise InvalidMemoryInput, before anything is written) -------------


def check_text(value: object, name: str) -> str:
    """A required, non-empty string."""
    if not isinstance(value, str):
        raise InvalidMemoryInput(f"{name} must be a str, got {type(value).__name__} {value!r}")
    if not value.strip():
        raise InvalidMemoryInput(f"{name} must not be empty")
    return value


def optional_text(value: object, name: str) -> str | None:
    """An optional string; ``''`` is stored as NULL, as AgentDB's ``x || null`` does."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidMemoryInput(f"{name} must be a str or None, got {type(value).__name__} {value!r}")
    return value or None


def check_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidMemoryInput(f"{name} must be a number, got {type(value).__name__} {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise InvalidMemoryInput(f"{name} must be a finite number, got {value!r}")
    return out


def optional_number(value: object, name: str) -> float | None:
    return None if value is None else check_number(value, name)


def check_bool(value: object, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise InvalidMemoryInput(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def check_int(value: object, name: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidMemoryInput(f"{name} must be an int, got {type(value).__name__} {value!r}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise InvalidMemoryInput(f"{name} must be at least {minimum}, got {out}")
    return out


def check_k(value: object, name: str = "k") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= int(value) <= MAX_K:
        raise InvalidMemoryInput(f"{name} must be an integer from 1 to {MAX_K}, got {value!r}")
    return int(value)


def check_days(value: object, name: str) -> float | None:
    """A time window in days: None or 0 means no window (AgentDB's falsy check)."""
    if value is None:
        return None
    days = check_number(value, name)
    if days < 0:
        raise InvalidMemoryInput(f"{name} must not be negative, got {value!r}")
    return days or None


def check_tags(value: object, name: str = "tags") -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise InvalidMemoryInput(f"{name} must be a list of str, got {type(value).__name__} {value!r}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidMemoryInput(f"{name}[{i}] must be a str, got {type(item).__name__} {item!r}")
        out.append(item)
    return out


def check_metadata(value: object, name: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidMemoryInput(f"{name} must be a dict or None, got {type(value).__name__} {value!r}")
    return dict(value)


def check_id(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidMemoryInput(f"{name} must be an int id, got {type(value).__name__} {value!r}")
    return int(value)


def check_embedding(value: object, dim: int, name: str = "embedding") -> npt.NDArray[np.float32]:
    """A caller's vector: ``dim`` finite numbers (DimensionMismatch / InvalidVector otherwise)."""
    if isinstance(value, np.ndarray) and value.ndim == 2 and value.shape[0] == 1:
        value = value[0]
    return coerce_vector(value, dim, Metric.L2, name)  # L2: an all-zero query is legal here


# -- JavaScript-compatible formatting ----------------------------------------------------


def js_fixed(value: float, digits: int) -> str:
    """``Number.prototype.toFixed``: the exact binary value, ties rounded away from zero."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if abs(value) >= 1e21:
        return js_number(value)
    if value == 0:  # (-0).toFixed() has no sign; a negative value that rounds to zero keeps it
        value = 0.0
    quantum = decimal.Decimal(1).scaleb(-digits)
    return str(decimal.Decimal(value).quantize(quantum, rounding=decimal.ROUND_HALF_UP))


def js_number(value: float) -> str:
    """``String(x)`` for a JS number (integral values without ``.0``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def js_string(value: Any) -> str:
    """``String(value)`` / template-literal conversion of a JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ",".join("" if v is None else js_string(v) for v in value)
    return "[object Object]"


def js_json(value: Any) -> str:
    """``JSON.stringify`` of a JSON value: compact, keys in insertion order, whole floats as ints."""
    def plain(v: Any) -> Any:
        if isinstance(v, float) and math.isfinite(v) and v == int(v) and abs(v) < 1e21:
            return int(v)
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return json.dumps(plain(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# -- the base classes --------------------------------------------------------------------


class AsyncMemoryBase:
    """Holds the store, the embedder, the clock and the (lazily created) collections."""

    def __init__(self, store: AsyncStore, *, embedder: Embedder | None = None, dim: int | None = None,
                 clock: Clock | None = None) -> None:
        if isinstance(store, Store):
            raise TypeError(f"{type(self).__name__} takes the async store (await vectorstore.open_store(...)); "
                            f"for a sync vectorstore.connect(...) store use {type(self).__name__[5:]}")
        if not isinstance(store, AsyncStore):
            raise TypeError(f"{type(self).__name__} takes a vectorstore.AsyncStore, got {type(store).__name__}")
        if not store.capabilities.transactions:
            # Uniqueness checks, stats updates and the nightly job are read-modify-write.
            raise NotSupported(f"the agent memory needs a backend with transactions; the "
                               f"{store.backend.name} backend has none (sqlite, postgresql and memory do)")
        if dim is None and embedder is not None:
            dim = embedder.dim
        self._dim = resolve_dim(dim)
        self._embedder = embedder if embedder is not None else get_embedder(None, self._dim)
        if self._embedder.dim != self._dim:
            raise DimensionMismatch(f"the {self._embedder.name} embedder makes {self._embedder.dim}-d vectors, "
                                    f"but the agent memory is {self._dim}-d; pass a matching dim= or embedder=")
        self._store = store
        self._clock: Clock = clock or time.time
        self._cols: Collections | None = None

    @property
    def store(self) -> AsyncStore:
        return self._store

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    @property
    def dim(self) -> int:
        return self._dim

    def _now(self) -> int:
        """Unix seconds, as SQLite's ``strftime('%s', 'now')``."""
        return int(self._clock())

    async def setup(self) -> None:
        """Create the collections if missing (done on first use anyway). Call it outside any
        transaction you might roll back: a rolled-back transaction also undoes their creation."""
        await self._collections()

    async def _collections(self) -> Collections:
        if self._cols is None:
            self._cols = await ensure_collections(self._store, self._dim)
        return self._cols

    def _forget_collections(self) -> None:
        self._cols = None

    async def _embed(self, text: str) -> npt.NDArray[np.float32]:
        matrix = await aembed(self._embedder, [text])
        if matrix.ndim != 2 or matrix.shape != (1, self._dim):
            raise DimensionMismatch(f"the {self._embedder.name} embedder returned an array of shape {matrix.shape}; "
                                    f"expected (1, {self._dim})")
        vector = np.asarray(matrix[0], dtype=np.float32)
        if not np.isfinite(vector).all():
            raise InvalidVector(f"the {self._embedder.name} embedder returned NaN or infinity for {text[:60]!r}")
        return vector

    async def _vector_for(self, text: str, embedding: object) -> npt.NDArray[np.float32]:
        """The caller's embedding (checked) or the embedder's vector for ``text``."""
        if embedding is not None:
            vector = check_embedding(embedding, self._dim)
        else:
            vector = await self._embed(text)
        if not vector.any():
            raise InvalidVector("the embedding is all zeros, which has no direction under cosine similarity")
        return vector

    async def _atomic(self, work: Callable[[Collections], Awaitable[T]]) -> T:
        """Run ``work`` in one serializable transaction, retried when it loses a race."""
        cols = await self._collections()
        try:
            return await self._store.run_transaction(lambda: work(cols), retries=CONFLICT_RETRIES - 1,
                                                     base_delay=0.005)
        except CollectionNotFound:
            self._forget_collections()
            raise


class SyncMemoryBase:
    """Base of the sync twins: holds the sync store and runs the async twin's coroutines on it."""

    def __init__(self, store: Store) -> None:
        if not isinstance(store, Store):
            name = type(self).__name__
            raise TypeError(f"{name} takes the sync store (vectorstore.connect(...)); for an async store "
                            f"use Async{name}")
        self._store = store

    @property
    def store(self) -> Store:
        return self._store
