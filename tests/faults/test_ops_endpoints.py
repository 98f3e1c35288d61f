"""The operations endpoint (/health, /ready, /metrics) over real HTTP while a real PostgreSQL server
goes down (SIGKILL) and comes back: ``vectorstore serve`` as a subprocess, and the app mounted in
this process on a store the application also calls. Every request answers within a bound (never
hangs), the endpoint says 503 while the database is down and 200 again soon after it accepts
connections, and the URL's password appears in no answer and no log line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import vectorstore as vs
from fixtures.exposition import sample
from fixtures.faults import FAST, wait_until
from fixtures.pgserver import PgServer
from vectorstore.config import display_url
from vectorstore.ops import HEALTH_TTL

pytestmark = pytest.mark.postgres

T = TypeVar("T")

PASSWORD = "s3cret-pw"
#: Every HTTP request answers within this (the store's deadline is 3 s): never "forever".
ANSWER = 6.0
#: /health and /ready are 200 again within this long of the server accepting connections (the
#: store's 2 s recovery target plus the reuse of the last /health answer, with a little slack).
RECOVERY = 3.0
assert RECOVERY >= 2.0 + HEALTH_TTL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def secret_url(pg: PgServer) -> str:
    """The server's URL with a password (the server trusts every local login, so it is accepted and
    ignored) and the failure tests' short timeouts as URL options."""
    query = "&".join(f"{k}={v}" for k, v in FAST.items())
    return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{pg.port}/postgres?{query}"


class Answer:
    def __init__(self, status: int, body: str, seconds: float) -> None:
        self.status = status
        self.body = body
        self.seconds = seconds

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.seconds:.2f}s, {self.body[:400]!r})"


class Client:
    """GETs of one server, each timed and kept (to check every body for the password)."""

    def __init__(self, base: str, store: str) -> None:
        self.base = base
        #: The ``store`` label of the served store's series in /metrics (its URL, no password).
        self.store = store
        self.answers: list[Answer] = []

    def get(self, path: str) -> Answer:
        start = time.monotonic()
        try:
            with urllib.request.urlopen(self.base + path, timeout=ANSWER + 4) as response:
                status, body = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode()
        answer = Answer(status, body, time.monotonic() - start)
        self.answers.append(answer)
        assert answer.seconds <= ANSWER, (path, answer)
        return answer

    def answers_at_all(self) -> bool:
        try:
            self.get("/health")
        except OSError:
            return False
        return True

    def leaked(self) -> list[Answer]:
        return [answer for answer in self.answers if PASSWORD in answer.body]


def check_up(client: Client) -> None:
    health = client.get("/health")
    assert health.status == 200, health
    body = health.json()
    assert body["status"] == "ok" and body["backend"] == "postgres", body
    assert body["checks"]["database"]["ok"] is True and "error" not in body["checks"]["database"], body
    assert body["checks"]["circuit_breaker"] == {"ok": True, "state": "closed", "consecutive_failures": 0}, body
    ready = client.get("/ready")
    assert (ready.status, ready.json()) == (200, {"ready": True}), ready


def check_down(client: Client) -> None:
    health = client.get("/health")
    assert health.status == 503, health
    body = health.json()
    database = body["checks"]["database"]
    assert body["status"] == "unavailable" and database["ok"] is False, body
    assert isinstance(database.get("error"), str) and "127.0.0.1" in database["error"], body
    ready = client.get("/ready")
    assert ready.status == 503 and ready.json()["ready"] is False, ready
    assert "database" in ready.json()["reason"], ready


def check_metrics(client: Client, breaker: float) -> str:
    answer = client.get("/metrics")
    assert answer.status == 200, answer
    text = answer.body
    assert "# TYPE vectorstore_pool_connections gauge" in text
    assert "# TYPE vectorstore_breaker_state gauge" in text
    assert PASSWORD not in client.store
    assert sample(text, "vectorstore_pool_connections", backend="postgres", store=client.store,
                  state="size") is not None, text
    assert sample(text, "vectorstore_breaker_state", backend="postgres", store=client.store) == breaker, text
    return text


