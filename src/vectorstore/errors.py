"""Typed exceptions. Every message says what was wrong and what to do about it.

All errors derive from :class:`VectorStoreError`, so ``except VectorStoreError``
catches everything this library raises on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence


class VectorStoreError(Exception):
    """Base class of every error raised by vectorstore."""


# -- bad input (nothing is written when one of these is raised) ------------------


class InvalidInput(VectorStoreError, ValueError):
    """A value passed by the caller is not acceptable."""


class InvalidName(InvalidInput):
    """A collection or field name is not a valid identifier."""


class InvalidVector(InvalidInput):
    """A vector is empty, non-numeric, or holds NaN / infinity."""


class DimensionMismatch(InvalidVector):
    """A vector's length differs from the collection's dimension."""


class InvalidRecord(InvalidInput):
    """A record's id, fields or metadata are not acceptable."""


class InvalidFilter(InvalidInput):
    """A filter names an unknown field or operator, or has a value of the wrong type."""


class InvalidSchema(InvalidInput):
    """A collection definition (metric, field type, index parameters) is not acceptable."""


class DuplicateId(InvalidRecord):
    """An id appears twice in one batch, or ``insert`` met an id that already exists."""

    def __init__(self, message: str, ids: Sequence[object] | None = None) -> None:
        super().__init__(message)
        self.ids = list(ids or [])


# -- state ---------------------------------------------------------------------


class CollectionNotFound(VectorStoreError, LookupError):
    """The named collection does not exist."""

    @classmethod
    def named(cls, name: str) -> CollectionNotFound:
        """The one wording every backend uses."""
        return cls(f"collection {name!r} does not exist; create it with store.create_collection()")


class CollectionExists(VectorStoreError):
    """A collection of that name already exists with a different definition."""


class StoreClosed(VectorStoreError):
    """The store was closed; open a new one with ``connect()`` / ``open_store()``."""


class TransactionConflict(VectorStoreError):
    """A transaction lost a race with a concurrent one (serialization failure or deadlock) and was
    rolled back. Nothing it wrote was kept; running it again is safe and usually succeeds."""


class TransactionError(VectorStoreError):
    """A transaction was misused (for example closed twice)."""


# -- environment ---------------------------------------------------------------


class ConfigError(VectorStoreError):
    """The store URL or environment configuration is not usable."""


class UnknownBackend(ConfigError):
    """No installed backend plugin handles the URL's scheme."""


class BackendUnavailable(VectorStoreError):
    """The database could not be reached, or stopped answering in time. The call did not take
    effect (a write that may have is :class:`OutcomeUnknown` instead): running it again is safe."""

    #: A failure that running the call again may not meet (the server or network may come back).
    transient = True


class DeadlineExceeded(BackendUnavailable):
    """The call's client-side deadline passed before the database answered (the ``deadline``
    option); a read (or a write known not to have been sent) that did not take effect."""


class CircuitOpen(BackendUnavailable):
    """The store is failing fast: its last calls met the database unreachable, so calls are
    refused without trying until a probe finds it back (the ``breaker_*`` options)."""


class StatementTimeout(BackendUnavailable):
    """The database cancelled a statement that ran past its statement timeout (a lock held by
    another session, an overloaded server, a query bigger than the timeout allows). The database
    is up and nothing was changed; the call is not run again by itself, because it would most
    likely spend the whole timeout again. Raise the backend's statement timeout option for big
    calls, or look for the session holding the lock."""


class OutcomeUnknown(VectorStoreError):
    """A write was sent but its acknowledgement was lost (the connection broke, or the deadline
    passed, before the server answered): it may or may not have been committed. The library runs
    idempotent writes (upsert, delete) again by itself; ``insert``, id allocation and
    transactions are never run again blindly. Check with ``get()`` whether the records are there
    before running it again. ``operation`` names the call."""

    transient = False

    def __init__(self, message: str, operation: str = "") -> None:
        super().__init__(message)
        self.operation = operation


class ExtensionMissing(BackendUnavailable):
    """The database lacks the vector extension this backend needs."""


class NotSupported(VectorStoreError):
    """The backend does not declare the capability this call needs."""
