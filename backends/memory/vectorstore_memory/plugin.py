"""Registers the memory backend through the same hook a third-party plugin uses."""

from __future__ import annotations

from pathlib import Path

from vectorstore import hookimpl
from vectorstore.config import StoreConfig
from vectorstore.spi import Backend, BackendSpec
from vectorstore_memory.backend import CAPABILITIES


async def _open(config: StoreConfig) -> Backend:
    from vectorstore_memory.backend import MemoryBackend

    return MemoryBackend()  # (its options, only the common ones, were checked by the core)


def _test_url(base_url: str | None, tmp_path: Path) -> str:
    return "memory://"


async def _exists(config: StoreConfig) -> bool:
    return False  # every memory:// store is new


@hookimpl
def vectorstore_register_backends() -> list[BackendSpec]:
    from vectorstore import __version__

    return [BackendSpec(name="memory", schemes=("memory",), factory=_open, version=__version__,
                        description="pure NumPy reference: exact search, in-process, not persistent",
                        capabilities=CAPABILITIES, test_url=_test_url, exists=_exists)]
