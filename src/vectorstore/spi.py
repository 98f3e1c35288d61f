"""The backend service-provider interface: what a backend plugin implements.

The core validates every input (names, vectors, fields, filters, ``k``...) before
calling a backend, so a backend receives a :class:`~vectorstore.records.RecordBatch`
and a parsed :data:`~vectorstore.filters.Filter` it can trust. The executable
specification of this interface is the conformance suite
(``vectorstore_conformance``): a backend is correct when the suite passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from vectorstore.errors import InvalidInput
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
    - ``exact_search``: search returns the exact top k at every size with the default settings
      (recall 1.0); otherwise it is approximate somewhere (HNSW, quantized candidates).
    - ``concurrent_processes``: several processes may open the same store at once.
    - ``default_recall``: the recall@10 an approximate backend promises at default settings on
      any data (the suite's recall tests hold it to this, and never to less than
      :data:`MIN_DEFAULT_RECALL`); 1.0 for an exact backend.
    - ``high_recall_ef_search``: the ``ef_search`` at which an approximate backend promises
      recall@10 >= :data:`HIGH_RECALL` (its documented high-recall setting); None for an exact one.
    """

    persistent: bool = True
    transactions: bool = True
    exact_search: bool = True
    concurrent_processes: bool = True
    default_recall: float = attrs.field(
        default=attrs.Factory(lambda self: 1.0 if self.exact_search else MIN_DEFAULT_RECALL, takes_self=True))
    high_recall_ef_search: int | None = None

    @default_recall.validator
    def _check_recall(self, attribute: Any, value: float) -> None:
        if self.exact_search and value != 1.0:
            raise ValueError(f"an exact_search backend has default_recall 1.0, got {value!r}; "
                             "declare exact_search=False for an approximate backend")
        if not MIN_DEFAULT_RECALL <= value <= 1.0:
            raise ValueError(f"default_recall must be from {MIN_DEFAULT_RECALL} to 1.0, got {value!r}")


#: The least recall@10 an approximate backend may promise at default settings.
MIN_DEFAULT_RECALL = 0.95
#: The recall@10 an approximate backend must reach at its ``high_recall_ef_search``.
HIGH_RECALL = 0.99


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


#: The largest int id (64-bit signed, as every backend stores it).
MAX_ID = 2**63 - 1


def check_id_space(start: int, n: int, collection: str) -> None:
    """For :meth:`Backend.allocate_ids`: refuse, before anything moves, ``n`` ids from ``start``
    that would pass :data:`MAX_ID`."""
    if n > 0 and start + n - 1 > MAX_ID:
        raise id_space_exhausted(collection, n, max(0, MAX_ID - start + 1))


