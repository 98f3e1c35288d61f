"""Connection settings and the set-up of each connection.

:class:`Settings` is parsed once from the store URL and options. Every pooled
connection is prepared by :func:`prepare` (through the ``vectorstore_prepare_connection``
hook): pgvector's binary adapters, and JSON codecs that round-trip like the
reference backend. Session settings (statement timeout, UTC) travel in the libpq
``options`` of the startup packet, so preparing a connection costs no round trip.
The pool, transactions and the translation of driver errors are in
:mod:`vectorstore_postgres.pool`.
"""

from __future__ import annotations

import functools
import math
import re
import weakref
from collections.abc import Mapping
from typing import Any

import attrs
import psycopg
from psycopg.types import TypeInfo

from vectorstore.config import MASK, StoreConfig, parse_duration, parse_int, redact, redacted_options
from vectorstore.errors import ConfigError
from vectorstore_postgres import codecs
from vectorstore_postgres.dialect import Dialect
from vectorstore_postgres.prepared import PreparedStatements

SCHEMA_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

DEFAULTS: dict[str, Any] = {
    # One: psycopg-pool hands out its idle connections round-robin, so with more kept open a
    # sequential client (an agent, a script) lands each call on a server process that sat idle
    # meanwhile, ~10 % slower per search; the pool still grows to pool_max under concurrency.
    "pool_min": 1,
    "pool_max": 10,
    "connect_timeout": 30.0,
    "statement_timeout": 10.0,
    "schema": "public",
    # Collections with fewer (estimated) rows are searched exactly: a sequential scan of
    # a few thousand rows is as fast as an index scan and has recall 1.0.
    "exact_search_below": 10_000,
    # hnsw.ef_search of searches that do not pass ef_search=. pgvector's own default (40) gives
    # recall@10 0.74-0.95 on the conformance suite's random and clustered sets; 200 gives >= 0.98.
    "ef_search": 200,
    # Batches of at least this many records are written with COPY through a staging table.
    "copy_threshold": 1_000,
    # A COPY batch this large, and at least as large as the table, rebuilds the HNSW
    # index instead of inserting into it row by row.
    "rebuild_index_above": 10_000,
    # Upper bound of the memory an index rebuild may use (SET LOCAL maintenance_work_mem):
    # pgvector builds ~4x faster when the whole graph fits in memory.
    "index_build_memory": "1GB",
}

#: TCP settings of every connection, unless the URL sets them: a server or network that dies
#: silently is noticed in ~20 s on an idle connection (keepalives: 10 s idle, then 3 probes 3 s
#: apart) and in 20 s on one whose sent data goes unacknowledged (tcp_user_timeout, ms), rather
#: than after the kernel's ~2 h (idle) or ~15 min (retransmissions). Unix sockets ignore them.
KEEPALIVES: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3,
                              "keepalives_count": 3, "tcp_user_timeout": 20_000}

