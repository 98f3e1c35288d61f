"""The collections: the catalog table (``vs_collections``), each collection's SQL, its id
sequence (``vs_sequences``) and its row estimate.

:meth:`Catalog.q` hands every other part of the backend the
:class:`~vectorstore_postgres.queries.CollectionSQL` of a spec, built once and cached;
dropping a collection forgets its SQL and its estimate.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.types.json import Jsonb

from vectorstore.errors import CollectionExists, CollectionNotFound
from vectorstore.records import dump_json
from vectorstore.schema import CollectionSpec
from vectorstore.spi import id_space_exhausted
from vectorstore_postgres import migrations
from vectorstore_postgres.pool import Connections
from vectorstore_postgres.queries import ID_COLUMN, CollectionSQL, table_name

AConn = psycopg.AsyncConnection[Any]

#: Seconds a collection's row estimate is trusted before a search reads it again. A collection
#: known to hold at least ``exact_search_below`` rows is searched through its index without the
#: per-statement size gate (a catalog lookup on every query).
ESTIMATE_TTL = 30.0


def catalog_table(schema: str) -> sql.Identifier:
    """The catalog table of the store in ``schema``."""
    return sql.Identifier(schema, migrations.CATALOG_TABLE)


class Catalog:
    """Create, read and drop collections; allocate their ids; cache their SQL and row estimates."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        #: CollectionSQL by the spec's canonical JSON.
        self.sql: dict[str, CollectionSQL] = {}
        # The last spec object seen and its SQL: collections pass the same spec on every call.
        self._last_sql: tuple[CollectionSpec, CollectionSQL] | None = None
        #: Row estimates by collection name: (rows, time.monotonic() when read).
        self._estimates: dict[str, tuple[float, float]] = {}

    @property
    def table(self) -> sql.Identifier:
        return catalog_table(self.connections.settings.schema)

    def _sequences(self) -> sql.Identifier:
        return sql.Identifier(self.connections.settings.schema, "vs_sequences")

    def q(self, spec: CollectionSpec) -> CollectionSQL:
        """The SQL of the collection ``spec`` describes."""
        last = self._last_sql
        if last is not None and last[0] is spec:
            return last[1]
        found = self._lookup(spec)
        self._last_sql = (spec, found)
        return found

    def _lookup(self, spec: CollectionSpec) -> CollectionSQL:
        # CollectionSpec holds a dict (unhashable): key the cache by its canonical JSON.
        key = dump_json(spec.to_dict())
        found = self.sql.get(key)
        if found is None:
            found = self.sql[key] = CollectionSQL(self.connections.settings.schema, spec, self.connections.dialect)
        return found

    async def create_collection(self, spec: CollectionSpec) -> None:
        q = self.q(spec)
        async with self.connections.connection(write=True) as conn, conn.transaction():
            cur = await conn.execute(sql.SQL(
                "INSERT INTO {} (name, spec, table_name) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING "
                "RETURNING name").format(self.table), [spec.name, Jsonb(spec.to_dict()), table_name(spec.name)])
            if await cur.fetchone() is None:
                raise CollectionExists(f"collection {spec.name!r} already exists")
            await conn.execute(q.create_table())
            for statement in q.create_field_indexes():
                await conn.execute(statement)
            index = q.create_index()
            if index is not None:
                await conn.execute(index)

    async def get_collection(self, name: str) -> CollectionSpec:
        async with self.connections.connection() as conn:
            cur = await conn.execute(sql.SQL("SELECT spec FROM {} WHERE name = %s").format(self.table),
                                     [name], prepare=True)
            row = await cur.fetchone()
        if row is None:
            raise CollectionNotFound.named(name)
        return CollectionSpec.from_dict(row[0])

    async def list_collections(self) -> list[CollectionSpec]:
        async with self.connections.connection() as conn:
            cur = await conn.execute(sql.SQL("SELECT spec FROM {} ORDER BY name").format(self.table))
            rows = await cur.fetchall()
        return [CollectionSpec.from_dict(row[0]) for row in rows]

    async def drop_collection(self, name: str) -> bool:
        async with self.connections.connection(write=True) as conn, conn.transaction():
            cur = await conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s RETURNING table_name").format(
                self.table), [name])
            row = await cur.fetchone()
            if row is None:
                return False
            await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.Identifier(self.connections.settings.schema, row[0])))
            await conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(self._sequences()), [name])
        # Forget cached SQL of any spec with this name (a re-created one may differ).
        for key in [key for key, q in self.sql.items() if q.spec.name == name]:
            del self.sql[key]
        self._last_sql = None
        self._estimates.pop(name, None)
        return True

    async def allocate_ids(self, spec: CollectionSpec, n: int, after: int) -> list[int]:
        # One statement: the row lock on the sequence serialises concurrent allocations
        # until the surrounding transaction ends.
        q = self.q(spec)
        statement = sql.SQL(
            "INSERT INTO {seq} AS s (name, last) "
            "VALUES (%(name)s, greatest((SELECT coalesce(max({id}), 0) FROM {table}), %(after)s) + %(n)s) "
            "ON CONFLICT (name) DO UPDATE SET last = greatest(s.last, "
            "(SELECT coalesce(max({id}), 0) FROM {table}), %(after)s) + %(n)s "
            "RETURNING last").format(seq=self._sequences(), id=sql.Identifier(ID_COLUMN), table=q.table)
        try:
            async with self.connections.connection(spec.name, write=True) as conn, conn.transaction():
                cur = await conn.execute(statement, {"name": spec.name, "after": after, "n": n})
                row = await cur.fetchone()
        except psycopg.errors.NumericValueOutOfRange:
            # The sequence would pass bigint: nothing moved (the statement's transaction is gone).
            raise id_space_exhausted(spec.name, n) from None
        assert row is not None
        last = int(row[0])
        if n == 0:
            return []
        return list(range(last - n + 1, last + 1))

    async def last_id(self, spec: CollectionSpec) -> int:
        q = self.q(spec)
        statement = sql.SQL(
            "SELECT greatest((SELECT coalesce(max({id}), 0) FROM {table}), "
            "(SELECT coalesce(max(last), 0) FROM {seq} WHERE name = %s))").format(
            id=sql.Identifier(ID_COLUMN), table=q.table, seq=self._sequences())
        async with self.connections.connection(spec.name) as conn:
            cur = await conn.execute(statement, [spec.name])
            row = await cur.fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    async def estimated_rows(self, conn: AConn, q: CollectionSQL) -> float:
        """The planner's estimate of the collection's rows, read at most every :data:`ESTIMATE_TTL`
        seconds (on ``conn``)."""
        now = time.monotonic()
        found = self._estimates.get(q.spec.name)
        if found is None or now - found[1] > ESTIMATE_TTL:
            cur = await conn.execute(q.estimate_rows(), prepare=True)
            row = await cur.fetchone()
            found = self._estimates[q.spec.name] = (float(row[0]) if row and row[0] is not None else 0.0, now)
        return found[0]
