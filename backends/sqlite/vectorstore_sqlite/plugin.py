"""Registers the SQLite backend and loads sqlite-vec into its connections,
through the same hooks a third-party plugin uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vectorstore import hookimpl
from vectorstore.config import StoreConfig
from vectorstore.spi import Backend, BackendSpec, Capabilities

CAPABILITIES = Capabilities(persistent=True, transactions=True, exact_search=True, concurrent_processes=True)


async def _open(config: StoreConfig) -> Backend:
    from vectorstore_sqlite.backend import open_backend

    return await open_backend(config)


def _test_url(base_url: str | None, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'conformance.db'}"


async def _exists(config: StoreConfig) -> bool:
    from vectorstore_sqlite.backend import store_exists

    return store_exists(config)


@hookimpl
def vectorstore_register_backends() -> list[BackendSpec]:
    from vectorstore import __version__

    return [BackendSpec(name="sqlite", schemes=("sqlite",), factory=_open, version=__version__,
                        description="SQLite file + sqlite-vec (development, embedded, single writer)",
                        capabilities=CAPABILITIES, test_url=_test_url, exists=_exists)]


@hookimpl
def vectorstore_prepare_connection(conn: Any, backend: str) -> None:
    if backend == "sqlite":
        from vectorstore_sqlite.driver import load_sqlite_vec

        load_sqlite_vec(conn)
