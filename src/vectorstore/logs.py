"""JSON log lines for vectorstore's logger (the ``ops`` extra: python-json-logger).

The library logs through the stdlib logger ``vectorstore`` (children: ``vectorstore.postgres``,
``vectorstore.plugins``...) and never configures logging itself: an application routes those
records wherever its own go. :func:`configure` is the ready-made choice (``vectorstore serve``
uses it): one JSON object per line on stderr, with the layer's fields as keys::

    {"time": "...", "level": "WARNING", "logger": "vectorstore", "message": "count on docs failed: unavailable",
     "event": null, "operation": "count", "collection": "docs", "backend": "postgres", "outcome": "unavailable",
     "seconds": 0.201, "rows": 1}

No record carries a vector, a record's content or a secret: only names, outcomes and timings.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
PREFIX = "vs_"


def formatter() -> logging.Formatter:
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:
        from vectorstore.errors import ConfigError

        raise ConfigError("JSON logs need python-json-logger: pip install 'vectorstore[ops]'") from None

    class Formatter(JsonFormatter):
        def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
            # The layer's extras carry a prefix (a LogRecord's own attributes must not be
            # overwritten); the JSON keys drop it: operation, collection, backend, outcome...
            out: dict[str, Any] = {}
            for key, value in log_record.items():
                out[key[len(PREFIX):] if key.startswith(PREFIX) else key] = value
            return out

    return Formatter(FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})


#: The drivers' loggers whose warnings (a failed connection attempt of the pool...) an operator
#: wants in the same stream: :func:`configure` sends their WARNING and above as JSON too.
DRIVER_LOGGERS = ("psycopg",)


def configure(level: int | str = logging.INFO, stream: IO[str] | None = None) -> logging.Handler:
    """Send the ``vectorstore`` logger's records, and the drivers' warnings
    (:data:`DRIVER_LOGGERS`), to ``stream`` (stderr) as JSON lines; returns the handler (remove it
    from those loggers to undo)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter())
    logger = logging.getLogger("vectorstore")
    logger.addHandler(handler)
    logger.setLevel(level)
    for name in DRIVER_LOGGERS:
        driver = logging.getLogger(name)
        driver.addHandler(handler)
        if driver.level == logging.NOTSET:  # (a level the application chose stands)
            driver.setLevel(logging.WARNING)
    return handler
