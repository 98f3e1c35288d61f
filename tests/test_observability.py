"""Metrics, structured logs, spans and the operations endpoint, through real calls: the endpoint is
served by uvicorn on 127.0.0.1 and asked over HTTP. (The PostgreSQL up / down / back cycle is in
tests/faults/.)"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import vectorstore as vs
from fixtures.exposition import sample


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, 4xx/5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["content-type"], exc.read().decode()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition ``text`` (0 when absent)."""
    return sample(text, name, **labels) or 0.0


def test_metrics_count_calls_rows_outcomes_and_the_breaker() -> None:
    from vectorstore.metrics import exposition

    store = vs.connect("memory://", metrics=True)
    col = store.create_collection("metered", dim=2)
    before = exposition()[0].decode()
    col.upsert([{"id": str(i), "vector": [1, i]} for i in range(7)])
    col.search([1, 0], k=3)
    with pytest.raises(vs.InvalidInput):
        col.search([1, 0], k=0)  # (refused by the core: not a call of the backend)
    with pytest.raises(vs.CollectionNotFound):
        store.collection("missing")
    text = exposition()[0].decode()

    def grew(name: str, **labels: str) -> float:
        return metric(text, name, **labels) - metric(before, name, **labels)

    assert grew("vectorstore_calls_total", operation="upsert", collection="metered", backend="memory",
                outcome="ok") == 1
    assert grew("vectorstore_rows_written_total", operation="upsert", collection="metered") == 7
    assert grew("vectorstore_calls_total", operation="search", collection="metered", outcome="ok") == 1
    assert grew("vectorstore_calls_total", operation="get_collection", collection="missing",
                outcome="CollectionNotFound") == 1
    assert grew("vectorstore_call_duration_seconds_count", operation="search", collection="metered") == 1
    assert metric(text, "vectorstore_breaker_state", backend="memory") == 0
    store.close()


