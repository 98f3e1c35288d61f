"""Agent memory (``vectorstore.memory``) on any backend: AgentDB's ReflexionMemory, SkillLibrary,
ReasoningBank and the nightly learner, with exact results on small known datasets."""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import vectorstore as vs
from vectorstore.embedding import get_embedder
from vectorstore.memory import (
    COLLECTIONS,
    AsyncReasoningBank,
    AsyncReflexionMemory,
    AsyncSkillLibrary,
    DuplicateSkill,
    InvalidMemoryInput,
    NightlyLearner,
    PatternNotFound,
    ReasoningBank,
    ReflexionMemory,
    SkillLibrary,
    SkillNotFound,
    UnknownRelationship,
)
from vectorstore_conformance.helpers import reopened

T0 = 1_700_000_000
DAY = 86_400
TOL = 1e-6


class Clock:
    """A settable clock (unix seconds)."""

    def __init__(self, now: float = T0) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now


def embed(text: str) -> np.ndarray:
    vector: np.ndarray = get_embedder("hashing", 384).embed([text])[0]
    return vector


def num(value: float | None) -> float:
    """A score that must be set."""
    assert value is not None
    return value


def ids_of(col: vs.Collection) -> list[int]:
    return sorted(int(r.id) for r in col.scan())  # type: ignore[arg-type]


