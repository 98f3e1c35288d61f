"""Prometheus metrics of the cross-cutting layer (the ``metrics`` extra: prometheus-client).

Off unless a store is opened with ``metrics=true``; then every call of every such store is
counted in the process's default registry (``prometheus_client.REGISTRY``), which
``vectorstore serve`` (or :func:`prometheus_client.generate_latest`) exposes. One vocabulary with
the logs: ``operation``, ``collection``, ``backend``, ``outcome``.

=========================================== ================================================
metric                                      labels
=========================================== ================================================
``vectorstore_calls_total``                 operation, collection, backend, outcome
``vectorstore_call_duration_seconds``       operation, collection, backend (histogram)
``vectorstore_rows_written_total``          operation, collection, backend
``vectorstore_retries_total``               operation, backend, error
``vectorstore_breaker_state``               backend (0 closed, 1 half-open, 2 open)
``vectorstore_pool_connections``            backend, state (size, idle, in_use, waiting)
``vectorstore_index_build_seconds``         collection, backend (histogram)
``vectorstore_embedding_cache_total``       model, result (hit, miss)
=========================================== ================================================
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from vectorstore.errors import ConfigError

try:
    import prometheus_client
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError:  # pragma: no cover - exercised where the extra is missing
    prometheus_client = None  # type: ignore[assignment]

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BUILD_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
BREAKER = {"closed": 0, "half-open": 1, "open": 2}
WRITES = frozenset({"upsert", "insert"})

_lock = threading.Lock()
_metrics: dict[str, Any] | None = None
#: Pool statistics sources: (backend name, a callable returning {state: connections}).
_pools: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
#: How many metered stores this process opened on each URL (their ``store`` labels differ).
_stores: dict[str, int] = {}


def available() -> bool:
    return prometheus_client is not None


def _require() -> None:
    if prometheus_client is None:
        raise ConfigError("metrics=true needs prometheus-client: pip install 'vectorstore[metrics]'")


def _family() -> dict[str, Any]:
    """The metric objects, registered once per process in the default registry."""
    global _metrics
    _require()
    with _lock:
        if _metrics is None:
            p = prometheus_client
            _metrics = {
                "calls": p.Counter("vectorstore_calls_total", "Calls of the store API, by outcome",
                                   ["operation", "collection", "backend", "outcome"]),
                "duration": p.Histogram("vectorstore_call_duration_seconds", "Duration of calls (retries included)",
                                        ["operation", "collection", "backend"], buckets=BUCKETS),
                "rows": p.Counter("vectorstore_rows_written_total", "Records written by successful calls",
                                  ["operation", "collection", "backend"]),
                "retries": p.Counter("vectorstore_retries_total", "Calls run again after a transient failure",
                                     ["operation", "backend", "error"]),
                "breaker": p.Gauge("vectorstore_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                                   ["backend", "store"]),
                "build": p.Histogram("vectorstore_index_build_seconds", "Index builds at the end of bulk loads",
                                     ["collection", "backend"], buckets=BUILD_BUCKETS),
                "cache": p.Counter("vectorstore_embedding_cache_total", "Embedding cache lookups",
                                   ["model", "result"]),
            }
            p.REGISTRY.register(_PoolCollector())
        return _metrics


class _PoolCollector(Collector):
    """Reads each metered store's pool statistics at scrape time (nothing is kept in between)."""

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily("vectorstore_pool_connections", "Connections of the store's pool",
                                   labels=["backend", "store", "state"])
        for source in list(_pools.values()):
            stats = source.stats()
            for state, value in stats.items():
                family.add_metric([source.backend, source.store, state], float(value))
        yield family


class _PoolSource:
    def __init__(self, backend: str, store: str, stats: Callable[[], dict[str, int]]) -> None:
        self.backend = backend
        self.store = store
        self.stats = stats


class PrometheusRecorder:
    """The :class:`~vectorstore.instruments.Recorder` that feeds the metrics above. ``store``
    tells the stores of one process apart in the per-store gauges (the pool, the breaker): the
    store's URL without password or options (:func:`vectorstore.config.display_url`)."""

    def __init__(self, backend: str, pool_stats: Callable[[], dict[str, int]] | None = None,
                 store: str = "") -> None:
        self._m = _family()
        #: The labelled metrics of each (operation, collection, backend, outcome) seen.
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}
        with _lock:  # (a second store on the same URL in this process gets "<url>#2", and so on)
            _stores[store] = seen = _stores.get(store, 0) + 1
        self._store = store if seen == 1 else f"{store}#{seen}"
        if pool_stats is not None:
            self._pool = _PoolSource(backend, self._store, pool_stats)  # (kept alive by the recorder)
            _pools[id(self._pool)] = self._pool

    def call(self, operation: str, collection: str | None, backend: str, outcome: str, seconds: float,
             rows: int) -> None:
        key = (operation, collection or "", backend, outcome)
        children = self._children.get(key)
        if children is None:  # (labels() validates and locks: done once per label set)
            name = key[1]
            children = self._children[key] = (
                self._m["calls"].labels(operation, name, backend, outcome),
                self._m["duration"].labels(operation, name, backend),
                self._m["rows"].labels(operation, name, backend) if outcome == "ok" and operation in WRITES else None)
        calls, duration, written = children
        calls.inc()
        duration.observe(seconds)
        if written is not None:
            written.inc(rows)

    def retry(self, operation: str, collection: str | None, backend: str, error: str) -> None:
        self._m["retries"].labels(operation, backend, error).inc()

    def breaker(self, backend: str, state: str) -> None:
        self._m["breaker"].labels(backend, self._store).set(BREAKER.get(state, -1))

    def index_build(self, collection: str, backend: str, seconds: float) -> None:
        self._m["build"].labels(collection, backend).observe(seconds)

    def cache(self, model: str, hits: int, misses: int) -> None:
        if hits:
            self._m["cache"].labels(model, "hit").inc(hits)
        if misses:
            self._m["cache"].labels(model, "miss").inc(misses)


def exposition() -> tuple[bytes, str]:
    """The default registry in the text exposition format, and its content type."""
    _require()
    return prometheus_client.generate_latest(), prometheus_client.CONTENT_TYPE_LATEST
