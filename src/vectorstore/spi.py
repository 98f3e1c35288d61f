"""The backend service-provider interface: what a backend plugin implements.

The core validates every input (names, vectors, fields, filters, ``k``...) before
calling a backend, so a backend receives a :class:`~vectorstore.records.RecordBatch`
and a parsed :data:`~vectorstore.filters.Filter` it can trust. The executable
specification of this interface is the conformance suite
(``vectorstore_conformance``): a backend is correct when the suite passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from vectorstore.filters import Filter
from vectorstore.records import BatchParts, Hit, Record, RecordBatch, RecordId, Vector
from vectorstore.schema import CollectionSpec

if TYPE_CHECKING:
    from vectorstore.config import StoreConfig


@attrs.frozen(slots=True)
class Capabilities:
    """What a backend declares it can do. The conformance suite tests both sides:
    a declared capability must work; an undeclared one must raise
    :class:`~vectorstore.errors.NotSupported` (where there is a call to refuse).

    - ``persistent``: data survives closing and reopening the store.
    - ``transactions``: ``store.transaction()`` commits or rolls back atomically.
    - ``exact_search``: search is exhaustive (recall 1.0); otherwise approximate (HNSW).
    - ``concurrent_processes``: several processes may open the same store at once.
    """

    persistent: bool = True
    transactions: bool = True
    exact_search: bool = True
    concurrent_processes: bool = True


@attrs.frozen(slots=True)
class Check:
    """One line of ``vectorstore doctor``: ``ok`` is True, False (a problem) or None (a warning)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


@attrs.frozen(slots=True)
class Health:
    ok: bool
    backend: str
    latency_ms: float
    details: dict[str, Any] = attrs.field(factory=dict)


@runtime_checkable
class Backend(Protocol):
    """An open connection to one store. All methods are coroutines unless noted."""

    name: str
    capabilities: Capabilities

    # catalog
    async def create_collection(self, spec: CollectionSpec) -> None:
        """Create the collection; raise CollectionExists if the name is taken."""

    async def get_collection(self, name: str) -> CollectionSpec:
        """Return the stored definition; raise CollectionNotFound."""

    async def list_collections(self) -> list[CollectionSpec]:
        """Every collection, sorted by name."""

    async def drop_collection(self, name: str) -> bool:
        """Drop it with all its records; return False if it did not exist."""

    # records
    async def upsert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        """Insert or replace every record of the batch, all or nothing."""

    async def insert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        """Insert every record; raise DuplicateId (naming the ids) if any exists, writing nothing."""

    async def get(self, spec: CollectionSpec, ids: Sequence[RecordId]) -> list[Record]:
        """Records with these ids, in the order asked, each once; missing ids are left out."""

    async def delete(self, spec: CollectionSpec, ids: Sequence[RecordId] | None, where: Filter | None) -> int:
        """Delete by ids, or by filter (``MatchAll`` deletes all); return how many were deleted."""

    async def count(self, spec: CollectionSpec, where: Filter) -> int: ...

    async def search(
        self,
        spec: CollectionSpec,
        queries: Vector,
        k: int,
        where: Filter,
        max_distance: float | None,
        ef_search: int | None,
        include_vector: bool,
    ) -> list[list[Hit]]:
        """For each query row, up to ``k`` hits nearest first, ties by id ascending.

        Only records matching ``where`` and with ``distance <= max_distance`` count; when
        ``k`` matching records exist, ``k`` hits come back (filtering never starves results).
        """

    async def allocate_ids(self, spec: CollectionSpec, n: int, after: int) -> list[int]:
        """``n`` consecutive new ids for an int-id collection, each greater than every id in the
        collection, every id allocated before, and ``after``. Ids are never handed out twice
        (SQLite AUTOINCREMENT semantics); ``n = 0`` only moves the sequence past ``after``.
        Runs inside the caller's transaction if there is one."""

    async def page(self, spec: CollectionSpec, after: RecordId | None, limit: int, where: Filter) -> list[Record]:
        """Up to ``limit`` records with id > ``after`` matching ``where``, ordered by id (ints
        numerically, text by code point)."""

    async def last_id(self, spec: CollectionSpec) -> int:
        """Where an int-id collection's sequence stands: the greatest of every id allocated so far
        and every id stored (0 when there are none). Read only: the sequence does not move, and
        :meth:`allocate_ids` hands out ids above it. (``export`` carries it to another store.)"""

    def bulk_load(self, spec: CollectionSpec) -> contextlib.AbstractAsyncContextManager[None]:
        """A bulk load of the collection: writes inside the block go as usual (each its own
        transaction, or the caller's), but the backend may stop maintaining secondary vector
        indexes (HNSW) and build them once when the block ends, which is far faster than
        maintaining them record by record. The core enters it only outside a transaction.

        The contract, for a backend that defers anything:

        - every read stays correct inside and after the block; a search with no index to use
          is exact;
        - when the block ends, normally or by an exception, the index is built once the last
          bulk load of the collection ends: nested and concurrent bulk loads (other tasks or
          processes) are safe, and only the last one to leave builds;
        - a process that dies inside the block must not leave the collection without its index
          unnoticed: the backend records that the index is pending (durably, before dropping
          it), :meth:`doctor` reports it with a fix, and the next bulk load of the collection
          to end builds it (so an empty ``bulk_load()`` block repairs it).

        A backend with nothing to defer (memory, sqlite) returns a context manager that does
        nothing."""

    def transaction(self, serializable: bool = False) -> contextlib.AbstractAsyncContextManager[None]:
        """Everything awaited inside commits together or not at all; nests as savepoints.

        ``serializable=True`` asks for SERIALIZABLE isolation on the outermost transaction (a
        nested one is a savepoint of its parent and inherits the parent's isolation). A lost race
        raises :class:`~vectorstore.errors.TransactionConflict`, also from the commit; once raised,
        the whole transaction is lost: it rolls back at the end of the block even if the caller
        caught the error inside it."""

    def in_transaction(self) -> bool:
        """Whether the calling task runs inside a transaction of this backend (not a coroutine)."""

    async def health(self) -> Health: ...

    async def doctor(self) -> list[Check]:
        """Versions, settings and problems, each problem with a fix."""

    async def aclose(self) -> None: ...


