"""Writing records: upsert, insert (streamed in parts or not) and delete.

Small batches: a pipelined ``executemany``. Large batches (``copy_threshold`` records and up):
``COPY`` (binary for pgvector, encoded by :mod:`vectorstore_postgres.copyrows` where it can, else
row by row by psycopg; text for ruvector) straight into the table when none of the ids exists
yet, else into a temporary staging table then one ``INSERT ... SELECT ... ON CONFLICT``. A batch
of ``rebuild_index_above`` records or more, and at least as large as the table, rebuilds the HNSW
index instead of inserting into it row by row. Either way one transaction: all or nothing.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg.types.json import Jsonb

from vectorstore.errors import DuplicateId
from vectorstore.filters import Filter, MatchAll
from vectorstore.records import BatchParts, RecordBatch, RecordId
from vectorstore.schema import CollectionSpec, FieldType
from vectorstore_postgres import copyrows
from vectorstore_postgres.catalog import Catalog
from vectorstore_postgres.indexes import build_index
from vectorstore_postgres.pool import Connections
from vectorstore_postgres.queries import CollectionSQL

log = logging.getLogger("vectorstore.postgres")

AConn = psycopg.AsyncConnection[Any]


def _parts(batch: RecordBatch | BatchParts) -> Iterable[RecordBatch]:
    """The batches to write: a streamed write's parts, validated as they are iterated, or the one batch."""
    return batch if isinstance(batch, BatchParts) else (batch,)


class _Duplicates(Exception):
    """Internal: insert met existing ids; raised inside the transaction to roll it back."""