class Late(AssertionError):
    """The endpoint did not say 200 again within the recovery bound."""


def recover(pg: PgServer, client: Client, before: Callable[[], bool] = lambda: True) -> float:
    """Restart the server; seconds from its accepting connections to /health and /ready both 200
    (polled after ``before()``), :class:`Late` when that is past the recovery bound."""
    pg.start()
    wait_until(pg.accepting, timeout=30)
    accepting = time.monotonic()

    def up() -> bool:
        return before() and client.get("/health").status == 200 and client.get("/ready").status == 200

    while not up():  # (a little longer than the bound, to tell how late)
        if time.monotonic() - accepting > RECOVERY + 2:
            raise Late(f"/health and /ready not both 200 within {RECOVERY + 2:g}s of the server's return: "
                       f"{client.answers[-2:]}")
        time.sleep(0.05)
    took = time.monotonic() - accepting
    if took > RECOVERY:
        raise Late(f"/health and /ready 200 only {took:.2f}s after the server's return (bound {RECOVERY:g}s)")
    return took


# -- vectorstore serve, a process of its own ------------------------------------------------------


@pytest.fixture
def served(pg: PgServer, tmp_path: Path) -> Iterator[tuple[Client, subprocess.Popen[bytes], Path]]:
    """``vectorstore serve --url URL --port P`` (stdout and stderr to files); always ended."""
    port = free_port()
    script = Path(sys.executable).with_name("vectorstore")
    command = [str(script)] if script.exists() else [
        sys.executable, "-c", "import sys; from vectorstore.cli import main; sys.exit(main())"]
    output = tmp_path / "serve.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen([*command, "serve", "--url", secret_url(pg), "--port", str(port)],
                                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        client = Client(f"http://127.0.0.1:{port}", display_url(secret_url(pg)))
        wait_until(client.answers_at_all, timeout=30, step=0.1)
        yield client, proc, output
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def test_serve_says_503_within_bounds_while_postgres_is_killed_and_200_soon_after_it_returns(
        pg: PgServer, served: tuple[Client, subprocess.Popen[bytes], Path]) -> None:
    """/health, /ready and /metrics of ``vectorstore serve`` before, during (every answer within
    its bound) and after an outage; the URL's password is in no answer and not in its output."""
    client, proc, output = served
    wait_until(lambda: client.get("/health").json()["status"] == "ok", timeout=30, step=0.1)  # (it opens)
    check_up(client)
    check_metrics(client, breaker=0)

    pg.kill()
    took = wait_until(lambda: client.get("/health").status == 503, timeout=ANSWER + HEALTH_TTL, step=0.05)
    assert took <= ANSWER, took
    outage_end = time.monotonic() + 4.0  # (longer than the store's 3 s deadline)
    while time.monotonic() < outage_end:
        check_down(client)
        check_metrics(client, breaker=0)  # (health checks do not go through the breaker)
        time.sleep(0.1)

    recover(pg, client)
    check_up(client)
    check_metrics(client, breaker=0)

    assert proc.poll() is None, "vectorstore serve ended by itself"
    proc.terminate()  # (uvicorn shuts down, then ends by the signal it caught)
    proc.wait(10)
    assert not client.leaked(), client.leaked()
    log = output.read_text(errors="replace")
    assert '"event": "breaker"' in log, log[-2000:]  # (the store's JSON log lines are there)
    assert PASSWORD not in log


# -- the app mounted in an application's own process ----------------------------------------------