@runtime_checkable
class WritesInParts(Protocol):
    """Optional, for a backend that can stream a large write: the core hands it a batch of at
    least :data:`PARTS_ABOVE` records, all with ids, as a :class:`~vectorstore.records.BatchParts`
    instead of validating it all first. The backend iterates the parts while it writes (so the
    server stores one part while the next is being checked), all in one transaction: a record
    that fails its checks raises from the iteration, and nothing may remain written. Semantics
    are otherwise those of :meth:`Backend.upsert` / :meth:`Backend.insert`."""

    async def write_parts(self, spec: CollectionSpec, parts: BatchParts, *, replace: bool) -> None:
        """Upsert (``replace=True``) or insert every record of ``parts``, all or nothing."""


#: Batches at least this large go to :meth:`WritesInParts.write_parts` where a backend has it.
PARTS_ABOVE = 4000


BackendFactory = Callable[["StoreConfig"], Awaitable[Backend]]


@attrs.frozen(slots=True)
class BackendSpec:
    """What a plugin returns from ``vectorstore_register_backends``.

    ``factory`` opens a store; it should import the backend's driver lazily.
    ``test_url`` returns the URL of a new, empty store for the conformance suite:
    ``test_url(base_url, tmp_path)``, where ``base_url`` is the URL the tester gave
    (or None) and ``tmp_path`` a fresh directory.
    ``exists(config)`` tells whether a store already exists at the URL, without creating or
    changing anything (opening a store creates it); ``None`` when the backend cannot tell.
    """

    name: str
    schemes: tuple[str, ...]
    factory: BackendFactory
    version: str = "0"
    description: str = ""
    capabilities: Capabilities = Capabilities()
    test_url: Callable[[str | None, Path], str] | None = None
    exists: Callable[[StoreConfig], Awaitable[bool]] | None = None

