"""vectorstore: one vector-store API over SQLite, PostgreSQL (pgvector / ruvector) and memory.

Async::

    store = await vectorstore.open_store("sqlite:///./data/app.db")
    movies = await store.create_collection("movies", dim=384, fields={"year": "int"})

Sync (same method names)::

    store = vectorstore.connect("postgresql://app@db/app")
"""

import logging

from vectorstore.errors import (
    BackendUnavailable,
    CircuitOpen,
    CollectionExists,
    CollectionNotFound,
    ConfigError,
    DeadlineExceeded,
    DimensionMismatch,
    DuplicateId,
    ExtensionMissing,
    InvalidFilter,
    InvalidInput,
    InvalidName,
    InvalidRecord,
    InvalidSchema,
    InvalidVector,
    NotSupported,
    OutcomeUnknown,
    StatementTimeout,
    StoreClosed,
    TransactionConflict,
    TransactionError,
    UnknownBackend,
    VectorStoreError,
)
from vectorstore.filters import And, Comparison, MatchAll, MetaComparison, Not, Op, Or
from vectorstore.hookspecs import hookimpl
from vectorstore.records import Hit, Record
from vectorstore.schema import HNSW, CollectionSpec, FieldType, IdType, Metric
from vectorstore.spi import BackendSpec, Capabilities, Check, Health
from vectorstore.store import AsyncCollection, AsyncStore, open_store, store_exists_async
from vectorstore.sync import Collection, Store, connect, store_exists

__version__ = "0.1.0"

# A library does not print: its records reach the application's handlers, or nowhere (not
# Python's last-resort stderr handler). vectorstore.logs.configure() is the JSON-lines choice.
logging.getLogger("vectorstore").addHandler(logging.NullHandler())

__all__ = [
    "And",
    "AsyncCollection",
    "AsyncStore",
    "BackendSpec",
    "BackendUnavailable",
    "Capabilities",
    "Check",
    "CircuitOpen",
    "Collection",
    "CollectionExists",
    "CollectionNotFound",
    "CollectionSpec",
    "Comparison",
    "ConfigError",
    "DeadlineExceeded",
    "DimensionMismatch",
    "DuplicateId",
    "ExtensionMissing",
    "FieldType",
    "HNSW",
    "Health",
    "Hit",
    "IdType",
    "InvalidFilter",
    "InvalidInput",
    "InvalidName",
    "InvalidRecord",
    "InvalidSchema",
    "InvalidVector",
    "MatchAll",
    "MetaComparison",
    "Metric",
    "Not",
    "NotSupported",
    "Op",
    "Or",
    "OutcomeUnknown",
    "StatementTimeout",
    "Record",
    "Store",
    "StoreClosed",
    "TransactionConflict",
    "TransactionError",
    "UnknownBackend",
    "VectorStoreError",
    "connect",
    "hookimpl",
    "open_store",
    "store_exists",
    "store_exists_async",
]
