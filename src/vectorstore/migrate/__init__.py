"""``vectorstore migrate``: carry an AgentDB file (either schema variant) or a vectorstore SQLite
store into any vectorstore target, losslessly, with validation, resume and rollback.

See ``docs/migration.md`` for the user guide and the lossless policy.
"""

from __future__ import annotations

from .engine import (
    BATCHES,
    RUNS,
    Interrupted,
    MigrationError,
    dry_run,
    migrate,
    read_overflow,
    rollback,
    rollback_url,
    status,
    status_url,
    store_checksums,
    validate,
)
from .sources import BadArgument, IncompatibleTarget, SourceError, open_source

__all__ = ["BATCHES", "RUNS", "BadArgument", "IncompatibleTarget", "Interrupted", "MigrationError", "SourceError",
           "dry_run", "migrate", "open_source", "read_overflow", "rollback", "rollback_url", "status", "status_url",
           "store_checksums", "validate"]
