"""Registers the PostgreSQL backend and its connection set-up, through the same
hooks a third-party plugin uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vectorstore import hookimpl
from vectorstore.config import StoreConfig
from vectorstore.spi import Backend, BackendSpec, Capabilities

#: HNSW from ``exact_search_below`` rows up: recall@10 >= 0.95 at the default ef_search (200), >= 0.99
#: at 400 on the conformance suite's data sets.
CAPABILITIES = Capabilities(persistent=True, transactions=True, exact_search=False, concurrent_processes=True,
                            default_recall=0.95, high_recall_ef_search=400)


async def _open(config: StoreConfig) -> Backend:
    from vectorstore_postgres.backend import open_backend

    return await open_backend(config)


async def _exists(config: StoreConfig) -> bool:
    from vectorstore_postgres.backend import store_exists

    return await store_exists(config)


def _test_url(base_url: str | None, tmp_path: Path) -> str:
    from vectorstore_postgres.testing import isolated_url

    return isolated_url(base_url)


def _libpq_parameter(name: str) -> bool:
    from vectorstore_postgres.connection import libpq_keywords

    return name in libpq_keywords()


def spec() -> BackendSpec:
    from vectorstore import __version__
    from vectorstore_postgres.connection import DEFAULTS

    return BackendSpec(name="postgres", schemes=("postgresql",), factory=_open, version=__version__,
                       description="PostgreSQL + pgvector (or the ruvector extension): pooled, HNSW",
                       capabilities=CAPABILITIES, test_url=_test_url, exists=_exists, options=DEFAULTS,
                       passthrough=_libpq_parameter,
                       passthrough_help="any libpq connection parameter (sslmode, application_name, ...)")


@hookimpl
def vectorstore_register_backends() -> list[BackendSpec]:
    return [spec()]


@hookimpl
def vectorstore_prepare_connection(conn: Any, backend: str) -> Any:
    if backend == "postgres":
        from vectorstore_postgres.connection import prepare

        return prepare(conn)
    return None
