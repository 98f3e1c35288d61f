"""The reference backend. Its behaviour *is* the contract: the conformance suite
compares every other backend's results with this one's.

Scores are computed in float64 from the stored float32 vectors; filters are
evaluated by :func:`vectorstore.filters.matches`. A transaction takes an asyncio
lock (so transactions are serialisable) and snapshots the state to restore on
rollback; savepoints nest the same way. While a transaction is open, reads from
outside it see the snapshot: its writes are invisible until it commits.

A collection without vectors (``dim=None``) keeps no vector: every row's ``vector`` is None
(the core refuses a vector for it), and a search of it finds nothing (the core refuses the
search first).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import attrs
import numpy as np

from vectorstore.errors import CollectionExists, CollectionNotFound, DuplicateId
from vectorstore.filters import Filter, MatchAll, matches
from vectorstore.records import Hit, Record, RecordBatch, RecordId, Vector
from vectorstore.schema import CollectionSpec
from vectorstore.scoring import exact_distances
from vectorstore.spi import Capabilities, Check, Health, check_id_space

CAPABILITIES = Capabilities(persistent=False, transactions=True, exact_search=True, concurrent_processes=False)


@attrs.define(slots=True)
class _Row:
    vector: Vector | None
    fields: dict[str, Any]
    metadata: dict[str, Any]


@attrs.define(slots=True)
class _Table:
    spec: CollectionSpec
    rows: dict[RecordId, _Row] = attrs.field(factory=dict)
    last_id: int = 0  # the highest id ever allocated (int-id collections)

    def copy(self) -> _Table:
        return _Table(self.spec, dict(self.rows), self.last_id)


class MemoryBackend:
    name = "memory"
    capabilities = CAPABILITIES

    def __init__(self) -> None:
        self._tables: dict[str, _Table] = {}
        self._lock = asyncio.Lock()
        self._snapshots: contextvars.ContextVar[list[dict[str, _Table]] | None] = contextvars.ContextVar(
            f"vectorstore_memory_txn_{id(self)}", default=None)
        #: The committed state while a transaction is open (what outside readers see).
        self._committed: dict[str, _Table] | None = None
        self._closed = False

    # -- locking -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        """Hold the store lock unless this task is already inside our transaction."""
        if self._snapshots.get() is not None:
            yield
            return
        async with self._lock:
            yield

    def _snapshot(self) -> dict[str, _Table]:
        return {name: table.copy() for name, table in self._tables.items()}

    @contextlib.asynccontextmanager
    async def transaction(self, serializable: bool = False) -> AsyncIterator[None]:
        # Transactions hold the store lock, so they are always serializable.
        stack = self._snapshots.get()
        if stack is not None:  # nested: a savepoint
            stack.append(self._snapshot())
            try:
                yield
            except BaseException:
                self._tables = stack.pop()
                raise
            else:
                stack.pop()
            return
        async with self._lock:
            # The snapshot is never mutated: writes replace rows in self._tables' own dicts.
            committed = self._snapshot()
            token = self._snapshots.set([committed])
            self._committed = committed
            try:
                yield
            except BaseException:
                self._tables = committed
                raise
            finally:
                self._committed = None
                self._snapshots.reset(token)

    def _view(self) -> dict[str, _Table]:
        """The tables this task may read: its own transaction's, or the committed ones."""
        if self._committed is not None and self._snapshots.get() is None:
            return self._committed
        return self._tables

    def _table(self, name: str, *, read: bool = False) -> _Table:
        table = (self._view() if read else self._tables).get(name)
        if table is None:
            raise CollectionNotFound.named(name)
        return table

    # -- catalog -----------------------------------------------------------

    async def create_collection(self, spec: CollectionSpec) -> None:
        async with self._write():
            if spec.name in self._tables:
                raise CollectionExists(f"collection {spec.name!r} already exists")
            self._tables[spec.name] = _Table(spec)

    async def get_collection(self, name: str) -> CollectionSpec:
        return self._table(name, read=True).spec

    async def list_collections(self) -> list[CollectionSpec]:
        tables = self._view()
        return [tables[n].spec for n in sorted(tables)]

    async def drop_collection(self, name: str) -> bool:
        async with self._write():
            return self._tables.pop(name, None) is not None

    # -- records -----------------------------------------------------------

    def _rows(self, batch: RecordBatch) -> dict[RecordId, _Row]:
        return {rid: _Row(batch.vectors[i].copy() if batch.has_vector(i) else None, dict(batch.fields[i]),
                          dict(batch.metadata[i]))
                for i, rid in enumerate(batch.ids)}

    async def upsert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        async with self._write():
            self._table(spec.name).rows.update(self._rows(batch))

    async def insert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        async with self._write():
            table = self._table(spec.name)
            existing = [rid for rid in batch.ids if rid in table.rows]
            if existing:
                raise DuplicateId(
                    f"{len(existing)} id(s) already exist in {spec.name!r}: {existing[:10]!r}; nothing was "
                    "written. Use upsert() to replace records",
                    ids=existing,
                )
            table.rows.update(self._rows(batch))

    async def allocate_ids(self, spec: CollectionSpec, n: int, after: int) -> list[int]:
        async with self._write():
            table = self._table(spec.name)
            highest = max((rid for rid in table.rows if isinstance(rid, int)), default=0)
            start = max(table.last_id, highest, after) + 1
            check_id_space(start, n, spec.name)
            table.last_id = max(table.last_id, after, start + n - 1)
            return list(range(start, start + n))

    async def last_id(self, spec: CollectionSpec) -> int:
        table = self._table(spec.name, read=True)
        return max(table.last_id, max((rid for rid in table.rows if isinstance(rid, int)), default=0))

    @contextlib.asynccontextmanager
    async def bulk_load(self, spec: CollectionSpec) -> AsyncIterator[None]:
        # Search is an exhaustive scan: there is no index to defer.
        yield

    @staticmethod
    def _record(rid: RecordId, row: _Row) -> Record:
        vector = None if row.vector is None else row.vector.copy()
        return Record(id=rid, vector=vector, fields=dict(row.fields), metadata=dict(row.metadata))

    async def get(self, spec: CollectionSpec, ids: Sequence[RecordId]) -> list[Record]:
        rows = self._table(spec.name, read=True).rows
        return [self._record(rid, rows[rid]) for rid in ids if rid in rows]

    async def delete(self, spec: CollectionSpec, ids: Sequence[RecordId] | None, where: Filter | None) -> int:
        async with self._write():
            rows = self._table(spec.name).rows
            if ids is not None:
                doomed = [rid for rid in ids if rid in rows]
            else:
                node = where or MatchAll()
                doomed = [rid for rid, row in rows.items() if matches(node, row.fields, row.metadata)]
            for rid in doomed:
                del rows[rid]
            return len(doomed)

    async def count(self, spec: CollectionSpec, where: Filter) -> int:
        rows = self._table(spec.name, read=True).rows
        if isinstance(where, MatchAll):
            return len(rows)
        return sum(1 for row in rows.values() if matches(where, row.fields, row.metadata))

    async def search(self, spec: CollectionSpec, queries: Vector, k: int, where: Filter,
                     max_distance: float | None, ef_search: int | None, include_vector: bool) -> list[list[Hit]]:
        rows = self._table(spec.name, read=True).rows
        ids = [rid for rid, row in rows.items()
               if row.vector is not None and matches(where, row.fields, row.metadata)]
        if not ids:
            return [[] for _ in range(len(queries))]
        matrix = np.stack([rows[rid].vector for rid in ids])  # type: ignore[misc]
        keys = np.asarray(ids)  # (str ids compare by code point in NumPy as in Python)
        out = []
        for query in queries:
            dist = exact_distances(spec.metric, matrix, query)
            order = np.lexsort((keys, dist)).tolist()  # by distance, ties by id
            hits = []
            for i in order:
                if max_distance is not None and dist[i] > max_distance:
                    break
                row = rows[ids[i]]
                d = float(dist[i])
                hits.append(Hit(id=ids[i], distance=d, similarity=spec.metric.similarity(d),
                                fields=dict(row.fields), metadata=dict(row.metadata),
                                vector=row.vector.copy() if include_vector and row.vector is not None else None))
                if len(hits) == k:
                    break
            out.append(hits)
        return out

    async def page(self, spec: CollectionSpec, after: RecordId | None, limit: int, where: Filter) -> list[Record]:
        rows = self._table(spec.name, read=True).rows
        keys = sorted(rid for rid, row in rows.items()
                      if (after is None or rid > after) and matches(where, row.fields, row.metadata))  # type: ignore[operator]
        return [self._record(rid, rows[rid]) for rid in keys[:limit]]

    # -- operations --------------------------------------------------------

    def in_transaction(self) -> bool:
        return self._snapshots.get() is not None

    async def health(self) -> Health:
        start = time.perf_counter()
        n = len(self._tables)
        return Health(ok=not self._closed, backend=self.name, latency_ms=(time.perf_counter() - start) * 1000,
                      details={"collections": n})

    async def doctor(self) -> list[Check]:
        return [
            Check("backend", True, "memory: pure NumPy reference, exact search"),
            Check("numpy", True, f"numpy {np.__version__}"),
            Check("persistence", None, "data lives in this process only and is lost on close",
                  "use sqlite:///path.db or postgresql://... to keep data"),
        ]

    async def aclose(self) -> None:
        self._closed = True
        self._tables = {}
