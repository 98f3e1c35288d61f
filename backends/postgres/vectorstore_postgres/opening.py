"""Opening a store: whether one exists, and the one connection that prepares the database before
the pool opens (finding the vector extension and so the dialect, running the migrations, warning
of interrupted bulk loads, fetching pgvector's type for the binary adapters).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import psycopg.errors
from psycopg.types import TypeInfo

from vectorstore.config import StoreConfig
from vectorstore.errors import ExtensionMissing
from vectorstore_postgres import migrations
from vectorstore_postgres.catalog import catalog_table
from vectorstore_postgres.connection import Settings, Setup, parse_settings
from vectorstore_postgres.dialect import DIALECTS, Dialect, PgVector, RuVector
from vectorstore_postgres.indexes import interrupted_message, pending_indexes
from vectorstore_postgres.pool import translate_errors, unavailable

log = logging.getLogger("vectorstore.postgres")

AConn = psycopg.AsyncConnection[Any]


async def detect_dialect(conn: AConn, settings: Settings) -> Dialect:
    """Find the vector extension; create pgvector if neither is installed."""
    found = await _installed_extensions(conn)
    if not found:
        try:
            async with conn.transaction():
                # Serialise concurrent openers: CREATE EXTENSION IF NOT EXISTS still races.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('vectorstore:extension', 0))")
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.QueryCanceled:
            raise
        except psycopg.Error as exc:
            raise ExtensionMissing(
                f"the database at {settings.target} has neither the pgvector ('vector') nor the 'ruvector' extension, "
                f"and creating pgvector failed: {str(exc).strip().splitlines()[0]}. Install pgvector on the server "
                "(e.g. apt install postgresql-<version>-pgvector, or the pgvector/pgvector Docker image), then run "
                "CREATE EXTENSION vector; in this database as a superuser or the database owner; or use the "
                "ruvector image, whose database has CREATE EXTENSION ruvector") from None
        found = await _installed_extensions(conn)
    if "vector" in found:
        return PgVector(extension_version=found["vector"])
    version = found["ruvector"]
    cur = await conn.execute("SELECT amname FROM pg_am WHERE amname IN ('ruhnsw', 'hnsw') ORDER BY amname DESC")
    methods = [row[0] for row in await cur.fetchall()]
    method = "ruhnsw" if "ruhnsw" in methods else "hnsw"
    # Which sign does <#> have here? 0.3.0 returns +dot; a later release may follow pgvector.
    cur = await conn.execute("SELECT '[1]'::ruvector <#> '[1]'::ruvector")
    row = await cur.fetchone()
    sign = 1 if row is not None and float(row[0]) > 0 else -1
    return RuVector(extension_version=version, access_method=method, ip_sign=sign)


async def _installed_extensions(conn: AConn) -> dict[str, str]:
    cur = await conn.execute(
        "SELECT extname, extversion FROM pg_extension WHERE extname = ANY(%s)", [list(DIALECTS)])
    return {name: version for name, version in await cur.fetchall()}


async def store_exists(config: StoreConfig) -> bool:
    """Whether the schema holds a vectorstore catalog, found out read-only (opening would create it)."""
    settings = parse_settings(config)
    with translate_errors(settings):
        async with await psycopg.AsyncConnection.connect(settings.conninfo, autocommit=True,
                                                         **settings.connect_kwargs()) as conn:
            cur = await conn.execute("SELECT to_regclass(%s)",
                                     [catalog_table(settings.schema).as_string(conn)])
            row = await cur.fetchone()
    return row is not None and row[0] is not None


async def prepare_database(config: StoreConfig) -> tuple[Settings, Setup]:
    """Connect once: detect the dialect, migrate, warn of interrupted bulk loads. Returns what the
    backend's pool needs (see :func:`vectorstore_postgres.backend.open_backend`)."""
    settings = parse_settings(config)
    kwargs = settings.connect_kwargs()
    try:
        boot = await psycopg.AsyncConnection.connect(settings.conninfo, autocommit=True, **kwargs)
    except psycopg.OperationalError as exc:
        raise unavailable(settings, exc) from None
    try:
        with translate_errors(settings):
            dialect = await detect_dialect(boot, settings)
            await migrations.migrate(boot, settings.schema)
            for pending in await pending_indexes(boot, settings.schema):
                if not pending.running:
                    detail, fix = interrupted_message(pending)
                    log.warning("%s. To fix: %s", detail, fix)
            info = await TypeInfo.fetch(boot, "vector") if dialect.binary_vectors else None
            if dialect.binary_vectors and info is None:
                raise ExtensionMissing(f"the pgvector extension is installed at {settings.target} but its 'vector' "
                                       "type is not on the search_path; add the extension's schema to search_path")
    finally:
        await boot.close()
    return settings, Setup(dialect=dialect, vector_info=info)
