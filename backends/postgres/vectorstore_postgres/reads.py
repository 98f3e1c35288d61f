"""Reading records: get, count and page, and the decoding of a read row into a record (searches
decode their hits with :func:`decode` too).

Every read row has the layout ``id, vector, fields..., metadata`` (see
:mod:`vectorstore_postgres.queries`); a collection without vectors selects ``NULL`` in the
vector's place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from vectorstore.filters import Filter, MatchAll
from vectorstore.records import Record, RecordId, Vector
from vectorstore.schema import CollectionSpec, FieldType
from vectorstore_postgres.catalog import Catalog
from vectorstore_postgres.dialect import Dialect
from vectorstore_postgres.pool import Connections


def decode(dialect: Dialect, spec: CollectionSpec,
           row: Sequence[Any]) -> tuple[RecordId, Vector | None, dict[str, Any], dict[str, Any]]:
    """``(id, vector, fields, metadata)`` of a row ``id, vector, fields..., metadata``."""
    fields: dict[str, Any] = {}
    for offset, (name, kind) in enumerate(spec.fields.items(), start=2):
        value = row[offset]
        if kind is FieldType.TIMESTAMP and value is not None:
            value = value.astimezone(dt.UTC)
        fields[name] = value
    # (A collection without vectors selects NULL in the vector's place.)
    vector = None if row[1] is None or spec.dim is None else dialect.decode(row[1], spec.dim)
    return row[0], vector, fields, row[-1]


class Reads:
    """The reads by id, by filter and by page of every collection."""

    def __init__(self, connections: Connections, catalog: Catalog) -> None:
        self.connections = connections
        self.catalog = catalog

    def _record(self, spec: CollectionSpec, row: Sequence[Any]) -> Record:
        rid, vector, fields, metadata = decode(self.connections.dialect, spec, row)
        return Record(id=rid, vector=vector, fields=fields, metadata=metadata)

    async def get(self, spec: CollectionSpec, ids: Sequence[RecordId]) -> list[Record]:
        q = self.catalog.q(spec)
        async with self.connections.connection(spec.name) as conn:
            cur = conn.cursor(binary=True)
            await cur.execute(q.get, [list(ids)], prepare=True)
            rows = await cur.fetchall()
        found = {row[0]: row for row in rows}
        return [self._record(spec, found[rid]) for rid in ids if rid in found]

    async def count(self, spec: CollectionSpec, where: Filter) -> int:
        statement, params = self.catalog.q(spec).count(where)
        async with self.connections.connection(spec.name) as conn:
            # Filtered: planned for its values (a selective filter reads its field's B-tree).
            cur = await conn.execute(statement, params, prepare=isinstance(where, MatchAll))
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def page(self, spec: CollectionSpec, after: RecordId | None, limit: int, where: Filter) -> list[Record]:
        q = self.catalog.q(spec)
        async with self.connections.connection(spec.name) as conn:
            cur = conn.cursor(binary=True)
            if not isinstance(where, MatchAll):
                statement, params = q.page_where(where, after is not None)
                await cur.execute(statement, [*([after] if after is not None else []), *params, limit],
                                  prepare=False)  # (planned for its values, as count's)
            elif after is None:
                await cur.execute(q.page_first, [limit], prepare=True)
            else:
                await cur.execute(q.page_after, [after, limit], prepare=True)
            rows = await cur.fetchall()
        return [self._record(spec, row) for row in rows]
