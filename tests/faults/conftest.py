"""Fixtures of the failure tests: a PostgreSQL server of the test's own (crash it, restart it) and
a TCP proxy between the store and the server (refuse, reset, stall, swallow). Every fixture stops
what it starts."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.pgserver import PgServer
from fixtures.tcpproxy import TcpProxy


@pytest.fixture
def pg() -> Iterator[PgServer]:
    root = Path(tempfile.mkdtemp(prefix="vs-fault-"))
    root.chmod(0o755)
    server = PgServer(root).start()
    try:
        yield server
    finally:
        server.stop("immediate")


@pytest.fixture
def proxy(pg: PgServer) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", pg.port) as running:
        yield running