class Loop:
    """An event loop in a thread: the application's, where the store and uvicorn both run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


@contextlib.contextmanager
def mounted(url: str) -> Iterator[tuple[Client, vs.AsyncStore, Loop]]:
    """``create_app(store)`` for a store opened with ``open_store(url, metrics=True)``, served by
    uvicorn on the same loop in a thread; both always closed."""
    import uvicorn

    from vectorstore.ops import create_app

    loop = Loop()
    try:
        store = loop.run(vs.open_store(url, metrics=True))
        try:
            port = free_port()
            server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port,
                                                   log_config=None, access_log=False))
            serving = asyncio.run_coroutine_threadsafe(server.serve(), loop.loop)
            try:
                wait_until(lambda: server.started or serving.done(), timeout=10)
                assert server.started, serving
                yield Client(f"http://127.0.0.1:{port}", display_url(url)), store, loop
            finally:
                server.should_exit = True
                serving.result(15)
        finally:
            loop.run(store.aclose())
    finally:
        loop.close()


def attempt(loop: Loop, call: Callable[[], Coroutine[Any, Any, T]]) -> tuple[float, T | Exception]:
    start = time.monotonic()
    try:
        result: T | Exception = loop.run(call())
    except Exception as exc:
        result = exc
    return time.monotonic() - start, result


def outage_that_opens_the_circuit(pg: PgServer, client: Client, loop: Loop, col: vs.AsyncCollection) -> None:
    """Kill the server and call the store until its circuit opens; the endpoint says so."""
    pg.kill()
    refused: list[vs.CircuitOpen] = []
    outage_end = time.monotonic() + 30
    while time.monotonic() < outage_end and not refused:
        elapsed, result = attempt(loop, col.count)
        assert isinstance(result, vs.BackendUnavailable) and elapsed <= ANSWER, (elapsed, result)
        refused += [result] if isinstance(result, vs.CircuitOpen) else []
    assert refused, "the circuit did not open"
    time.sleep(HEALTH_TTL)  # (a fresh /health answer)
    health = client.get("/health")
    assert health.status == 503, health
    checks = health.json()["checks"]
    assert checks["database"]["ok"] is False and "127.0.0.1" in checks["database"]["error"], checks
    assert checks["circuit_breaker"]["ok"] is False and checks["circuit_breaker"]["state"] == "open", checks
    assert checks["circuit_breaker"]["consecutive_failures"] >= 1, checks
    ready = client.get("/ready")
    assert ready.status == 503 and ready.json()["reason"] == "failing: database; circuit_breaker", ready
    check_metrics(client, breaker=2)


def test_a_mounted_endpoint_reports_the_open_circuit_and_recovers_with_the_applications_calls(
        pg: PgServer) -> None:
    """Beyond ``vectorstore serve`` (whose store makes no call but health checks, which never open
    the circuit): the application's own calls during the outage open the circuit, and /health,
    /ready and /metrics say so. Once the server is back and the application calls again, /health and /ready
    are 200 (circuit closed) within the recovery bound."""
    with mounted(secret_url(pg)) as (client, store, loop):
        col = loop.run(store.create_collection("docs", dim=2))
        loop.run(col.upsert([{"id": "a", "vector": [1.0, 0.0]}]))
        check_up(client)
        check_metrics(client, breaker=0)
        outage_that_opens_the_circuit(pg, client, loop, col)

        def calling() -> bool:
            attempt(loop, col.count)
            return True

        recover(pg, client, before=calling)
        check_up(client)
        check_metrics(client, breaker=0)
        assert not client.leaked(), client.leaked()


def test_a_mounted_endpoint_is_ready_again_with_no_call_after_an_outage_that_opened_the_circuit(
        pg: PgServer) -> None:
    """A load balancer sends no traffic to an instance whose /ready is 503: after an outage that
    opened the circuit, /health and /ready are 200 again within the recovery bound of the server's
    return with no application call in between (a healthy check closes the circuit; before that,
    only a call could, and /ready said 503 on a healthy database for good)."""
    with mounted(secret_url(pg)) as (client, store, loop):
        col = loop.run(store.create_collection("docs", dim=2))
        loop.run(col.upsert([{"id": "a", "vector": [1.0, 0.0]}]))
        check_up(client)
        outage_that_opens_the_circuit(pg, client, loop, col)
        recover(pg, client)
        check_up(client)
        assert not client.leaked(), client.leaked()
