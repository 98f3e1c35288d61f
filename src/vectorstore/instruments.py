"""What the cross-cutting layer reports, in one vocabulary: operation, collection, backend,
outcome. Logs go through the stdlib logger ``vectorstore`` (structured: every record carries
those names as ``extra`` fields, so a JSON formatter prints them as keys; never a vector or a
secret); metrics through prometheus-client when the ``metrics`` extra is installed and the store
is opened with ``metrics=true`` (see :mod:`vectorstore.metrics`)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger("vectorstore")


class Recorder(Protocol):
    """A sink for the layer's events (the metrics module implements it)."""

    def call(self, operation: str, collection: str | None, backend: str, outcome: str, seconds: float,
             rows: int) -> None: ...

    def retry(self, operation: str, collection: str | None, backend: str, error: str) -> None: ...

    def breaker(self, backend: str, state: str) -> None: ...


class Instruments:
    """The layer's reporting: structured log lines and, when given, a metrics recorder."""

    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder = recorder

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
