"""Numbered schema migrations, recorded in ``<schema>.vs_schema_migrations``.

Applied on every open, idempotently: under a transaction-scoped advisory lock (so
two processes opening the same store at once apply each migration exactly once),
each migration not yet recorded runs and is recorded in the same transaction. A
migration is never edited once released; a change is a new, higher number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import psycopg
from psycopg import sql

VERSION_TABLE = "vs_schema_migrations"
CATALOG_TABLE = "vs_collections"


@attrs.frozen(slots=True)
class Migration:
    version: int
    name: str
    #: Statements with one ``{schema}`` placeholder (a quoted identifier).
    statements: tuple[str, ...]


def _every_collection_table(action: str) -> str:
    """A statement running ``ALTER TABLE IF EXISTS <table> <action>`` on every collection table
    in the catalog (IF EXISTS: a table dropped by hand must not keep the store from opening).
    (The quoted schema identifier sits in a string literal: schema names are [A-Za-z0-9_].)"""
    return f"""DO $vs$
           DECLARE t text;
           BEGIN
               FOR t IN SELECT table_name FROM {{schema}}.vs_collections ORDER BY table_name LOOP
                   EXECUTE format('ALTER TABLE IF EXISTS {{schema}}.%I {action}', t);
               END LOOP;
           END
           $vs$"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "collection catalog", (
        # The spec is the JSON of CollectionSpec.to_dict(); table_name is recorded so a
        # later naming scheme cannot orphan existing tables.
        """CREATE TABLE {schema}.vs_collections (
               name text COLLATE "C" PRIMARY KEY,
               spec jsonb NOT NULL,
               table_name text NOT NULL UNIQUE,
               created_at timestamptz NOT NULL DEFAULT now()
           )""",
    )),
    Migration(2, "id sequences", (
        # The highest id ever allocated per int-id collection (AUTOINCREMENT semantics).
        """CREATE TABLE {schema}.vs_sequences (
               name text COLLATE "C" PRIMARY KEY,
               last bigint NOT NULL
           )""",
    )),
    Migration(3, "nullable vectors", (
        # Records may have no vector. Collection tables created before this declare the vector
        # column NOT NULL; dropping the constraint only changes the catalog (no table rewrite).
        _every_collection_table("ALTER COLUMN vector DROP NOT NULL"),
    )),
    Migration(4, "pending index builds", (
        # Set (to when it began) while a bulk load has dropped the collection's HNSW index; cleared
        # in the transaction that builds it again. Still set with no bulk load running means a load
        # was interrupted: doctor reports it. IF NOT EXISTS: re-running it must be harmless.
        """ALTER TABLE {schema}.vs_collections ADD COLUMN IF NOT EXISTS index_pending_since timestamptz""",
    )),
    Migration(5, "vectors kept in the row", (
        # Collection tables created before this move vectors over ~500 dimensions to TOAST
        # (queries.TOAST_TUPLE_TARGET says why not). A storage parameter: no rewrite, rows
        # written from now on stay whole; existing ones move when they are next written.
        _every_collection_table("SET (toast_tuple_target = 8160)"),
    )),
    Migration(6, "field indexes", (
        # A B-tree index per declared field of type int, float, date or timestamp, named as
        # queries.field_index_name names it (collections created from now on get them with their
        # table). Builds each index, which holds off writes to that table until it is built.
        # Fields are [name, type] pairs, or an object in catalogs written before that (as
        # CollectionSpec.from_dict reads them).
        """DO $vs$
           DECLARE c record; f record;
           BEGIN
               FOR c IN SELECT name, table_name, spec FROM {schema}.vs_collections ORDER BY name LOOP
                   CONTINUE WHEN to_regclass(format('{schema}.%I', c.table_name)) IS NULL;
                   FOR f IN
                       SELECT e ->> 0 AS field, e ->> 1 AS kind FROM jsonb_array_elements(
                           CASE jsonb_typeof(c.spec -> 'fields') WHEN 'array' THEN c.spec -> 'fields' ELSE '[]' END) e
                       UNION ALL
                       SELECT key, value FROM jsonb_each_text(
                           CASE jsonb_typeof(c.spec -> 'fields') WHEN 'object' THEN c.spec -> 'fields' ELSE '{{}}' END)
                   LOOP
                       CONTINUE WHEN f.kind NOT IN ('int', 'float', 'date', 'timestamp');
                       EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON {schema}.%I (%I)',
                                      'vs_f_' || left(md5(c.name || '.' || f.field), 20), c.table_name, f.field);
                   END LOOP;
               END LOOP;
           END
           $vs$""",
    )),
)


def lock_key(schema: str) -> str:
    return f"vectorstore:migrate:{schema}"


async def migrate(conn: psycopg.AsyncConnection[Any], schema: str,
                  migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Create ``schema`` if needed and apply pending migrations; return the versions applied now."""
    ident = sql.Identifier(schema)
    applied_now: list[int] = []
    async with conn.transaction():
        # hashtextextended: a stable 64-bit key per schema, shared by every process.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [lock_key(schema)])
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        await conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.{} (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())").format(ident, sql.Identifier(VERSION_TABLE)))
        cur = await conn.execute(sql.SQL("SELECT version FROM {}.{}").format(ident, sql.Identifier(VERSION_TABLE)))
        done = {row[0] for row in await cur.fetchall()}
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            for statement in migration.statements:
                await conn.execute(sql.SQL(statement).format(schema=ident))
            await conn.execute(
                sql.SQL("INSERT INTO {}.{} (version, name) VALUES (%s, %s)").format(
                    ident, sql.Identifier(VERSION_TABLE)),
                [migration.version, migration.name])
            applied_now.append(migration.version)
    return applied_now
