"""Registers the PostgreSQL backend and its connection set-up, through the same
hooks a third-party plugin uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vectorstore import hookimpl
from vectorstore.config import StoreConfig
from vectorstore.spi import Backend, BackendSpec, Capabilities

CAPABILITIES = Capabilities(persistent=True, transactions=True, exact_search=False, concurrent_processes=True)


async def _open(config: StoreConfig) -> Backend:
    from vectorstore_postgres.backend import open_backend

    return await open_backend(config)


async def _exists(config: StoreConfig) -> bool:
    from vectorstore_postgres.backend import store_exists

    return await store_exists(config)


def _test_url(base_url: str | None, tmp_path: Path) -> str:
    from vectorstore_postgres.testing import isolated_url

    return isolated_url(base_url)


@hookimpl
def vectorstore_register_backends() -> list[BackendSpec]:
    from vectorstore import __version__

    return [BackendSpec(name="postgres", schemes=("postgresql",), factory=_open, version=__version__,
                        description="PostgreSQL + pgvector (or the ruvector extension): pooled, HNSW",
                        capabilities=CAPABILITIES, test_url=_test_url, exists=_exists)]


@hookimpl
def vectorstore_prepare_connection(conn: Any, backend: str) -> Any:
    if backend == "postgres":
        from vectorstore_postgres.connection import prepare

        return prepare(conn)
    return None