_SIZE = re.compile(r"^\s*(\d+)\s*(kB|MB|GB|TB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}


def parse_size(value: object, name: str) -> int:
    """Bytes from ``512MB``, ``1GB``... (bare numbers are megabytes, as in PostgreSQL's settings)."""
    match = _SIZE.match(str(value)) if not isinstance(value, bool) else None
    if not match:
        raise ConfigError(f"{name} must be a size such as 512MB or 1GB, got {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "MB").lower()]


@functools.cache
def libpq_keywords() -> frozenset[str]:
    """The connection parameters this libpq knows (they pass through to it)."""
    return frozenset(opt.keyword.decode() for opt in psycopg.pq.Conninfo.get_defaults())


@attrs.frozen(slots=True)
class Settings:
    """Everything the backend needs to connect, parsed and checked. Its ``repr`` shows no secret:
    the URL redacted, secret libpq parameters masked (:func:`vectorstore.config.redact`)."""

    # The URL without vectorstore's own query parameters: it may hold a password (never print it).
    conninfo: str = attrs.field(repr=lambda conninfo: repr(redact(conninfo)))
    # Extra libpq parameters given as keyword options (``password`` among them, perhaps).
    libpq: Mapping[str, str] = attrs.field(repr=lambda libpq: repr(redacted_options(libpq)))
    pool_min: int
    pool_max: int
    connect_timeout: float
    statement_timeout: float
    schema: str
    exact_search_below: int
    ef_search: int
    copy_threshold: int
    rebuild_index_above: int
    index_build_memory: int  # bytes

    @property
    def target(self) -> str:
        """``user@host:port/db`` for messages: never the password. (A connection given by an entry of
        the service file, ``?service=name``, and no host: ``service name``.)"""
        params = psycopg.conninfo.conninfo_to_dict(self.conninfo)
        params.update(self.libpq)
        if params.get("service") and not (params.get("host") or params.get("hostaddr")):
            return f"service {params['service']}"  # (host, database and user are in the service file)
        host = str(params.get("host") or params.get("hostaddr") or "localhost")
        port = params.get("port")
        db = params.get("dbname") or params.get("user") or "(default database)"
        user = params.get("user")
        where = f"{host}:{port}" if port else host
        return f"{str(user) + '@' if user else ''}{where}/{db}"

    def connect_kwargs(self) -> dict[str, Any]:
        """libpq keyword arguments for every connection (pooled or not)."""
        kwargs: dict[str, Any] = dict(self.libpq)
        in_url = psycopg.conninfo.conninfo_to_dict(self.conninfo)
        for name, value in KEEPALIVES.items():
            if name not in kwargs and name not in in_url:  # (keyword arguments override the URL)
                kwargs[name] = value
        # libpq counts whole seconds and treats 1 as 2; 0 would mean "wait forever".
        kwargs["connect_timeout"] = max(2, math.ceil(self.connect_timeout))
        session = f"-c statement_timeout={round(self.statement_timeout * 1000)} -c TimeZone=UTC"
        given = kwargs.get("options") or in_url.get("options")
        kwargs["options"] = f"{given} {session}" if given else session
        return kwargs


def parse_settings(config: StoreConfig) -> Settings:
    """Settings from the URL and keyword options, checked by the core against this backend's
    options (:data:`DEFAULTS`, and the common ones); any other name must be a libpq connection
    parameter (``sslmode``, ``application_name``...), which passes through to libpq."""
    from vectorstore_postgres.plugin import spec

    bound = spec().bind(config)
    merged = dict(bound.options)
    libpq_extra = dict(bound.passthrough)
    schema = str(merged["schema"])
    if not SCHEMA_PATTERN.fullmatch(schema):
        raise ConfigError(f"schema must be an identifier of letters, digits and _ (at most 63), got {schema!r}")
    pool_min = parse_int(merged["pool_min"], "pool_min", 0, 1000)
    pool_max = parse_int(merged["pool_max"], "pool_max", 1, 1000)
    if pool_min > pool_max:
        raise ConfigError(f"pool_min ({pool_min}) must not exceed pool_max ({pool_max})")
    connect_timeout = parse_duration(merged["connect_timeout"], "s", "connect_timeout")
    statement_timeout = parse_duration(merged["statement_timeout"], "s", "statement_timeout")
    conninfo = bound.url
    check_conninfo(conninfo, libpq_extra)
    return Settings(
        conninfo=conninfo, libpq=libpq_extra, pool_min=pool_min, pool_max=pool_max,
        connect_timeout=connect_timeout, statement_timeout=statement_timeout, schema=schema,
        exact_search_below=parse_int(merged["exact_search_below"], "exact_search_below", 0, 2**62),
        ef_search=parse_int(merged["ef_search"], "ef_search", 1, 1000),
        copy_threshold=parse_int(merged["copy_threshold"], "copy_threshold", 1, 2**62),
        rebuild_index_above=parse_int(merged["rebuild_index_above"], "rebuild_index_above", 1, 2**62),
        index_build_memory=parse_size(merged["index_build_memory"], "index_build_memory"),
    )


def check_conninfo(conninfo: str, libpq: Mapping[str, str]) -> None:
    """ConfigError, without a secret, when libpq cannot read the URL (a password with an unescaped
    ``%``, a port that is not a number...). libpq's own message may quote a piece of the password:
    only the quoted parameter names are kept of it."""
    try:
        psycopg.conninfo.conninfo_to_dict(conninfo, **libpq)
    except psycopg.ProgrammingError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        detail = re.sub(r'"([^"]*)"', lambda m: m.group(0) if m.group(1) in libpq_keywords() else f'"{MASK}"',
                        detail)
        raise ConfigError(
            f"libpq cannot read the PostgreSQL URL {redact(conninfo)} ({redact(detail)}); write it as "
            "postgresql://user:password@host:port/database?name=value, with the characters @ : / ? # % & = and "
            "spaces of the user, password and database percent-encoded (%40 for @, %25 for %...)") from None


# -- per-connection set-up --------------------------------------------------------


@attrs.frozen(slots=True)
class Setup:
    """What a pooled connection needs: the dialect and, for pgvector, the vector type."""

    dialect: Dialect
    vector_info: TypeInfo | None


class PooledConnection(psycopg.AsyncConnection[Any]):
    """The pool's connections: each keeps its prepared search statements, run without a
    cursor (:class:`~vectorstore_postgres.prepared.PreparedStatements`), and one binary cursor
    for batches of searches.

    A new cursor builds its parameter dumpers and row loaders again on first use (pgvector's
    are Python classes): measured at 30-50 us of a ~1 ms search. Both are for a caller
    holding the connection alone (a pooled checkout), never one shared by the tasks of a
    transaction, whose interleaved statements would read each other's results."""

    _search_cursor: psycopg.AsyncCursor[Any] | None = None
    _statements: PreparedStatements | None = None
    #: When the pool last handed this connection back (``time.monotonic()``): one idle longer
    #: than :data:`~vectorstore_postgres.pool.CHECK_IDLE` is checked before it is used again.
    returned_at: float = 0.0
    #: When it was handed out (0 while in the pool).
    taken_at: float = 0.0

    def search_cursor(self) -> psycopg.AsyncCursor[Any]:
        cur = self._search_cursor
        if cur is None or cur.closed:
            cur = self._search_cursor = self.cursor(binary=True)
        return cur

    def statements(self) -> PreparedStatements:
        found = self._statements
        if found is None:
            found = self._statements = PreparedStatements(self)
        return found


# The backend registers the set-up of each connection here before running the
# prepare hook, so prepare() needs no catalog query; weak keys drop closed connections.
_SETUPS: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], Setup] = weakref.WeakKeyDictionary()


def remember(conn: psycopg.AsyncConnection[Any], setup: Setup) -> None:
    _SETUPS[conn] = setup


async def prepare(conn: psycopg.AsyncConnection[Any]) -> None:
    """Make ``conn`` ready for the backend: vector adapters and JSON codecs."""
    setup = _SETUPS.get(conn)
    if setup is None:
        # A connection the backend did not open: detect what the server has.
        info = await TypeInfo.fetch(conn, "vector")
    else:
        # The type fetched once per store instead of register_vector_async()'s four catalog
        # queries per connection.
        info = setup.vector_info if setup.dialect.binary_vectors else None
    codecs.register(conn, info)
