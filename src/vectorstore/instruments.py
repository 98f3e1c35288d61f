"""What the cross-cutting layer reports, in one vocabulary: operation, collection, backend,
outcome. Logs go through the stdlib logger ``vectorstore`` (structured: every record carries
those names as ``extra`` fields, so a JSON formatter prints them as keys; never a vector or a
secret); metrics through prometheus-client when the ``metrics`` extra is installed and the store
is opened with ``metrics=true`` (see :mod:`vectorstore.metrics`)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Protocol

log = logging.getLogger("vectorstore")


class Recorder(Protocol):
    """A sink for the layer's events (the metrics module implements it)."""

    def call(self, operation: str, collection: str | None, backend: str, outcome: str, seconds: float,
             rows: int) -> None: ...

    def retry(self, operation: str, collection: str | None, backend: str, error: str) -> None: ...

    def breaker(self, backend: str, state: str) -> None: ...

    def index_build(self, collection: str, backend: str, seconds: float) -> None: ...

    def cache(self, model: str, hits: int, misses: int) -> None: ...


#: OpenTelemetry's db.system.name per backend (semantic conventions for database clients).
DB_SYSTEMS = {"postgres": "postgresql", "sqlite": "sqlite", "memory": "other_sql"}


class Instruments:
    """The layer's reporting: structured log lines and, when given, a metrics recorder and an
    OpenTelemetry tracer (spans follow the database client semantic conventions)."""

    def __init__(self, recorder: Recorder | None = None, tracer: Any = None) -> None:
        self.recorder = recorder
        self.tracer = tracer

    def span(self, operation: str, collection: str | None, backend: str) -> contextlib.AbstractContextManager[Any]:
        """A client span around one call (a no-op without a tracer)."""
        if self.tracer is None:
            return contextlib.nullcontext()
        attributes = {"db.system.name": DB_SYSTEMS.get(backend, backend), "db.operation.name": operation}
        if collection:
            attributes["db.collection.name"] = collection
        name = f"{operation} {collection}" if collection else operation
        span: contextlib.AbstractContextManager[Any] = self.tracer.start_as_current_span(
            name, kind=_client_kind(), attributes=attributes, record_exception=True, set_status_on_exception=True)
        return span

    def index_build(self, collection: str, backend: str, seconds: float) -> None:
        if self.recorder is not None:
            self.recorder.index_build(collection, backend, seconds)
        log.info("bulk load of %s ended in %.3fs (index builds included)", collection, seconds,
                 extra=_fields("bulk_load", collection, backend, event="bulk_load_end", seconds=round(seconds, 6)))

    def cache(self, model: str, hits: int, misses: int) -> None:
        if self.recorder is not None:
            self.recorder.cache(model, hits, misses)

    def call(self, operation: str, collection: str | None, backend: str, outcome: str, seconds: float,
             rows: int) -> None:
        if self.recorder is not None:
            self.recorder.call(operation, collection, backend, outcome, seconds, rows)
        if outcome != "ok" and outcome != "bad_input":
            log.warning("%s on %s failed: %s", operation, collection or "-", outcome,
                        extra=_fields(operation, collection, backend, outcome=outcome, seconds=round(seconds, 6),
                                      rows=rows))

    def slow(self, operation: str, collection: str | None, backend: str, seconds: float, rows: int) -> None:
        log.warning("slow %s on %s: %.3fs", operation, collection or "-", seconds,
                    extra=_fields(operation, collection, backend, event="slow_call", seconds=round(seconds, 6),
                                  rows=rows))

    def retry(self, operation: str, collection: str | None, backend: str, error: str, attempt: int,
              sleep: float) -> None:
        if self.recorder is not None:
            self.recorder.retry(operation, collection, backend, error)
        log.warning("%s on %s: %s, attempt %d failed; retrying in %.3fs", operation, collection or "-", error,
                    attempt, sleep, extra=_fields(operation, collection, backend, event="retry", error=error,
                                                  attempt=attempt, sleep=round(sleep, 6)))

    def breaker(self, backend: str, state: str) -> None:
        if self.recorder is not None:
            self.recorder.breaker(backend, state)
        log.log(logging.INFO if state == "closed" else logging.WARNING, "circuit breaker of %s: %s", backend, state,
                extra={"vs_event": "breaker", "vs_backend": backend, "vs_state": state})


def _fields(operation: str, collection: str | None, backend: str, **more: Any) -> dict[str, Any]:
    # Prefixed: LogRecord attributes (e.g. "name", "msg") must not be overwritten by extras.
    return {"vs_operation": operation, "vs_collection": collection, "vs_backend": backend,
            **{f"vs_{key}": value for key, value in more.items()}}


def _client_kind() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.CLIENT


def tracer() -> Any:
    """vectorstore's OpenTelemetry tracer (the ``tracing`` extra), or ConfigError."""
    try:
        from opentelemetry import trace
    except ImportError:
        from vectorstore.errors import ConfigError

        raise ConfigError("tracing=true needs opentelemetry-api: pip install 'vectorstore[tracing]'") from None
    from vectorstore import __version__

    return trace.get_tracer("vectorstore", __version__)
