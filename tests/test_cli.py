"""The command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("VECTORSTORE_URL", None)
    return subprocess.run([sys.executable, "-m", "vectorstore.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=300)


def test_demo_on_the_embedded_default(tmp_path: Path) -> None:
    """With no URL, the demo writes ./data/vectorstore.db and shows three searches and the switch hint."""
    result = _run("demo", "--n", "300", "--dim", "32", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert (tmp_path / "data" / "vectorstore.db").is_file()
    out = result.stdout
    assert "sqlite backend" in out
    assert "loaded 300 records" in out
    for title in ("plain search", "filtered:", "thresholded:"):
        assert title in out
    assert "postgresql://" in out
    # re-running replaces the demo collection instead of failing
    again = _run("demo", "--n", "100", "--dim", "32", cwd=tmp_path)
    assert again.returncode == 0 and "loaded 100 records" in again.stdout


def test_demo_on_memory() -> None:
    result = _run("demo", "--url", "memory://", "--n", "200", "--dim", "16")
    assert result.returncode == 0, result.stderr
    assert "memory backend" in result.stdout


def test_plugins_lists_builtin_backends_with_versions() -> None:
    result = _run("plugins")
    assert result.returncode == 0
    for name in ("memory", "sqlite", "postgres"):
        assert name in result.stdout
    assert "0.1.0" in result.stdout
    assert "postgresql://" in result.stdout
    assert "embedder hashing (any-d)" in result.stdout and "embedder minilm (384-d)" in result.stdout


def test_plugins_allowlist() -> None:
    result = _run("plugins", env={"VECTORSTORE_PLUGINS": "memory"})
    assert result.returncode == 0
    assert "memory" in result.stdout and "sqlite" not in result.stdout


def test_doctor_reports_and_exits_zero_when_healthy(tmp_path: Path) -> None:
    result = _run("doctor", f"sqlite:///{tmp_path}/d.db")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sqlite" in result.stdout.lower()
    assert "health: ok" in result.stdout


def test_doctor_on_an_unknown_scheme_says_what_is_installed() -> None:
    result = _run("doctor", "mongodb://localhost")
    assert result.returncode == 1
    assert "installed schemes" in result.stdout


def test_doctor_on_an_unreachable_server_fails_with_a_reason() -> None:
    result = _run("doctor", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert result.returncode == 1
    assert "cannot open the store" in result.stdout


def test_migrate_batch_size_0_exits_2_with_and_without_dry_run(tmp_path: Path) -> None:
    """The reported case, as a user runs it: `vectorstore migrate SRC TARGET --batch-size 0` exits 2
    (it exited 1, and 2 with --dry-run) saying what is wrong, and creates no target."""
    import sqlite3

    source = tmp_path / "agent.db"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE agentdb_config (key TEXT PRIMARY KEY, value TEXT)")
    conn.commit()
    conn.close()
    target = tmp_path / "target.db"
    for extra in ([], ["--dry-run"], ["--json"]):
        result = _run("migrate", str(source), f"sqlite:///{target}", "--batch-size", "0", *extra)
        out = " ".join(result.stdout.split())
        assert result.returncode == 2, result.stdout + result.stderr
        assert "--batch-size must be a whole number from 1 to 100,000" in out and "got 0" in out
        assert not target.exists()


def test_migrate_help_lists_every_exit_status() -> None:
    result = _run("migrate", "--help")
    assert result.returncode == 0
    for status in ("0  done:", "1  a run failed and was rolled back", "2  bad arguments or configuration",
                   "3  interrupted part-way"):
        assert status in result.stdout, status
