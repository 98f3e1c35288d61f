"""Registers the SQLite backend and loads sqlite-vec into its connections,
through the same hooks a third-party plugin uses."""

from __future__ import annotations

import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from vectorstore import hookimpl
from vectorstore.config import StoreConfig
from vectorstore.spi import Backend, BackendSpec, Capabilities

#: Approximate from ``exact_search_below`` vectors up (quantized codes, see quantized.py), where
#: each search widens its candidates until a miss is improbable: recall@10 >= 0.99 by default.
CAPABILITIES = Capabilities(persistent=True, transactions=True, exact_search=False, concurrent_processes=True,
                            default_recall=0.99, high_recall_ef_search=200)

#: The backend's own URL options and their defaults (``exact_search_below`` is a common option).
OPTIONS: dict[str, Any] = {
    "timeout": 5.0,  # busy timeout: how long to wait for another process's lock
    "readers": 2,  # read connections (reads run in parallel with each other and the writer)
}


async def _open(config: StoreConfig) -> Backend:
    from vectorstore_sqlite.backend import open_backend

    return await open_backend(config)


def _test_url(base_url: str | None, tmp_path: Path) -> str:
    """A new file per test: in ``tmp_path``, or beside the file the tester's URL names (so its
    file system is the one tested), named ``<stem>-<random>.db``, with the URL's options."""
    if base_url is None:
        return f"sqlite:///{tmp_path / 'conformance.db'}"
    parts = urllib.parse.urlsplit(base_url)
    given = Path(urllib.parse.unquote(parts.path)[1:] or "conformance.db")
    path = given.with_name(f"{given.stem or 'conformance'}-{uuid.uuid4().hex[:12]}{given.suffix or '.db'}")
    query = f"?{parts.query}" if parts.query else ""
    netloc = parts.netloc  # (kept, so a URL naming a host is refused as it would be)
    return f"sqlite://{netloc}/{urllib.parse.quote(str(path))}{query}"


def _test_cleanup(url: str) -> None:
    """Delete a file :func:`_test_url` made beside the tester's (with its -wal, -shm and the
    writers' -vslock marker)."""
    path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)[1:])
    for suffix in ("", "-wal", "-shm", "-journal", "-vslock"):
        name = path.name + suffix
        path.with_name(name).unlink(missing_ok=True)


async def _exists(config: StoreConfig) -> bool:
    from vectorstore_sqlite.backend import store_exists

    return store_exists(config)


def spec() -> BackendSpec:
    from vectorstore import __version__

    return BackendSpec(name="sqlite", schemes=("sqlite",), factory=_open, version=__version__,
                       description="SQLite file + sqlite-vec (development, embedded, single writer)",
                       capabilities=CAPABILITIES, test_url=_test_url, test_cleanup=_test_cleanup, exists=_exists,
                       options=OPTIONS)


@hookimpl
def vectorstore_register_backends() -> list[BackendSpec]:
    return [spec()]


@hookimpl
def vectorstore_prepare_connection(conn: Any, backend: str) -> None:
    if backend == "sqlite":
        from vectorstore_sqlite.driver import load_sqlite_vec

        load_sqlite_vec(conn)
