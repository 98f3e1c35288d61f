"""The plugin system: entry points, both hooks, allowlist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import vectorstore as vs
from vectorstore import registry


def test_builtin_backends_load_through_entry_points() -> None:
    backends = registry.backends()
    assert {"memory", "sqlite", "postgres"} <= set(backends)
    assert backends["postgres"].schemes == ("postgresql",)
    infos = {p.name: p for p in registry.plugins()}
    assert infos["sqlite"].distribution == "vectorstore"
    assert infos["sqlite"].backends == ("sqlite",)


def test_register_backends_hook_opens_a_runtime_plugin() -> None:
    """vectorstore_register_backends: a plugin's BackendSpec is used for its scheme."""
    from vectorstore_memory.backend import MemoryBackend

    opened: list[str] = []

    async def factory(config: Any) -> Any:
        opened.append(config.url)
        return MemoryBackend()

    class Plugin:
        @vs.hookimpl
        def vectorstore_register_backends(self) -> list[vs.BackendSpec]:
            return [vs.BackendSpec(name="echo", schemes=("echo",), factory=factory)]

    plugin = Plugin()
    registry.register(plugin)
    try:
        store = vs.connect("echo://somewhere")
        store.close()
        assert opened == ["echo://somewhere"]
    finally:
        registry.unregister(plugin)


def test_prepare_connection_hook_runs_for_every_sqlite_connection(tmp_path: Path) -> None:
    """vectorstore_prepare_connection: called with the driver connection and the backend name."""
    seen: list[tuple[str, bool]] = []

    class Plugin:
        @vs.hookimpl
        def vectorstore_prepare_connection(self, conn: Any, backend: str) -> None:
            seen.append((backend, hasattr(conn, "execute")))
            if backend == "sqlite":
                conn.create_function("shout", 1, lambda s: str(s).upper())

    plugin = Plugin()
    registry.register(plugin)
    try:
        store = vs.connect(f"sqlite:///{tmp_path}/h.db")
        col = store.create_collection("c", dim=2)
        col.upsert([{"id": "a", "vector": [1, 0]}])
        store.close()
    finally:
        registry.unregister(plugin)
    assert seen and all(s == ("sqlite", True) for s in seen)


def test_a_plugin_returning_garbage_is_a_clear_error() -> None:
    class Bad:
        @vs.hookimpl
        def vectorstore_register_backends(self) -> list[Any]:
            return ["not a spec"]

    plugin = Bad()
    registry.register(plugin)
    try:
        with pytest.raises(vs.ConfigError, match="expected BackendSpec"):
            registry.backends()
    finally:
        registry.unregister(plugin)


def test_two_backends_claiming_one_scheme_is_reported() -> None:
    class Clash:
        @vs.hookimpl
        def vectorstore_register_backends(self) -> list[vs.BackendSpec]:
            async def factory(config: Any) -> Any:
                raise AssertionError

            return [vs.BackendSpec(name="other-memory", schemes=("memory",), factory=factory)]

    plugin = Clash()
    registry.register(plugin)
    try:
        with pytest.raises(vs.ConfigError, match="several backends"):
            vs.connect("memory://")
    finally:
        registry.unregister(plugin)


def test_register_embedders_hook_adds_a_named_embedder() -> None:
    """vectorstore_register_embedders: a plugin's embedder is found by name; the built-ins are there."""
    import numpy as np

    from vectorstore.embedding import EmbedderSpec, embedders, get_embedder

    class Constant:
        name = "constant"

        def __init__(self, dim: int) -> None:
            self.dim = dim

        def embed(self, texts: Any) -> Any:
            return np.ones((len(texts), self.dim), dtype=np.float32)

    class Plugin:
        @vs.hookimpl
        def vectorstore_register_embedders(self) -> list[EmbedderSpec]:
            return [EmbedderSpec("constant", lambda dim: Constant(dim or 3), None, "test")]

    plugin = Plugin()
    registry.register(plugin)
    try:
        assert {"hashing", "minilm", "constant"} <= set(embedders())
        assert get_embedder("constant", 5).embed(["a", "b"]).shape == (2, 5)
    finally:
        registry.unregister(plugin)
    with pytest.raises(vs.ConfigError, match="no embedder named 'constant'"):
        get_embedder("constant", 6)
    with pytest.raises(vs.ConfigError, match="384"):
        get_embedder("minilm", 768)


def test_restricting_plugins_keeps_the_builtin_embedders(tmp_path: Path) -> None:
    """VECTORSTORE_PLUGINS=sqlite,postgres (as the README shows) loads only those backends, and the
    agent memory still finds its default embedder: `vectorstore learn` runs, ReflexionMemory opens."""
    env = {**os.environ, "VECTORSTORE_PLUGINS": "sqlite,postgres"}
    env.pop("VECTORSTORE_URL", None)
    url = f"sqlite:///{tmp_path}/m.db"
    code = ("import vectorstore as vs\n"
            "from vectorstore import registry\n"
            "from vectorstore.memory import ReflexionMemory\n"
            "assert sorted(registry.backends()) == ['postgres', 'sqlite'], registry.backends()\n"
            f"store = vs.connect({url!r})\n"
            "memory = ReflexionMemory(store)\n"
            "print(memory.store_episode(session_id='s', task='t', reward=1.0, success=True))\n"
            "store.close()\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    learn = subprocess.run([sys.executable, "-m", "vectorstore.cli", "learn", "--url", url], env=env,
                           capture_output=True, text=True, timeout=120)
    assert learn.returncode == 0, learn.stdout + learn.stderr