class Writes:
    """The write paths of every collection."""

    def __init__(self, connections: Connections, catalog: Catalog) -> None:
        self.connections = connections
        self.catalog = catalog
        self._stage_ids = itertools.count()

    def _row(self, spec: CollectionSpec, batch: RecordBatch, i: int) -> list[Any]:
        """One row of :attr:`CollectionSQL.columns`: no vector column without vectors; None (NULL,
        also in COPY) for a record without a vector."""
        row: list[Any] = [batch.ids[i]]
        if spec.dim is not None:
            row.append(self.connections.dialect.encode(batch.vectors[i], spec.dim) if batch.has_vector(i) else None)
        fields = batch.fields[i]
        for name, kind in spec.fields.items():
            value = fields.get(name)
            if kind is FieldType.JSON and value is not None:
                value = Jsonb(value)
            row.append(value)
        row.append(Jsonb(batch.metadata[i]))
        return row

    async def upsert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        await self._write(spec, batch, replace=True)

    async def insert(self, spec: CollectionSpec, batch: RecordBatch) -> None:
        await self._write(spec, batch, replace=False)

    async def write_parts(self, spec: CollectionSpec, parts: BatchParts, *, replace: bool) -> None:
        # (The COPY sends each part as it comes: the server stores one while the next is checked.)
        await self._write(spec, parts, replace=replace)

    async def _write(self, spec: CollectionSpec, batch: RecordBatch | BatchParts, *, replace: bool) -> None:
        q = self.catalog.q(spec)
        inserted: set[RecordId] = set()
        async with self.connections.connection(spec.name, write=True) as conn:
            try:
                async with conn.transaction():
                    if len(batch) >= self.connections.settings.copy_threshold:
                        inserted = await self._write_copy(conn, q, batch, replace=replace)
                    else:
                        inserted = await self._write_rows(conn, q, batch, replace=replace)
                    if not replace and len(inserted) < len(batch):
                        raise _Duplicates()
            except _Duplicates:
                existing = [rid for rid in batch.ids if rid not in inserted]
                raise DuplicateId(
                    f"{len(existing)} id(s) already exist in {spec.name!r}: {existing[:10]!r}; nothing was "
                    "written. Use upsert() to replace records", ids=existing) from None

    async def _write_rows(self, conn: AConn, q: CollectionSQL, batch: RecordBatch | BatchParts, *,
                          replace: bool) -> set[RecordId]:
        rows = [self._row(q.spec, part, i) for part in _parts(batch) for i in range(len(part))]
        async with conn.cursor() as cur:
            if replace:
                # executemany runs in pipeline mode: one round trip for the whole batch.
                await cur.executemany(q.upsert_row, rows)
                return set()
            await cur.executemany(q.insert_row, rows, returning=True)
            inserted: set[RecordId] = set()
            while True:
                inserted.update(r[0] for r in await cur.fetchall())
                if not cur.nextset():
                    break
            return inserted

    async def _write_copy(self, conn: AConn, q: CollectionSQL, batch: RecordBatch | BatchParts, *,
                          replace: bool) -> set[RecordId]:
        settings = self.connections.settings
        n = len(batch)
        # A bulk write is legitimately long (HNSW insertion runs at a few hundred rows/s
        # for 384-d vectors): the statement timeout applies per 1,000 rows of the batch.
        budget = settings.statement_timeout * max(1, -(-n // 1000))
        await conn.execute("SELECT set_config('statement_timeout', %s, true)",
                           [f"{round(budget * 1000)}ms" if settings.statement_timeout else "0"])
        rebuild = False
        if q.has_index and n >= settings.rebuild_index_above:
            cur = await conn.execute(q.estimate_rows_and_index())
            row = await cur.fetchone()
            # Building the graph once is ~4x faster than inserting row by row; worth it
            # when the batch is at least as big as the table (an initial load). It holds
            # an exclusive lock on the table until the transaction commits. Not during a
            # bulk load, which has dropped the index and builds it at its end.
            rebuild = row is not None and float(row[0]) <= n and bool(row[1])
        clock = [time.perf_counter()]
        inserted: set[RecordId] = set()
        async with conn.cursor() as cur:
            if rebuild:  # (the field B-trees too: built once after, as by bulk_load)
                await cur.execute(q.drop_index())
                for statement in q.drop_field_indexes():
                    await cur.execute(statement)
            # The fast path: none of the ids exists yet, so COPY goes straight into the table
            # (in a savepoint: a concurrent writer may still take an id first).
            direct = not await self._any_id_exists(cur, q, batch.ids)
            if direct:
                try:
                    async with conn.transaction():
                        await self._copy(cur, q.copy_table(), q, batch)
                    inserted = set(batch.ids)
                except psycopg.errors.UniqueViolation:
                    direct = False
            clock.append(time.perf_counter())
            if not direct:
                stage = f"vs_stage_{next(self._stage_ids)}"
                await cur.execute(q.create_stage(stage))
                await self._copy(cur, q.copy_stage(stage), q, batch)
                clock[-1] = time.perf_counter()
                await cur.execute(q.merge_stage(stage, replace=replace))
                if not replace:
                    inserted = {r[0] for r in await cur.fetchall()}
                await cur.execute(q.drop_stage(stage))
            clock.append(time.perf_counter())
            if rebuild:
                for statement in q.create_field_indexes():
                    await cur.execute(statement)
                await build_index(cur, settings, q, n)
                clock.append(time.perf_counter())
        log.debug("bulk %s of %d rows into %s: copy %.2fs%s, merge %.2fs%s", "upsert" if replace else "insert", n,
                  q.spec.name, clock[1] - clock[0], " (straight into the table)" if direct else "", clock[2] - clock[1],
                  f", index rebuild {clock[3] - clock[2]:.2f}s" if rebuild else "")
        return inserted

    async def _any_id_exists(self, cur: psycopg.AsyncCursor[Any], q: CollectionSQL, ids: list[RecordId]) -> bool:
        """Whether one of ``ids`` is in the table: first one probe for the range the ids span
        (nothing there: an initial load, or ids appended after the existing ones), then, only
        if something is, the exact check."""
        for statement, params in ((q.any_id_between(), [min(ids), max(ids)]), (q.any_id_exists(), [ids])):
            await cur.execute(statement, params, prepare=False)  # once per bulk write: not worth preparing
            row = await cur.fetchone()
            if row is not None and not row[0]:
                return False
        return True

    async def _copy(self, cur: psycopg.AsyncCursor[Any], statement: str, q: CollectionSQL,
                    batch: RecordBatch | BatchParts) -> None:
        """COPY every row of the batch: binary data built a part at a time with NumPy (see
        copyrows), or row by row through psycopg's adapters (text-format dialects, array fields)."""
        dialect = self.connections.dialect
        binary = dialect.copy_format == "binary"
        async with cur.copy(statement) as copy:
            if binary and copyrows.can_encode(q.spec):
                for data in copyrows.encode(_parts(batch)):
                    await copy.write(data)
                return
            if binary:
                copy.set_types(q.copy_types(dialect.type_name))  # (array fields: psycopg's dumpers)
            for part in _parts(batch):
                for i in range(len(part)):
                    await copy.write_row(self._row(q.spec, part, i))

    async def delete(self, spec: CollectionSpec, ids: Sequence[RecordId] | None, where: Filter | None) -> int:
        q = self.catalog.q(spec)
        async with self.connections.connection(spec.name, write=True) as conn:
            if ids is not None:
                cur = await conn.execute(q.delete_ids, [list(ids)], prepare=True)
            else:
                where = where or MatchAll()
                statement, params = q.delete_where(where)
                # Filtered: planned for its values (a selective filter reads its field's B-tree).
                cur = await conn.execute(statement, params, prepare=isinstance(where, MatchAll))
            return cur.rowcount