def cosine(a: Any, b: Any) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def snapshot(store: vs.Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every record of the memory's collections, for before/after comparisons."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name in COLLECTIONS:
        out[name] = [(r.id, dict(r.fields), dict(r.metadata), None if r.vector is None else r.vector.tolist())
                     for r in store.collection(name).scan()]
    return out


def _needs_transactions(cls: type[Any]) -> type[Any]:
    """The agent memory declares that it needs transactions: on a backend without them, every
    test checks the clear NotSupported refusal instead (the capability's other side)."""

    def guard(test: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(test)
        def run(self: Any, store: vs.Store, *args: Any, **kwargs: Any) -> None:
            if not store.capabilities.transactions:
                with pytest.raises(vs.NotSupported, match="transactions"):
                    ReflexionMemory(store)
                return
            test(self, store, *args, **kwargs)

        return run

    for name, value in list(vars(cls).items()):
        if name.startswith("test_") and callable(value):
            setattr(cls, name, guard(value))
    return cls


@_needs_transactions
class AgentMemoryConformance:
    """Each operation of the agent memory on the store under test."""

    @pytest.fixture
    def clock(self) -> Clock:
        return Clock()

    # -- layout ----------------------------------------------------------------------------------

    def test_collections_have_the_agentdb_shape(self, store: vs.Store, clock: Clock) -> None:
        """The five collections are named like AgentDB's tables, with int ids, AgentDB's columns as
        fields and 384-d cosine vectors by default."""
        ReflexionMemory(store, clock=clock)
        specs = {s.name: s for s in store.list_collections()}
        assert sorted(specs) == ["causal_edges", "episodes", "reasoning_patterns", "skill_links", "skills"]
        for name, want in COLLECTIONS.items():
            spec = specs[name]
            assert spec.id_type is vs.IdType.INT and spec.dim == 384 and spec.metric is vs.Metric.COSINE
            assert dict(spec.fields) == dict(want.fields)
        assert set(specs["episodes"].fields) == {"ts", "session_id", "task", "input", "output", "critique", "reward",
                                                 "success", "latency_ms", "tokens_used", "tags", "created_at"}
        assert specs["skills"].fields["avg_latency_ms"] is vs.FieldType.FLOAT
        assert specs["skills"].fields["signature"] is vs.FieldType.JSON
        assert specs["episodes"].fields["tags"] is vs.FieldType.TEXT_ARRAY
        # a second memory over the same store reuses them
        SkillLibrary(store, clock=clock)
        assert len(store.list_collections()) == 5

    def test_dimension_comes_from_dim_or_agentdb_vector_dim(self, store: vs.Store, clock: Clock,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AGENTDB_VECTOR_DIM", "32")
        memory = ReflexionMemory(store, clock=clock)
        assert store.collection("episodes").spec.dim == 32
        eid = memory.store_episode(session_id="s", task="t", reward=1, success=True)
        assert store.collection("episodes").get([eid])[0].vector.shape == (32,)
        with pytest.raises(vs.ConfigError):  # an existing collection of another dimension is refused
            ReflexionMemory(store, dim=64, clock=clock)

    # -- ReflexionMemory -------------------------------------------------------------------------

    def test_store_episode_writes_the_agentdb_row(self, store: vs.Store, clock: Clock) -> None:
        """Fields as AgentDB writes them: ts/created_at now, success 0/1, '' and 0 as NULL; the
        vector is the embedding of task\\ncritique\\noutput; ids are allocated 1, 2, ..."""
        memory = ReflexionMemory(store, clock=clock)
        first = memory.store_episode(session_id="s1", task="parse csv", reward=0.75, success=True, input="a.csv",
                                     output="used the csv module", critique="handle quotes", latency_ms=12.5,
                                     tokens_used=300, tags=["io", "csv"], metadata={"model": "x", "n": 1})
        clock.now += 5
        second = memory.store_episode(session_id="s1", task="parse csv", reward=0, success=False, input="",
                                      output="", critique="", latency_ms=0, tokens_used=0)
        assert (first, second) == (1, 2)
        rows = store.collection("episodes").get([1, 2])
        assert rows[0].fields == {"ts": T0, "session_id": "s1", "task": "parse csv", "input": "a.csv",
                                  "output": "used the csv module", "critique": "handle quotes", "reward": 0.75,
                                  "success": 1, "latency_ms": 12.5, "tokens_used": 300, "tags": ["io", "csv"],
                                  "created_at": T0}
        assert rows[0].metadata == {"model": "x", "n": 1}
        assert np.array_equal(rows[0].vector, embed("parse csv\nhandle quotes\nused the csv module"))
        assert rows[1].fields == {"ts": T0 + 5, "session_id": "s1", "task": "parse csv", "input": None, "output": None,
                                  "critique": None, "reward": 0.0, "success": 0, "latency_ms": None,
                                  "tokens_used": None, "tags": None, "created_at": T0 + 5}
        assert np.array_equal(rows[1].vector, embed("parse csv"))
        got = memory.get_episode(1)
        assert got is not None and got.success is True and got.tags == ["io", "csv"] and got.similarity is None

    def test_retrieve_relevant_ranks_filters_and_breaks_ties_by_reward(self, store: vs.Store, clock: Clock) -> None:
        memory = ReflexionMemory(store, clock=clock)
        clock.now = T0 - 10 * DAY
        old = memory.store_episode(session_id="s", task="deploy the web service", reward=0.9, success=True)
        clock.now = T0
        texts = {"deploy the web service to staging": (0.4, False), "deploy the web service": (0.8, True),
                 "write unit tests for parser": (0.95, True), "deploy database migrations": (0.1, False)}
        ids = {text: memory.store_episode(session_id="s", task=text, reward=r, success=ok)
               for text, (r, ok) in texts.items()}
        twin = ids["deploy the web service"]
        query = embed("deploy the web service")
        ranked = memory.retrieve_relevant("deploy the web service", k=10)
        # identical text, identical similarity 1.0: the higher reward (old: 0.9) comes first
        assert [e.id for e in ranked[:2]] == [old, twin]
        assert all(abs(num(e.similarity) - cosine(query, embed(e.task))) <= TOL for e in ranked)
        sims = [num(e.similarity) for e in ranked]
        assert sims == sorted(sims, reverse=True) and len(ranked) == 5
        assert [e.id for e in memory.retrieve_relevant("deploy the web service", k=1)] == [old]
        assert {e.id for e in memory.retrieve_relevant("deploy the web service", k=10, min_reward=0.8)} == {
            old, twin, ids["write unit tests for parser"]}
        assert {e.id for e in memory.retrieve_relevant("deploy", k=10, only_failures=True)} == {
            ids["deploy the web service to staging"], ids["deploy database migrations"]}
        assert {e.id for e in memory.retrieve_relevant("deploy", k=10, only_successes=True)} == {
            old, twin, ids["write unit tests for parser"]}
        assert old not in {e.id for e in memory.retrieve_relevant("deploy", k=10, time_window_days=7)}
        assert len(memory.retrieve_relevant("deploy", k=10, time_window_days=0)) == 5  # 0: no window
        with_state = memory.retrieve_relevant("deploy", current_state="web service", k=1)
        expected = cosine(embed("deploy\nweb service"), embed(with_state[0].task))
        assert abs(num(with_state[0].similarity) - expected) <= TOL

    def test_task_stats_formulas(self, store: vs.Store, clock: Clock) -> None:
        """AgentDB's formulas on a known dataset (exact values)."""
        memory = ReflexionMemory(store, clock=clock)
        clock.now = T0 - 10 * DAY
        memory.store_episode(session_id="s", task="t", reward=0.5, success=True, latency_ms=100)
        memory.store_episode(session_id="s", task="t", reward=0.25, success=False)
        clock.now = T0
        memory.store_episode(session_id="s", task="t", reward=1.0, success=True, latency_ms=300)
        memory.store_episode(session_id="s", task="t", reward=0.75, success=False, latency_ms=200)
        memory.store_episode(session_id="s", task="other", reward=0.0, success=False)
        stats = memory.get_task_stats("t")
        assert (stats.total_attempts, stats.success_rate, stats.avg_reward, stats.avg_latency) == (4, 0.5, 0.625, 200.0)
        assert stats.improvement_trend == (0.875 - 0.375) / 0.375
        recent = memory.get_task_stats("t", time_window_days=5)
        assert (recent.total_attempts, recent.success_rate, recent.avg_reward, recent.avg_latency,
                recent.improvement_trend) == (2, 0.5, 0.875, 250.0, 0.0)
        none = memory.get_task_stats("never seen")
        assert (none.total_attempts, none.success_rate, none.avg_reward, none.avg_latency,
                none.improvement_trend) == (0, 0.0, 0.0, 0.0, 0.0)

    def test_critique_summary_and_success_strategies_text(self, store: vs.Store, clock: Clock) -> None:
        memory = ReflexionMemory(store, clock=clock)
        assert memory.get_critique_summary("login") == "No prior failures found for this task."
        assert memory.get_success_strategies("login") == "No successful strategies found for this task."
        memory.store_episode(session_id="s", task="login", reward=0.125, success=False, critique="token expired")
        memory.store_episode(session_id="s", task="login", reward=0.3, success=False)  # no critique: skipped
        memory.store_episode(session_id="s", task="login", reward=0.875, success=True, output="x" * 250)
        memory.store_episode(session_id="s", task="login", reward=0.6, success=True, output="too low")
        memory.store_episode(session_id="s", task="login", reward=0.7, success=True)
        summary = memory.get_critique_summary("login")
        assert summary == "Prior failures and lessons learned:\n1. token expired (reward: 0.13)"
        # "login" alone (reward 0.7, similarity 1) ranks above "login\nxxx..." (reward 0.875); 0.6 < min 0.7
        assert memory.get_success_strategies("login") == (
            "Successful strategies:\n1. Approach (reward 0.70): No output recorded...\n"
            f"2. Approach (reward 0.88): {'x' * 200}...")

    def test_recent_episodes_and_prune(self, store: vs.Store, clock: Clock) -> None:
        memory = ReflexionMemory(store, clock=clock)
        ids = []
        for i, reward in enumerate([0.1, 0.2, 0.05, 0.9, 0.15]):
            clock.now = T0 - (40 - i) * DAY
            ids.append(memory.store_episode(session_id="old", task="t", reward=reward, success=False))
        clock.now = T0
        fresh = memory.store_episode(session_id="new", task="t", reward=0.0, success=False)
        assert [e.id for e in memory.get_recent_episodes("old", limit=3)] == [ids[4], ids[3], ids[2]]
        assert [e.id for e in memory.get_recent_episodes("new")] == [fresh]
        # candidates: reward < 0.3 and older than 30 days -> ids 0, 1, 2, 4; keep the best 2 (0.2, 0.15)
        assert memory.prune_episodes(min_reward=0.3, max_age_days=30, keep_min_per_task=2) == 2
        assert ids_of(store.collection("episodes")) == sorted([ids[1], ids[3], ids[4], fresh])
        assert memory.prune_episodes() == 0  # defaults keep 5 per task

    # -- SkillLibrary ----------------------------------------------------------------------------

    def test_create_skill_row_embedding_and_unique_name(self, store: vs.Store, clock: Clock) -> None:
        skills = SkillLibrary(store, clock=clock)
        sid = skills.create_skill(name="jwt_auth", description="Generate JWT tokens", success_rate=0.9,
                                  signature={"inputs": {"user": "object"}, "outputs": {"token": "string"}},
                                  code="def f(): ...", metadata={"lang": "py"})
        bare = skills.create_skill(name="bare", success_rate=0.5)
        record = store.collection("skills").get([sid])[0]
        assert record.fields == {
            "name": "jwt_auth", "description": "Generate JWT tokens",
            "signature": {"inputs": {"user": "object"}, "outputs": {"token": "string"}}, "code": "def f(): ...",
            "success_rate": 0.9, "uses": 0, "avg_reward": 0.0, "avg_latency_ms": 0.0, "created_from_episode": None,
            "created_at": T0, "updated_at": T0, "last_used_at": None, "ts": None, "tags": None}
        assert record.metadata == {"lang": "py"}
        assert np.array_equal(record.vector, embed(
            'jwt_auth\nGenerate JWT tokens\n{"inputs":{"user":"object"},"outputs":{"token":"string"}}'))
        bare_record = store.collection("skills").get([bare])[0]
        assert bare_record.fields["signature"] == {"inputs": {}, "outputs": {}}
        assert np.array_equal(bare_record.vector, embed("bare\n"))
        with pytest.raises(DuplicateSkill):
            skills.create_skill(name="jwt_auth", success_rate=0.1)
        assert store.collection("skills").count() == 2

    def test_update_skill_stats_running_means_and_last_used(self, store: vs.Store, clock: Clock) -> None:
        skills = SkillLibrary(store, clock=clock)
        sid = skills.create_skill(name="s", success_rate=0.5, uses=2, avg_reward=0.5, avg_latency_ms=100)
        clock.now = T0 + 60
        updated = skills.update_skill_stats(sid, True, 0.8, 40)
        assert (updated.uses, updated.success_rate, updated.avg_reward, updated.avg_latency_ms) == (
            3, (0.5 * 2 + 1) / 3, (0.5 * 2 + 0.8) / 3, (100 * 2 + 40) / 3)
        assert (updated.last_used_at, updated.updated_at, updated.created_at) == (T0 + 60, T0 + 60, T0)
        assert skills.get_skill(sid) == updated
        with pytest.raises(SkillNotFound):
            skills.update_skill_stats(999, True, 1.0, 1)

    def test_search_skills_composite_score_and_prefer_recent(self, store: vs.Store, clock: Clock) -> None:
        skills = SkillLibrary(store, clock=clock)
        clock.now = T0 - 30 * DAY
        a = skills.create_skill(name="resize images", description="scale pictures", success_rate=0.9, uses=500,
                                avg_reward=0.8)
        clock.now = T0
        b = skills.create_skill(name="resize videos", description="scale clips", success_rate=0.6, uses=10,
                                avg_reward=0.5)
        skills.create_skill(name="send email", success_rate=0.3)  # below min_success_rate
        query = embed("resize images")
        found = skills.search_skills("resize images", k=5)
        assert [s.id for s in found] == [a, b]
        for skill, (rate, uses, reward) in zip(found, [(0.9, 500, 0.8), (0.6, 10, 0.5)], strict=True):
            sim = cosine(query, store.collection("skills").get([skill.id])[0].vector)
            assert abs(num(skill.similarity) - sim) <= TOL
            assert abs(num(skill.score) - (sim * 0.4 + rate * 0.3 + min(uses / 1000, 1) * 0.1 + reward * 0.2)) <= TOL
        assert [s.id for s in skills.retrieve_skills("resize images", k=1)] == [a]
        assert len(skills.search_skills("resize images", min_success_rate=0.0)) == 3
        recent = {s.id: s for s in skills.search_skills("resize images", prefer_recent=True)}
        plain = {s.id: s for s in found}
        assert abs(num(recent[a].score) - (num(plain[a].score) + 0.1 * 0.5 ** (30 / 7))) <= TOL
        assert abs(num(recent[b].score) - (num(plain[b].score) + 0.1)) <= TOL

    def test_concurrent_writers_keep_names_unique_and_counts_exact(self, store: vs.Store, clock: Clock) -> None:
        """Read-modify-write runs in serializable transactions (retried on conflict): concurrent
        creates of one name leave one skill, concurrent uses are all counted."""
        skills = SkillLibrary(store, clock=clock)
        sid = skills.create_skill(name="shared", success_rate=0.0)
        outcomes: list[str] = []
        failures: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                for _ in range(5):
                    skills.update_skill_stats(sid, True, 1.0, 10)
                try:
                    skills.create_skill(name="contested", success_rate=0.5)
                    outcomes.append("created")
                except DuplicateSkill:
                    outcomes.append("duplicate")
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures, failures
        assert sorted(outcomes) == ["created", "duplicate", "duplicate"]
        final = skills.get_skill(sid)
        assert final is not None and (final.uses, final.success_rate) == (15, 1.0)
        assert store.collection("skills").count({"name": "contested"}) == 1

    def test_link_skills_and_skill_plan(self, store: vs.Store, clock: Clock) -> None:
        skills = SkillLibrary(store, clock=clock)
        root = skills.create_skill(name="deploy", success_rate=0.9)
        clock.now = T0 + 1
        kids = {n: skills.create_skill(name=n, success_rate=r) for n, r in
                [("build", 0.5), ("test", 0.7), ("canary", 0.4), ("bluegreen", 0.8), ("fast deploy", 0.6),
                 ("safe deploy", 0.6), ("package", 0.5)]}
        clock.now = T0 + 2
        newer = skills.create_skill(name="safer deploy", success_rate=0.6)
        link = skills.link_skills(parent_skill_id=root, child_skill_id=kids["build"], relationship="prerequisite",
                                  weight=0.5, metadata={"why": "compile first"})
        skills.link_skills(parent_skill_id=root, child_skill_id=kids["test"], relationship="prerequisite", weight=0.9)
        again = skills.link_skills(parent_skill_id=root, child_skill_id=kids["build"], relationship="prerequisite",
                                   weight=1.0, metadata={"ignored": True})
        assert again == link  # same (parent, child, relationship): only the weight changes
        for child in ("canary", "bluegreen"):
            skills.link_skills(parent_skill_id=root, child_skill_id=kids[child], relationship="alternative")
        skills.link_skills(parent_skill_id=root, child_skill_id=kids["fast deploy"], relationship="refinement",
                           weight=0.2)
        skills.link_skills(parent_skill_id=root, child_skill_id=kids["safe deploy"], relationship="refinement")
        skills.link_skills(parent_skill_id=root, child_skill_id=newer, relationship="refinement")
        skills.link_skills(parent_skill_id=root, child_skill_id=kids["package"], relationship="composition")
        stored = store.collection("skill_links").get([link])[0]
        assert stored.vector is None
        assert stored.fields == {"parent_skill_id": root, "child_skill_id": kids["build"],
                                 "relationship": "prerequisite", "weight": 1.0}
        assert stored.metadata == {"why": "compile first"}
        plan = skills.get_skill_plan(root)
        assert plan.skill.id == root
        assert [s.name for s in plan.prerequisites] == ["build", "test"]
        assert [s.name for s in plan.alternatives] == ["bluegreen", "canary"]
        assert [s.name for s in plan.refinements] == ["safer deploy", "safe deploy", "fast deploy"]
        assert [s.name for s in plan.compositions] == ["package"]
        assert [link.relationship for link in skills.get_skill_links(root)].count("refinement") == 3
        with pytest.raises(UnknownRelationship):
            skills.link_skills(parent_skill_id=root, child_skill_id=newer, relationship="sibling")
        with pytest.raises(SkillNotFound):
            skills.link_skills(parent_skill_id=root, child_skill_id=12345, relationship="alternative")
        with pytest.raises(SkillNotFound, match="Skill 777 not found"):
            skills.get_skill_plan(777)
        assert store.collection("skill_links").count() == 8

    def test_consolidate_episodes_into_skills(self, store: vs.Store, clock: Clock) -> None:
        memory = ReflexionMemory(store, clock=clock)
        skills = SkillLibrary(store, clock=clock)
        outputs = ["refactor parser using visitor pattern", "refactor lexer using visitor pattern",
                   "refactor emitter using visitor tables"]
        for i, (output, reward) in enumerate(zip(outputs, [0.8, 0.9, 1.0], strict=True)):
            memory.store_episode(session_id="s", task="refactor compiler", reward=reward, success=True, output=output,
                                 critique="small steps helped", latency_ms=100 * (i + 1), metadata={"lang": "rust"})
        memory.store_episode(session_id="s", task="refactor compiler", reward=0.2, success=False)  # below min_reward
        for _ in range(3):
            memory.store_episode(session_id="s", task="existing task", reward=0.75, success=True)
        memory.store_episode(session_id="s", task="rare task", reward=1.0, success=True)  # too few attempts
        existing = skills.create_skill(name="existing task", success_rate=0.5, uses=1, avg_reward=0.5,
                                       avg_latency_ms=10)
        clock.now = T0 + 10
        result = skills.consolidate_episodes_into_skills()
        assert (result.created, result.updated) == (1, 1)
        assert [p.task for p in result.patterns] == ["existing task", "refactor compiler"]
        refactor = result.patterns[1]
        assert refactor.common_patterns == ["Common techniques: refactor, using, visitor, pattern",
                                            "Consistent lang: rust"]
        assert refactor.success_indicators == ["small", "steps", "helped", "Strong learning curve (+19% improvement)"]
        assert refactor.avg_reward == pytest.approx(0.9, abs=1e-12)
        created = next(s for s in store.collection("skills").scan() if s.fields["name"] == "refactor compiler")
        f = created.fields
        assert f["description"] == ("Skill learned from 3 successful episodes. Common patterns: Common techniques: "
                                    "refactor, using, visitor, pattern, Consistent lang: rust")
        assert f["signature"] == {"inputs": {"task": "string"}, "outputs": {"result": "any"}}
        assert (f["success_rate"], f["uses"], f["avg_latency_ms"], f["created_from_episode"]) == (1.0, 3, 200.0, 3)
        assert created.metadata["sourceEpisodes"] == [1, 2, 3] and created.metadata["autoGenerated"] is True
        assert created.metadata["patternConfidence"] == pytest.approx(0.3)
        assert created.metadata["consolidatedAt"] == (T0 + 10) * 1000
        updated = skills.get_skill(existing)
        assert updated is not None
        assert (updated.uses, updated.success_rate, updated.avg_reward, updated.avg_latency_ms) == (
            2, 0.75, (0.5 + 0.75) / 2, 5.0)

    def test_prune_skills_removes_their_links(self, store: vs.Store, clock: Clock) -> None:
        skills = SkillLibrary(store, clock=clock)
        clock.now = T0 - 90 * DAY
        weak = skills.create_skill(name="weak", success_rate=0.1, uses=1)
        strong_old = skills.create_skill(name="strong", success_rate=0.9, uses=1)
        used_old = skills.create_skill(name="used", success_rate=0.1, uses=10)
        clock.now = T0
        weak_new = skills.create_skill(name="weak new", success_rate=0.1, uses=1)
        skills.link_skills(parent_skill_id=strong_old, child_skill_id=weak, relationship="prerequisite")
        skills.link_skills(parent_skill_id=strong_old, child_skill_id=used_old, relationship="alternative")
        assert skills.prune_skills() == 1
        assert ids_of(store.collection("skills")) == [strong_old, used_old, weak_new]
        assert [r.fields["child_skill_id"] for r in store.collection("skill_links").scan()] == [used_old]

    # -- ReasoningBank -------------------------------------------------------------------------

    def test_reasoning_bank_store_search_filters(self, store: vs.Store, clock: Clock) -> None:
        bank = ReasoningBank(store, clock=clock)
        a = bank.store_pattern(task_type="code_review", approach="check error handling first", success_rate=0.9,
                               tags=["review", "errors"], metadata={"source": "manual"})
        b = bank.store_pattern(task_type="code_review", approach="read the tests before the code", success_rate=0.6)
        c = bank.store_pattern(task_type="data_analysis", approach="plot distributions first", success_rate=0.85,
                               uses=4, avg_reward=0.5, tags=["plots"])
        row = store.collection("reasoning_patterns").get([a])[0]
        assert row.fields == {"ts": T0, "task_type": "code_review", "approach": "check error handling first",
                              "success_rate": 0.9, "uses": 0, "avg_reward": 0.0, "tags": ["review", "errors"]}
        assert np.array_equal(row.vector, embed("code_review: check error handling first"))
        query = embed("review code error handling")
        found = bank.search_patterns("review code error handling", k=10, threshold=-1)
        assert [p.id for p in found] == sorted([a, b, c], key=lambda i: -cosine(
            query, store.collection("reasoning_patterns").get([i])[0].vector))
        assert all(abs(num(p.similarity) - cosine(query, store.collection("reasoning_patterns").get([p.id])[0].vector))
                   <= TOL for p in found)
        assert found[0].tags and found[0].created_at == T0
        assert {p.id for p in bank.search_patterns("review", task_type="code_review", threshold=-1)} == {a, b}
        assert {p.id for p in bank.search_patterns("review", min_success_rate=0.8, threshold=-1)} == {a, c}
        assert {p.id for p in bank.search_patterns("review", tags=["plots", "nothing"], threshold=-1)} == {c}
        by_vector = bank.search_patterns(embedding=row.vector.tolist(), k=1)
        assert by_vector[0].id == a and abs(num(by_vector[0].similarity) - 1.0) <= TOL
        high = bank.search_patterns(embedding=row.vector.tolist(), threshold=0.999)
        assert [p.id for p in high] == [a]
        b_pattern = bank.get_pattern(b)
        assert b_pattern is not None and b_pattern.tags == [] and b_pattern.metadata == {}

    def test_reasoning_bank_stats_updates_and_delete(self, store: vs.Store, clock: Clock) -> None:
        bank = ReasoningBank(store, clock=clock)
        clock.now = T0 - 8 * DAY
        old = bank.store_pattern(task_type="b", approach="x", success_rate=0.5, uses=2)
        clock.now = T0
        for rate, uses in [(0.8, 4), (0.9, 0)]:
            bank.store_pattern(task_type="a", approach="y", success_rate=rate, uses=uses)
        stats = bank.get_pattern_stats()
        assert (stats.total_patterns, stats.avg_success_rate, stats.avg_uses, stats.recent_patterns,
                stats.high_performing_patterns) == (3, (0.5 + 0.8 + 0.9) / 3, 2.0, 2, 2)
        assert [(t.task_type, t.count) for t in stats.top_task_types] == [("a", 2), ("b", 1)]
        updated = bank.update_pattern_stats(old, False, 0.25)
        assert (updated.uses, updated.success_rate, updated.avg_reward) == (3, 1.0 / 3, 0.25 / 3)
        recorded = bank.record_outcome(old, True)
        assert (recorded.uses, recorded.success_rate, recorded.avg_reward) == (
            4, (1.0 / 3 * 3 + 1) / 4, (0.25 / 3 * 3 + 1.0) / 4)
        assert bank.get_pattern(old) == recorded
        assert bank.delete_pattern(old) is True
        assert bank.delete_pattern(old) is False
        assert bank.get_pattern(old) is None
        with pytest.raises(PatternNotFound):
            bank.record_outcome(old, True)
        empty = ReasoningBank(store, clock=clock)
        for pid in ids_of(store.collection("reasoning_patterns")):
            empty.delete_pattern(pid)
        zero = empty.get_pattern_stats()
        assert (zero.total_patterns, zero.avg_success_rate, zero.avg_uses, zero.top_task_types) == (0, 0.0, 0.0, [])

    # -- NightlyLearner ------------------------------------------------------------------------

    def _learning_data(self, store: vs.Store, clock: Clock) -> dict[str, int]:
        memory = ReflexionMemory(store, clock=clock)
        clock.now = T0 - 2 * DAY  # outside the 24 h window
        for _ in range(3):
            memory.store_episode(session_id="s", task="old task", reward=1.0, success=True)
        clock.now = T0 - 3600
        for reward, ok in [(0.9, True), (0.7, True), (0.2, False)]:  # 3 attempts, 67 % success
            memory.store_episode(session_id="s", task="summarize docs", reward=reward, success=ok,
                                 output=f"extractive summary {reward}", latency_ms=50)
        for reward, ok in [(0.9, True), (0.1, False), (0.1, False)]:  # 33 % success
            memory.store_episode(session_id="s", task="flaky task", reward=reward, success=ok)
        for _ in range(2):  # too few attempts
            memory.store_episode(session_id="s", task="rare", reward=1.0, success=True)
        edges = store.collection("causal_edges")
        base = {"from_memory_id": 1, "from_memory_type": "episode", "to_memory_id": 2, "to_memory_type": "episode",
                "edge_similarity": 0.5, "uplift": 0.1}
        ids = edges.insert([
            {"vector": None, "fields": {**base, "confidence": 0.2, "created_at": T0 - 100 * DAY}},  # pruned
            {"vector": None, "fields": {**base, "confidence": 0.9, "created_at": T0 - 100 * DAY}},  # confident
            {"vector": None, "fields": {**base, "confidence": 0.2, "created_at": T0 - 10 * DAY}},  # recent
            {"vector": None, "fields": {**base, "confidence": 0.1, "ts": T0 - 200 * DAY}},  # MCP variant: pruned
            {"vector": None, "fields": {**base, "confidence": None, "created_at": T0 - 100 * DAY}},  # NULL: kept
        ])
        clock.now = T0
        return {"pruned_a": int(ids[0]), "pruned_b": int(ids[3])}

    def test_nightly_learner_learns_prunes_and_reports(self, store: vs.Store, clock: Clock) -> None:
        marks = self._learning_data(store, clock)
        learner = NightlyLearner(store, clock=clock)
        report = learner.run()
        assert (report.dry_run, report.episodes_scanned, report.tasks_seen, report.patterns_created,
                report.patterns_updated, report.skills_created, report.skills_updated, report.edges_pruned) == (
            False, 8, 3, 1, 0, 1, 0, 2)
        assert report.pruned_edge_ids == sorted([marks["pruned_a"], marks["pruned_b"]])
        assert report.window_start == T0 - DAY and report.started_at == T0
        [task] = report.tasks
        assert (task.task, task.attempts, task.success_rate, task.new_episodes) == ("summarize docs", 3, 2 / 3, 3)
        assert task.avg_reward == pytest.approx(0.6, abs=1e-12)
        pattern = ReasoningBank(store, clock=clock).get_pattern(task.pattern_id)
        assert pattern is not None
        assert (pattern.task_type, pattern.approach, pattern.uses, pattern.success_rate) == (
            "summarize docs", "extractive summary 0.9", 3, 2 / 3)
        assert pattern.metadata["source"] == "nightly_learner" and pattern.metadata["last_episode_id"] == 6
        skill = SkillLibrary(store, clock=clock).get_skill(task.skill_id or 0)
        assert skill is not None and skill.name == "summarize docs" and skill.uses == 3
        assert (skill.created_from_episode, skill.avg_latency_ms, skill.metadata["pattern_id"]) == (6, 50.0,
                                                                                                   pattern.id)
        assert "1 created" in report.summary()
        # a second run over the same episodes changes nothing
        before = snapshot(store)
        again = learner.run()
        assert (again.patterns_created, again.patterns_updated, again.skills_created, again.skills_updated,
                again.edges_pruned) == (0, 0, 0, 0, 0)
        assert snapshot(store) == before
        # new episodes are folded into the pattern and the skill
        clock.now = T0 + 60
        ReflexionMemory(store, clock=clock).store_episode(session_id="s", task="summarize docs", reward=0.5,
                                                          success=True)
        third = learner.run()
        assert (third.patterns_created, third.patterns_updated, third.skills_updated) == (0, 1, 1)
        pattern = ReasoningBank(store, clock=clock).get_pattern(task.pattern_id)
        assert pattern is not None and (pattern.uses, pattern.success_rate) == (4, (2 / 3 * 3 + 1) / 4)

    def test_nightly_learner_failure_midway_leaves_no_partial_write(self, store: vs.Store, clock: Clock) -> None:
        """A failure after the patterns and skills were written rolls everything back; the next run
        does the whole job."""
        self._learning_data(store, clock)
        before = snapshot(store)

        def crash(step: str) -> None:
            if step == "consolidate":
                raise RuntimeError("injected failure")

        with pytest.raises(RuntimeError, match="injected failure"):
            NightlyLearner(store, clock=clock, progress=crash).run()
        assert snapshot(store) == before
        steps: list[str] = []
        report = NightlyLearner(store, clock=clock, progress=steps.append).run()
        assert steps == ["discover", "consolidate", "prune"]
        assert (report.patterns_created, report.skills_created, report.edges_pruned) == (1, 1, 2)
        assert snapshot(store) != before

    def test_nightly_learner_dry_run_rolls_back(self, store: vs.Store, clock: Clock) -> None:
        self._learning_data(store, clock)
        before = snapshot(store)
        dry = NightlyLearner(store, clock=clock).run(dry_run=True)
        assert dry.dry_run and (dry.patterns_created, dry.skills_created, dry.edges_pruned) == (1, 1, 2)
        assert snapshot(store) == before
        real = NightlyLearner(store, clock=clock).run()
        assert (real.patterns_created, real.skills_created, real.edges_pruned) == (1, 1, 2)
        assert [t.task for t in real.tasks] == [t.task for t in dry.tasks]

    def test_learn_command(self, store: vs.Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        """``vectorstore learn``: one summary line, exit code 0; 2 on bad configuration."""
        from vectorstore.cli import main

        assert main(["learn", "--url", store_url, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert out.count("\n") == 1 and out.startswith("learn dry run (rolled back): ")
        assert main(["learn", "--url", "nosuchscheme://x"]) == 2

    # -- persistence, migrated data, async twins, bad input ------------------------------------

    def test_memory_survives_reopen(self, store: vs.Store, store_url: str, clock: Clock) -> None:
        memory = ReflexionMemory(store, clock=clock)
        eid = memory.store_episode(session_id="s", task="persist me", reward=0.5, success=True, tags=["t"])
        skills = SkillLibrary(store, clock=clock)
        parent = skills.create_skill(name="p", success_rate=0.7)
        child = skills.create_skill(name="c", success_rate=0.7)
        skills.link_skills(parent_skill_id=parent, child_skill_id=child, relationship="composition")
        pid = ReasoningBank(store, clock=clock).store_pattern(task_type="x", approach="y", success_rate=0.5)
        before = snapshot(store)
        episode = memory.get_episode(eid)
        with reopened(store, store_url) as again:
            if again is None:
                return
            assert snapshot(again) == before
            memory_again = ReflexionMemory(again, clock=clock)
            assert memory_again.get_episode(eid) == episode
            assert memory_again.retrieve_relevant("persist me", k=1)[0].id == eid
            assert [s.name for s in SkillLibrary(again, clock=clock).get_skill_plan(parent).compositions] == ["c"]
            assert ReasoningBank(again, clock=clock).get_pattern(pid) is not None
            # ids continue after the existing ones
            assert memory_again.store_episode(session_id="s", task="next", reward=1, success=True) == eid + 1

    def test_migrated_rows_with_nulls_read_back_exactly(self, store: vs.Store, clock: Clock) -> None:
        """Rows written straight into the collections (as a migration does), with NULL wherever
        AgentDB allows it and some without embeddings, read back through the classes as written."""
        memory = ReflexionMemory(store, clock=clock)
        episodes = store.collection("episodes")
        episodes.upsert([
            {"id": 7, "vector": embed("migrated"), "fields": {"ts": T0 - 5, "session_id": "m", "task": "migrated",
                                                              "reward": 0.30000000000000004, "success": 1,
                                                              "latency_ms": 12.75},
             "metadata": {"k": [1, 2]}},
            {"id": 9, "vector": None, "fields": {"session_id": "m", "task": "migrated", "reward": None,
                                                 "success": None}},
        ])
        got = memory.get_episode(7)
        assert got is not None
        assert (got.ts, got.reward, got.success, got.latency_ms, got.tokens_used, got.input, got.tags,
                got.metadata, got.created_at) == (T0 - 5, 0.30000000000000004, True, 12.75, None, None, None,
                                                  {"k": [1, 2]}, None)
        bare = memory.get_episode(9)
        assert bare is not None and (bare.ts, bare.reward, bare.success) == (None, None, None)
        assert [e.id for e in memory.retrieve_relevant("migrated", k=5)] == [7]  # no embedding: never a hit
        assert [e.id for e in memory.get_recent_episodes("m")] == [7, 9]
        assert memory.get_task_stats("migrated").total_attempts == 2
        assert memory.store_episode(session_id="m", task="after", reward=1, success=True) == 10
        skills_col = store.collection("skills")
        skills_col.upsert([{"id": 3, "vector": None, "fields": {"name": "mcp skill", "success_rate": 0.5, "ts": T0,
                                                                "tags": ["a"], "avg_latency_ms": 12.5}}])
        skill = SkillLibrary(store, clock=clock).get_skill(3)
        assert skill is not None
        assert (skill.signature, skill.uses, skill.avg_latency_ms, skill.tags, skill.ts, skill.created_at) == (
            None, None, 12.5, ["a"], T0, None)
        patterns = store.collection("reasoning_patterns")
        patterns.upsert([{"id": 4, "vector": None, "fields": {"task_type": "t", "approach": "a", "success_rate": 0.5}}])
        pattern = ReasoningBank(store, clock=clock).get_pattern(4)
        assert pattern is not None and (pattern.uses, pattern.avg_reward, pattern.tags, pattern.created_at) == (
            None, None, [], None)

    def test_agent_memory_async_twins(self, store: vs.Store, clock: Clock) -> None:
        """The async classes over the async store give the same results as the sync ones."""
        async def flow() -> tuple[Any, ...]:
            astore = store.async_store
            memory = AsyncReflexionMemory(astore, clock=clock)
            eid = await memory.store_episode(session_id="a", task="async task", reward=0.5, success=True)
            hits = await memory.retrieve_relevant("async task", k=1)
            skills = AsyncSkillLibrary(astore, clock=clock)
            sid = await skills.create_skill(name="async skill", success_rate=0.8)
            bank = AsyncReasoningBank(astore, clock=clock)
            pid = await bank.store_pattern(task_type="async", approach="await it", success_rate=0.9)
            return eid, [h.id for h in hits], sid, (await bank.get_pattern(pid)) is not None

        assert store.run(flow()) == (1, [1], 1, True)
        with pytest.raises(TypeError):
            AsyncReflexionMemory(store)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ReflexionMemory(store.async_store)  # type: ignore[arg-type]

    def test_bad_input_is_refused_and_writes_nothing(self, store: vs.Store, clock: Clock) -> None:
        memory = ReflexionMemory(store, clock=clock)
        skills = SkillLibrary(store, clock=clock)
        bank = ReasoningBank(store, clock=clock)
        sid = skills.create_skill(name="s", success_rate=0.5)
        before = snapshot(store)
        ok: dict[str, Any] = {"session_id": "s", "task": "t", "reward": 1.0, "success": True}
        bad_calls: list[tuple[Any, type[Exception]]] = [
            (lambda: memory.store_episode(**{**ok, "task": ""}), InvalidMemoryInput),
            (lambda: memory.store_episode(**{**ok, "reward": "high"}), InvalidMemoryInput),
            (lambda: memory.store_episode(**{**ok, "reward": math.nan}), InvalidMemoryInput),
            (lambda: memory.store_episode(**{**ok, "success": "yes"}), InvalidMemoryInput),
            (lambda: memory.store_episode(**{**ok, "tags": "a,b"}), InvalidMemoryInput),
            (lambda: memory.store_episode(**{**ok, "embedding": [0.1] * 5}), vs.DimensionMismatch),
            (lambda: memory.retrieve_relevant("t", k=0), InvalidMemoryInput),
            (lambda: memory.retrieve_relevant("t", k=-3), InvalidMemoryInput),
            (lambda: memory.retrieve_relevant("", k=3), InvalidMemoryInput),
            (lambda: memory.retrieve_relevant("t", only_failures=True, only_successes=True), InvalidMemoryInput),
            (lambda: memory.retrieve_relevant("t", time_window_days=-1), InvalidMemoryInput),
            (lambda: memory.get_task_stats(""), InvalidMemoryInput),
            (lambda: memory.prune_episodes(keep_min_per_task=-1), InvalidMemoryInput),
            (lambda: skills.create_skill(name="", success_rate=0.5), InvalidMemoryInput),
            (lambda: skills.create_skill(name="x", success_rate="good"),  # type: ignore[arg-type]
             InvalidMemoryInput),
            (lambda: skills.create_skill(name="x", success_rate=0.5, embedding=[1.0] * 3), vs.DimensionMismatch),
            (lambda: skills.link_skills(parent_skill_id=sid, child_skill_id=sid, relationship="friend"),
             UnknownRelationship),
            (lambda: skills.link_skills(parent_skill_id=sid, child_skill_id=404, relationship="alternative"),
             SkillNotFound),
            (lambda: skills.update_skill_stats(sid, True, "1", 5),  # type: ignore[arg-type]
             InvalidMemoryInput),
            (lambda: skills.search_skills("t", k=0), InvalidMemoryInput),
            (lambda: bank.store_pattern(task_type="", approach="a", success_rate=0.5), InvalidMemoryInput),
            (lambda: bank.search_patterns(embedding=[0.5] * 7), vs.DimensionMismatch),
            (lambda: bank.search_patterns(), InvalidMemoryInput),
            (lambda: bank.search_patterns("t", k=0), InvalidMemoryInput),
            (lambda: bank.update_pattern_stats(1, True, None),  # type: ignore[arg-type]
             InvalidMemoryInput),
        ]
        for call, error in bad_calls:
            with pytest.raises(error) as caught:
                call()
            assert isinstance(caught.value, vs.InvalidInput)
        assert snapshot(store) == before