def test_two_stores_have_series_of_their_own_and_no_password_in_a_label(tmp_path: Path) -> None:
    """Per-store gauges (the breaker; the pool where there is one) carry a ``store`` label, the URL
    without password or options, so two stores of one backend never emit the same series."""
    from vectorstore.metrics import exposition

    url = f"sqlite:///{tmp_path}/a.db?readers=2"
    stores = [vs.connect(url, metrics=True), vs.connect(url, metrics=True),
              vs.connect(f"sqlite:///{tmp_path}/b.db", metrics=True)]
    text = exposition()[0].decode()
    series = [line.rpartition(" ")[0] for line in text.splitlines() if line.startswith("vectorstore_breaker_state{")]
    assert len(series) == len(set(series))
    labels = {line.split('store="')[1].split('"')[0] for line in series if str(tmp_path) in line}
    assert labels == {f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/a.db#2", f"sqlite:///{tmp_path}/b.db"}
    for store in stores:
        store.close()


def test_embedding_cache_lookups_are_counted_by_model() -> None:
    from vectorstore.embedding import HashingEmbedder
    from vectorstore.media import EmbeddingCache
    from vectorstore.metrics import exposition

    store = vs.connect("memory://", metrics=True)
    cache = EmbeddingCache(store, HashingEmbedder(8))
    before = exposition()[0].decode()
    cache.embed(["a", "b", "a"])  # two misses (computed), then stored
    cache.embed(["a", "c"])  # one hit, one miss
    text = exposition()[0].decode()
    hit = metric(text, "vectorstore_embedding_cache_total", model=cache.model, result="hit") - metric(
        before, "vectorstore_embedding_cache_total", model=cache.model, result="hit")
    miss = metric(text, "vectorstore_embedding_cache_total", model=cache.model, result="miss") - metric(
        before, "vectorstore_embedding_cache_total", model=cache.model, result="miss")
    assert (hit, miss) == (cache.stats.hits, cache.stats.misses) == (1, 3)
    store.close()


def test_a_store_without_metrics_records_nothing() -> None:
    from vectorstore.metrics import exposition

    store = vs.connect("memory://")
    col = store.create_collection("unmetered_zz", dim=2)
    col.upsert([{"id": "a", "vector": [1, 0]}])
    assert "unmetered_zz" not in exposition()[0].decode()
    assert store.layer.instruments.recorder is None
    store.close()


def test_json_logs_carry_the_layers_fields_and_never_a_vector() -> None:
    from vectorstore.logs import configure

    stream = io.StringIO()
    handler = configure(logging.INFO, stream)
    try:
        store = vs.connect("memory://?slow_call=0.000001")  # (every call is "slow")
        col = store.create_collection("logged", dim=3)
        secret_vector = [0.123456789, 0.987654321, 0.555555555]
        col.upsert([{"id": "a", "vector": secret_vector, "metadata": {"note": "private words"}}])
        with col.bulk_load():
            pass
        store.close()
        logging.getLogger("psycopg.pool").warning("error connecting in %r: refused", "vectorstore:x")
        logging.getLogger("psycopg").info("a driver's chatter stays out")
    finally:
        for name in ("vectorstore", "psycopg"):
            logging.getLogger(name).removeHandler(handler)
        logging.getLogger("psycopg").setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines, "no log line"
    drivers = [entry for entry in lines if entry["logger"].startswith("psycopg")]
    assert [(e["logger"], e["level"]) for e in drivers] == [("psycopg.pool", "WARNING")], drivers
    slow = [entry for entry in lines if entry.get("event") == "slow_call" and entry.get("operation") == "upsert"]
    assert slow and slow[0]["collection"] == "logged" and slow[0]["backend"] == "memory" and slow[0]["rows"] == 1
    assert {"time", "level", "logger", "message"} <= set(slow[0])
    built = [entry for entry in lines if entry.get("event") == "bulk_load_end"]
    assert built and built[0]["collection"] == "logged"
    text = stream.getvalue()
    assert "0.123456789" not in text and "private words" not in text


def test_spans_follow_the_database_semantic_conventions() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    store = vs.connect("memory://", tracing=True)
    col = store.create_collection("traced", dim=2)
    col.upsert([{"id": "a", "vector": [1, 0]}])
    with pytest.raises(vs.CollectionNotFound):
        store.collection("absent")
    store.close()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    upsert = spans["upsert traced"]
    assert upsert.kind is trace.SpanKind.CLIENT
    assert dict(upsert.attributes or {}) == {"db.system.name": "other_sql", "db.operation.name": "upsert",
                                            "db.collection.name": "traced"}
    failed = spans["get_collection absent"]
    assert failed.status.status_code is trace.StatusCode.ERROR


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_ops_endpoint_answers_health_ready_and_metrics(tmp_path: Path) -> None:
    from vectorstore.ops import create_app

    store = vs.connect(f"sqlite:///{tmp_path}/ops.db", metrics=True)
    store.create_collection("served", dim=2).upsert([{"id": "a", "vector": [1, 0]}])
    with serving(create_app(store.async_store)) as base:
        status, kind, body = get(base + "/health")
        assert status == 200 and kind.startswith("application/json")
        health = json.loads(body)
        assert health["status"] == "ok" and health["backend"] == "sqlite"
        assert health["checks"]["database"]["ok"] is True and health["checks"]["circuit_breaker"]["state"] == "closed"
        assert json.loads(get(base + "/ready")[2]) == {"ready": True}
        status, kind, text = get(base + "/metrics")
        assert status == 200 and kind.startswith("text/plain")
        assert metric(text, "vectorstore_calls_total", operation="upsert", collection="served", backend="sqlite") >= 1
        assert str(tmp_path) in body  # (the path is not a secret: it is how the operator finds the file)
    store.close()


def test_the_endpoint_says_unavailable_until_the_store_opens() -> None:
    """``vectorstore serve`` answers before the database does: 503 with the reason, then 200 once the
    store has opened (here: a store opened later by hand)."""
    from vectorstore.ops import Opening, create_app

    opening = Opening()
    opening.error = "cannot open the store yet: the server is down"
    with serving(create_app(opening)) as base:
        status, _, body = get(base + "/health")
        assert status == 503 and "server is down" in body
        assert get(base + "/ready")[0] == 503
        opening.store = asyncio.run(vs.open_store("memory://"))
        time.sleep(0.6)  # (the last answer is reused for half a second)
        assert get(base + "/health")[0] == 200 and get(base + "/ready")[0] == 200
        asyncio.run(opening.store.aclose())


def test_serve_closes_its_store_when_stopped_by_sigterm(tmp_path: Path) -> None:
    """A service manager stops ``vectorstore serve`` with SIGTERM: the store is closed cleanly (on
    SQLite the last connection's close checkpoints the WAL and removes the -wal file, which a
    process that just exits leaves behind). uvicorn raises the signal again after its shutdown, so
    only the app's lifespan sees it."""
    import signal
    import socket
    import subprocess
    import sys

    db = tmp_path / "served.db"
    seeding = vs.connect(f"sqlite:///{db}")
    seeding.create_collection("c", dim=2).upsert([{"id": "a", "vector": [1, 0]}])
    seeding.close()
    assert not db.with_name(db.name + "-wal").exists()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([str(Path(sys.executable).with_name("vectorstore")), "serve", "--url", f"sqlite:///{db}",
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if get(f"http://127.0.0.1:{port}/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("vectorstore serve never became ready")
        assert db.with_name(db.name + "-wal").exists()  # (the open store's WAL)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert not db.with_name(db.name + "-wal").exists(), proc.stderr.read().decode()[-2000:] if proc.stderr else ""