def id_space_exhausted(collection: str, n: int, left: int | None = None) -> InvalidInput:
    have = "fewer" if left is None else f"{left:,}"
    return InvalidInput(
        f"collection {collection!r} has {have} int ids left below 2**63 - 1 and {n:,} were asked for; ids are "
        "never reused, so its id space is exhausted: give records explicit ids, or copy the records to a new "
        "collection")


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
    ``test_cleanup(url)``, if given, removes what a ``test_url`` outside ``tmp_path`` left
    (called after each test, the store closed).
    ``options`` names the backend's own options with their defaults (the common ones of
    :data:`vectorstore.config.COMMON_OPTIONS` are added); ``passthrough(name)`` tells which other
    names its driver takes (PostgreSQL: libpq parameters), described by ``passthrough_help`` in
    the error that lists the known options. The core checks a URL against them once, for every
    backend, before ``factory`` or ``exists`` sees it (:meth:`bind`).
    """

    name: str
    schemes: tuple[str, ...]
    factory: BackendFactory
    version: str = "0"
    description: str = ""
    capabilities: Capabilities = Capabilities()
    test_url: Callable[[str | None, Path], str] | None = None
    exists: Callable[[StoreConfig], Awaitable[bool]] | None = None
    test_cleanup: Callable[[str], None] | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    passthrough: Callable[[str], bool] | None = None
    passthrough_help: str = ""

    def bind(self, config: StoreConfig) -> StoreConfig:
        """``config`` checked and completed against this backend's options (unknown ones raise
        ConfigError listing the known ones)."""
        from vectorstore.config import COMMON_OPTIONS

        return config.bind({**COMMON_OPTIONS, **self.options}, self.passthrough, self.passthrough_help)


# -- benchmarking (optional) -------------------------------------------------------


@attrs.frozen(slots=True)
class ExplainedSearch:
    """One search as the server explains it (:meth:`Benchmarkable.bench_explain`,
    :meth:`RawBaseline.explain`): what it cost the server alone, and the plan it ran."""

    #: The server's own execution time of the search in milliseconds, without the client or the
    #: network (PostgreSQL: the ``"Execution Time"`` of ``EXPLAIN (ANALYZE)``).
    server_ms: float
    #: The plan as the server gives it (PostgreSQL: the object of ``EXPLAIN (ANALYZE, BUFFERS,
    #: FORMAT JSON)``), for whoever wants to read it; the bench reports ``server_ms``.
    plan: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class CeilingStatements:
    """What the bench's C-client ceiling sends (:meth:`Benchmarkable.bench_ceiling`): the backend's
    own search statements, run by ``pgbench`` (PostgreSQL's load generator) over the PostgreSQL
    protocol, so only a backend on a PostgreSQL-compatible server offers them."""

    #: The statement a search sends, one per query vector, its values written in as SQL
    #: literals, each on one line.
    statements: tuple[str, ...]
    #: The session settings a search runs under, as (name, value); sent as ``-c name=value``.
    settings: tuple[tuple[str, str], ...]
    #: A libpq connection string to the store's database. It may hold a password: never print or
    #: log it (the bench hands the password to pgbench in ``PGPASSWORD``). Left out of ``repr``.
    conninfo: str = attrs.field(repr=False)


@attrs.frozen(slots=True)
class ServerFacts:
    """What the report says about the server under a case (:meth:`Benchmarkable.bench_server`)."""

    #: JSON values: the case's ``server`` in the bench's JSON (versions, memory settings, sizes).
    facts: dict[str, Any] = attrs.field(factory=dict)
    #: Lines for the bench's log, on what the reader of the numbers should know (for example
    #: that the data outgrew the server's buffer cache).
    notes: tuple[str, ...] = ()


class RawBaseline(Protocol):
    """A hand-written baseline on a backend's own driver, what a careful user would write without
    vectorstore; :meth:`Benchmarkable.bench_baseline` makes one per benchmark case, open.

    The data: record ``i`` (from 0) has the id ``i + 1``, the vector ``vectors[i]``, an int field
    ``bucket = buckets[i]`` and the metadata ``{"n": i + 1}``. A search returns rows as the driver
    gives them, nearest first, each starting with the id and carrying what vectorstore's hits carry
    (id, bucket, metadata, distance). Calls may block (a synchronous driver): the bench awaits
    one at a time, except through :meth:`clients`.
    """

    #: How it stores the data, for the bench's log (``"binary COPY"``).
    description: str
    #: Whether its search is exact (brute force). Then it has no ``ef_search`` to sweep (the
    #: latency-vs-recall sweep shows it as one point, ``exact``, and :meth:`set_ef_search` is not
    #: called), and concurrent rates are taken over fewer searches (at least half the queries and 8
    #: per client, instead of 4 times the queries and 100 per client).
    exact: bool
    #: Whether loads and concurrent rates vary from one run to the next (a server's checkpoints and
    #: caches, cores shared with the client). Then the bench measures each ``rounds`` times, the sides
    #: taking turns (loads into scratch tables; concurrent rates after a warm-up), and reports the
    #: median with every round; otherwise once.
    repeat: bool

    async def load(self, vectors: Vector, buckets: Sequence[int], *, scratch: bool = False) -> float:
        """Create the table the searches read and load every record into it; return the seconds of
        the load itself. With ``scratch``, into a new table dropped afterwards (a load measured
        once more, searched never)."""

    async def build_index(self, spec: CollectionSpec) -> float | None:
        """Build over the loaded table the search index vectorstore's collection ``spec`` has, with
        its parameters (``spec.index``); return the seconds, or None when there is none to build."""

    async def search(self, query: Vector, k: int) -> Sequence[Sequence[Any]]:
        """The ``k`` nearest records."""

    async def search_filtered(self, query: Vector, k: int, below: int) -> Sequence[Sequence[Any]]:
        """The ``k`` nearest records whose ``bucket`` is less than ``below``."""

    async def search_many(self, queries: Vector, k: int) -> Sequence[Sequence[Sequence[Any]]]:
        """Every query of ``queries``, the way the driver does many best (a pipeline; else a loop)."""

    async def set_ef_search(self, ef_search: int | None) -> None:
        """Search with this ``ef_search`` from now on; None: the default (vectorstore's)."""

    async def explain(self, query: Vector, k: int) -> ExplainedSearch | None:
        """:meth:`search` run once and explained by the server; None without a server to ask."""

    def clients(self, count: int, queries: Vector,
                k: int) -> contextlib.AbstractAsyncContextManager[Callable[[int, int], Awaitable[float]]]:
        """``count`` concurrent clients, each with a connection of its own (a pool, threads), as
        a function ``rate(total, warmup)``: the searches per second of ``total`` searches of
        ``queries[i % len(queries)]`` issued back to back by the clients, after ``warmup`` untimed
        ones. Their connections close when the block ends."""

    async def close(self) -> None:
        """Close its connections (what it stored goes with :meth:`Benchmarkable.bench_discard` or
        the work directory)."""


@runtime_checkable
class Benchmarkable(Protocol):
    """Optional, for a backend that ``vectorstore bench`` can measure beside a hand-written
    baseline on the backend's own driver (the built-in sqlite and postgres backends implement it;
    a third-party backend that does is benchmarked the same way: ``vectorstore bench --backend
    NAME``).

    The bench opens a throwaway store at the backend's :attr:`BackendSpec.test_url` (given the base
    URL of ``--url NAME=URL``, else ``VECTORSTORE_BENCH_<NAME>_URL``, else None; and a fresh work
    directory), reopens it with :meth:`bench_store_options`, loads the same data into a collection
    and into :meth:`bench_baseline`, measures both query by query, and calls :meth:`bench_discard`
    last. Parts a backend cannot offer return None, and the bench leaves their measurements out:
    :meth:`bench_explain` (the server's part of a search) and :meth:`bench_ceiling` (the rate
    pgbench reaches with the backend's own statements).
    """

    #: Whether ``bulk_load()`` builds an index when it ends: the bench reports that time as
    #: vectorstore's index build (otherwise it reports none).
    bench_builds_index: bool

    def bench_store_options(self, clients: int) -> dict[str, Any]:
        """Options (as for ``open_store``) the bench's store needs to serve ``clients`` concurrent
        searches (PostgreSQL: ``pool_max``); empty when it needs none."""

    async def bench_baseline(self, dim: int, metric: str, workdir: Path) -> RawBaseline:
        """A new, open baseline for ``dim``-dimensional vectors compared by ``metric`` (the
        bench's data sets use ``cosine``), on the same server or disk as this store: tables in the
        store's space (:meth:`bench_discard` removes them) or files under ``workdir`` (the bench
        deletes it). Raise :class:`~vectorstore.errors.NotSupported` for a metric it cannot compare."""

    async def bench_server(self) -> ServerFacts:
        """Facts about the server for the report (versions, memory), asked once both sides are
        loaded."""

    async def bench_explain(self, spec: CollectionSpec, query: Vector, k: int) -> ExplainedSearch | None:
        """The search of ``query`` for ``k`` hits with the default settings, run once and explained
        by the server; None when there is no server whose part can be told apart."""

    async def bench_ceiling(self, spec: CollectionSpec, queries: Vector, k: int) -> CeilingStatements | None:
        """The statements the searches of ``queries`` for ``k`` hits send, for pgbench; None for a
        backend whose server does not speak the PostgreSQL protocol."""

    async def bench_discard(self) -> None:
        """Remove everything this store and its baselines created outside the work directory
        (PostgreSQL: the store's schema, with the baseline's tables); called last, before
        ``aclose``, also after a failed case."""
