"""A third-party backend, registered the way a plugin would be, runs the whole conformance suite.

The toy backend is the memory backend with transactions undeclared, so the suite's
capability tests take their "not supported" side.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import vectorstore as vs
from vectorstore import registry
from vectorstore.config import StoreConfig
from vectorstore.spi import Backend, BackendSpec, Capabilities
from vectorstore_conformance import ConformanceSuite
from vectorstore_memory.backend import MemoryBackend

TOY_CAPS = Capabilities(persistent=False, transactions=False, exact_search=True, concurrent_processes=False)


class ToyBackend(MemoryBackend):
    name = "toy"
    capabilities = TOY_CAPS


async def _open(config: StoreConfig) -> Backend:
    return ToyBackend()


class ToyPlugin:
    @vs.hookimpl
    def vectorstore_register_backends(self) -> list[BackendSpec]:
        return [BackendSpec(name="toy", schemes=("toy",), factory=_open, capabilities=TOY_CAPS,
                            test_url=lambda base, tmp: "toy://")]


@pytest.fixture(scope="module", autouse=True)
def toy_plugin() -> Iterator[None]:
    plugin = ToyPlugin()
    registry.register(plugin, name="toy")
    yield
    registry.unregister(plugin)


class TestToyBackendConformance(ConformanceSuite):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return "toy://"


def test_undeclared_transactions_raise_not_supported() -> None:
    store = vs.connect("toy://")
    try:
        with pytest.raises(vs.NotSupported, match="does not support transactions"):
            store.transaction()
    finally:
        store.close()


def test_silent_override_is_caught() -> None:
    """test_no_silent_overrides fails for a subclass that replaces a standard test without xfail."""

    class Sneaky(ConformanceSuite):
        def test_count(self, store: vs.Store) -> None:  # type: ignore[override]
            pass

    with pytest.raises(AssertionError, match="test_count"):
        Sneaky().test_no_silent_overrides()

    class Honest(ConformanceSuite):
        @pytest.mark.xfail(reason="counts are estimates on this backend")
        def test_count(self, store: vs.Store) -> None:  # type: ignore[override]
            raise AssertionError

    Honest().test_no_silent_overrides()


def test_no_suite_part_shadows_another() -> None:
    """Every part of the suite has its own test names, so none is silently dropped when combined."""
    from vectorstore_conformance import shadowed_tests

    assert shadowed_tests() == {}
