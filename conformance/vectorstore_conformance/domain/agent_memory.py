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
from vectorstore_conformance.guard import CapabilityNotDeclared
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
    test checks the clear NotSupported refusal (the capability's other side), then reports itself
    skipped, naming the capability."""

    def guard(test: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(test)
        def run(self: Any, store: vs.Store, *args: Any, **kwargs: Any) -> None:
            if not store.capabilities.transactions:
                with pytest.raises(vs.NotSupported, match="transactions"):
                    ReflexionMemory(store)
                raise CapabilityNotDeclared("the backend does not declare the 'transactions' capability "
                                            "(checked: ReflexionMemory(store) raises NotSupported)")
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
        """The first ReflexionMemory on an empty store creates exactly the five collections named like
        AgentDB's tables (causal_edges, episodes, reasoning_patterns, skill_links, skills), each with int
        ids, 384-d cosine vectors (the default) and exactly the fields of vectorstore.memory.schema's
        COLLECTIONS with their types (episodes' twelve columns; skills.avg_latency_ms float,
        skills.signature json, episodes.tags text[]); a SkillLibrary opened afterwards reuses them (still
        five collections).

        Troubleshooting: AGENTDB_VECTOR_DIM must not be set where the suite runs (it replaces the 384
        default). list_collections() must return each spec as it was created: id_type int, the dim, metric
        cosine and every field with its declared type (a float field read back as int, json as text or
        text[] as json fails here, and so does an extra internal column listed as a field), and nothing but
        the collections (no catalog, sequence or index tables). An IncompatibleCollection (a ConfigError)
        from SkillLibrary names the field or dimension that get_collection() reports differently from what
        was created; a count other than five after it means list_collections() lists a collection twice, or
        get_collection() missed an existing collection and create_collection() made it again instead of
        raising CollectionExists."""
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
        """dim= sets the dimension of new collections, ahead of AGENTDB_VECTOR_DIM; without dim=,
        AGENTDB_VECTOR_DIM does. With AGENTDB_VECTOR_DIM=32 set, ReflexionMemory(dim=16) on an empty store
        creates all five collections 16-d and a stored episode's vector reads back with shape (16,); a
        ReflexionMemory without dim= over that store (so 32-d) is refused with ConfigError
        (IncompatibleCollection: the existing collections are 16-d). After the five collections are
        dropped, ReflexionMemory without dim= creates them 32-d (an episode's vector has shape (32,)), and a
        ReflexionMemory with dim=64 over that store is refused with ConfigError.

        Troubleshooting: the backend must create the collection with the dim it is given and return that dim
        from get_collection() (not a default, or the dimension of another collection), and get() must return the
        stored float32 vector at its full length. No error for the other dimension means get_collection()
        reports the wrong dim for the existing collection (the memory compares it with the dimension it wants);
        another error than ConfigError means get_collection() failed for a collection that exists. A ConfigError
        from the ReflexionMemory after the drop, 16-d collections then, or an error storing or reading the 32-d
        episode (a reshape to 16) mean drop_collection() left the old definition behind, in the catalog or in a
        cache keyed by the collection's name (row codecs, prepared statements, specs): forget it on drop, or key
        it by the whole definition, dim included. A ConfigError from the first ReflexionMemory comes from the
        embedder: VECTORSTORE_EMBEDDER names one that cannot make 16- or 32-d vectors (leave it unset: hashing)."""
        monkeypatch.setenv("AGENTDB_VECTOR_DIM", "32")
        memory = ReflexionMemory(store, dim=16, clock=clock)  # dim= wins over AGENTDB_VECTOR_DIM
        assert sorted(s.name for s in store.list_collections()) == sorted(COLLECTIONS)
        assert {name: store.collection(name).spec.dim for name in COLLECTIONS} == dict.fromkeys(COLLECTIONS, 16)
        eid = memory.store_episode(session_id="s", task="t", reward=1, success=True)
        assert store.collection("episodes").get([eid])[0].vector.shape == (16,)
        with pytest.raises(vs.ConfigError):  # without dim=: 32-d from the variable, the collections are 16-d
            ReflexionMemory(store, clock=clock)
        for name in COLLECTIONS:
            assert store.drop_collection(name) is True
        memory = ReflexionMemory(store, clock=clock)  # no dim=: AGENTDB_VECTOR_DIM
        assert {name: store.collection(name).spec.dim for name in COLLECTIONS} == dict.fromkeys(COLLECTIONS, 32)
        eid = memory.store_episode(session_id="s", task="t", reward=1, success=True)
        assert store.collection("episodes").get([eid])[0].vector.shape == (32,)
        with pytest.raises(vs.ConfigError):  # an existing collection of another dimension is refused
            ReflexionMemory(store, dim=64, clock=clock)

    # -- ReflexionMemory -------------------------------------------------------------------------

    def test_store_episode_writes_the_agentdb_row(self, store: vs.Store, clock: Clock) -> None:
        """Fields as AgentDB writes them: ts/created_at now, success 0/1, '' and 0 as NULL; the
        vector is the embedding of task\\ncritique\\noutput; ids are allocated 1, then 2. In detail: the
        first episode's fields, tags (a list) and metadata read back exactly as given; the second one's
        empty input, output and critique and zero latency_ms and tokens_used are None (its reward 0 stays
        0.0) and its vector is the embedding of the task alone; get_episode(1) has success True, the tags
        and no similarity.

        Troubleshooting: the first ids of a new int-id collection must be 1 and 2 (its own sequence,
        starting after 0). get() must return every declared field, a NULL one as None with its key present
        (not left out), ints as stored, text[] as a list of str, metadata parsed from JSON, and the vector
        bit-exact as float32. A vector mismatch with the right fields means the default embedder is not
        'hashing': unset VECTORSTORE_EMBEDDER where the suite runs. When porting the memory, embed
        task[\\ncritique][\\noutput] (never the input) and store '' and 0 as NULL, as AgentDB's
        ``x || null`` does."""
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
        """retrieve_relevant returns up to k episodes by descending similarity, each similarity the cosine
        of the query's and the episode's embeddings (to 1e-6): the two episodes with the query's exact text
        (similarity 1) come first, the one with the higher reward (0.95) before the other (0.9), also with
        k=1. The 0.95 episode was stored after the 0.9 one, so it has the higher id: a tie broken by id
        (or by the backend's hit order) instead of by reward puts the 0.9 episode first and fails here.
        min_reward keeps reward >= 0.8 (0.8 included), only_failures / only_successes filter on success,
        time_window_days=7 drops the 10-day-old episode and 0 means no window, and current_state makes the
        query text task\\ncurrent_state.

        Troubleshooting: search() must return hits whose similarity is the exact cosine of the stored
        float32 vectors (1 - cosine distance, not from a quantized or approximate distance), carrying the
        records' fields (the tie-break reads reward from them); it must apply where= before choosing the k
        nearest and give identical vectors identical similarities (the memory breaks exact ties itself and
        searches deeper while the k-th hit is tied). Wrong filter results: reward is a float field compared
        with $gte, success an int field holding 0 / 1, and the window is ts > now - days*86400 on the int
        ts. When porting, order equal similarities by reward descending, NULL last, then ascending id
        (vectorstore.memory.reflexion.by_reward)."""
        memory = ReflexionMemory(store, clock=clock)
        clock.now = T0 - 10 * DAY
        old = memory.store_episode(session_id="s", task="deploy the web service", reward=0.9, success=True)
        clock.now = T0
        texts = {"deploy the web service to staging": (0.4, False), "deploy the web service": (0.95, True),
                 "write unit tests for parser": (0.8, True), "deploy database migrations": (0.1, False)}
        ids = {text: memory.store_episode(session_id="s", task=text, reward=r, success=ok)
               for text, (r, ok) in texts.items()}
        twin = ids["deploy the web service"]
        assert twin > old  # so the reward order (twin first) is the reverse of the id order
        query = embed("deploy the web service")
        ranked = memory.retrieve_relevant("deploy the web service", k=10)
        # identical text, identical similarity 1.0: the higher reward (twin: 0.95) comes first, despite its higher id
        assert [e.id for e in ranked[:2]] == [twin, old]
        assert [e.reward for e in ranked[:2]] == [0.95, 0.9]
        assert all(abs(num(e.similarity) - cosine(query, embed(e.task))) <= TOL for e in ranked)
        sims = [num(e.similarity) for e in ranked]
        assert sims == sorted(sims, reverse=True) and len(ranked) == 5
        assert [e.id for e in memory.retrieve_relevant("deploy the web service", k=1)] == [twin]
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
        """AgentDB's formulas on a known dataset (exact values): for four episodes of task 't' (and one of
        another task) total_attempts 4, success_rate 0.5 (the share with success 1), avg_reward 0.625,
        avg_latency 200.0 (the episode without latency_ms left out of the mean) and improvement_trend
        (0.875 - 0.375) / 0.375 (mean reward of the last 7 days against the mean before); with
        time_window_days=5 only the two recent episodes count and the trend is 0 (no older rewards); a
        task never seen gives 0 attempts and 0.0 everywhere.

        Troubleshooting: the memory scans the episodes with where={'task': ...} (and ts > now - window):
        the filter must be exact, case-sensitive text equality, so the other task's episode stays out. A
        latency_ms stored as NULL must read back as None, not 0.0 (an avg_latency of 150.0 means it came
        back as 0), and ts as the int stored. When porting, means ignore NULLs, an empty set gives 0, and
        the trend is 0 when either mean is missing or 0."""
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
        """The exact texts: with no episodes 'No prior failures found for this task.' and 'No successful
        strategies found for this task.'; get_critique_summary numbers the critiques of the 3 most similar
        failures, leaving out one without a critique and writing reward 0.125 as '0.13';
        get_success_strategies lists the 3 most similar successes with reward >= 0.7 (the 0.6 one left
        out), most similar first, each output cut to 200 characters or 'No output recorded', every line
        ending in '...'.

        Troubleshooting: the texts are built by vectorstore.memory from retrieve_relevant's results, so
        fix test_retrieve_relevant_ranks_filters_and_breaks_ties_by_reward first; the backend's part is the
        success (0 / 1) and reward ($gte 0.7) filters and the similarity order. When porting, format
        rewards as JavaScript's toFixed(2) does (the exact binary value, halves away from zero:
        vectorstore.memory._base.js_fixed), not with Python's format(x, '.2f') or round(), which give
        '0.12' for 0.125; cut outputs by code points."""
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
        """get_recent_episodes returns only the session's episodes, newest ts first, at most limit of them.
        prune_episodes(min_reward=0.3, max_age_days=30, keep_min_per_task=2) takes as candidates the
        episodes with reward < 0.3 and ts more than 30 days ago (four of the old session's five), keeps the
        2 best of them by reward, deletes the other 2 and returns 2; the 0.9 episode and the recent one
        stay, and a second prune with the defaults (keep 5 per task) deletes nothing.

        Troubleshooting: scan(where={'session_id': ...}) must return only that session's records. The prune
        reads its candidates with reward {'$lt': 0.3} AND ts {'$lt': cutoff} (a float and an int field) and
        deletes them by id inside a serializable transaction: the delete must run on the transaction's
        connection and return how many records it removed, not how many ids it was given. When porting,
        rank the candidates per task by reward descending, then ascending id, and delete those ranked
        beyond keep_min_per_task."""
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

    def test_recent_episodes_sharing_a_ts_come_back_in_agentdb_order(self, store: vs.Store, clock: Clock) -> None:
        """Episodes of one session stored in the same second come back as AgentDB returns them:
        newest ``ts`` first, and among equal ``ts`` in ascending id (AgentDB's ``ORDER BY ts DESC``
        reads the rows through its ``session_id`` index, in id order, and SQLite's sort keeps that
        order among ties), also when ``limit`` cuts through a group of equal ``ts``.

        Troubleshooting: if the ids of one second come back highest first, the implementation
        breaks ``ts`` ties by descending id; sort by (``ts`` descending with NULL last, id
        ascending) over all of the session's episodes before applying ``limit``. If the order
        changes from run to run, or differs between backends, the backend's scan or search does
        not return a deterministic order: do not rely on it, sort by those two keys explicitly."""
        memory = ReflexionMemory(store, clock=clock)
        ids: dict[str, list[int]] = {"s1": [], "s2": []}
        for second, sessions in [(T0, ["s1", "s2", "s1", "s1", "s2", "s1"]), (T0 + 1, ["s2", "s1", "s1", "s2"])]:
            clock.now = second
            for i, session in enumerate(sessions):
                ids[session].append(memory.store_episode(session_id=session, task=f"t{i % 2}", reward=0.5,
                                                         success=True))
        assert all(stored == sorted(set(stored)) for stored in ids.values())  # ids grow
        s1 = ids["s1"]  # four at T0, then two at T0 + 1
        expected = [s1[4], s1[5], s1[0], s1[1], s1[2], s1[3]]
        assert [e.id for e in memory.get_recent_episodes("s1")] == expected
        assert [e.id for e in memory.get_recent_episodes("s1", limit=3)] == expected[:3]
        assert [e.ts for e in memory.get_recent_episodes("s1", limit=3)] == [T0 + 1, T0 + 1, T0]
        s2 = ids["s2"]  # two at T0, then two at T0 + 1
        assert [e.id for e in memory.get_recent_episodes("s2")] == [s2[2], s2[3], s2[0], s2[1]]
        twin = AsyncReflexionMemory(store.async_store, clock=clock)
        assert [e.id for e in store.run(twin.get_recent_episodes("s1", 4))] == expected[:4]

    # -- SkillLibrary ----------------------------------------------------------------------------

    def test_create_skill_row_embedding_and_unique_name(self, store: vs.Store, clock: Clock) -> None:
        """create_skill stores the fields as AgentDB does: the signature as given (json), uses, avg_reward
        and avg_latency_ms 0, created_at and updated_at now, created_from_episode, last_used_at, ts and
        tags NULL, and the metadata as given; the vector is the embedding of
        'name\\ndescription\\n<compact JSON of the signature>'. Without a signature the stored one is
        {'inputs': {}, 'outputs': {}} and the embedded text 'bare\\n' (an empty signature line). Creating a
        skill of an existing name raises DuplicateSkill and leaves two skills.

        Troubleshooting: a json field must read back as the same nested dicts, and NULL fields (ts and tags
        are the MCP-variant columns) as None with their keys present. DuplicateSkill relies on
        page(None, 1, where={'name': ...}) finding the existing skill by exact text equality inside the
        transaction; no error (and a third skill) means that lookup missed it. When porting, embed the
        caller's signature as JavaScript's JSON.stringify writes it (compact, keys in insertion order, whole
        floats as ints: vectorstore.memory._base.js_json), and an empty line when the caller gave none, even
        though the stored signature is then the default."""
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
        """update_skill_stats(id, True, 0.8, 40) on a skill with 2 uses folds one use into the running means
        ((old * uses + x) / (uses + 1)): uses 3 and success_rate, avg_reward and avg_latency_ms exactly so;
        last_used_at and updated_at become now while created_at stays; get_skill returns the same skill as
        the call; an unknown id raises SkillNotFound.

        Troubleshooting: the update is an upsert of the whole record inside a serializable transaction.
        Floats must read back bit-exact (float64: SQLite REAL, PostgreSQL double precision; a real / float4
        column or decimal text with fewer digits makes get_skill differ from the returned skill), and get()
        of a missing id must return nothing rather than raise. When porting, note the deliberate difference
        from AgentDB: last_used_at and updated_at are set (AgentDB leaves both unchanged)."""
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
        """search_skills returns the skills with success_rate >= 0.5 (the default min_success_rate), best
        first, scored sim*0.4 + success_rate*0.3 + min(uses/1000, 1)*0.1 + avg_reward*0.2 with sim the
        cosine of the query's and the stored vector (to 1e-6); retrieve_skills(k=1) returns the best;
        min_success_rate=0.0 returns all three; prefer_recent=True adds 0.1 * 0.5 ** (age_days / 7) to each
        score (neither skill was used, so the age counts from updated_at: 30 days and 0 days).

        Troubleshooting: the memory counts the candidates with count(where={'success_rate': {'$gte': ...}})
        and then asks search() for exactly that many: count and search must apply the same filter (a float
        field, $gte inclusive), and search must return all k matching records (a filter must not starve an
        HNSW search) with exact cosine similarities and their fields. When porting, prefer_recent measures
        the age from last_used_at, else updated_at, else created_at, and defaults to False."""
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

    def test_concurrent_writers_keep_names_unique_and_counts_exact(self, store: vs.Store, store_url: str,
                                                                   clock: Clock) -> None:
        """Read-modify-write runs in serializable transactions (retried on conflict): concurrent
        creates of one name leave one skill, concurrent uses are all counted. Four threads start together;
        each records 5 outcomes of one skill (successes at its 1st, 3rd and 5th call, its own reward and
        latency), then tries to create a skill named 'contested'. On a backend that declares both
        persistent and concurrent_processes, every other thread works through a second store opened on the
        same URL (vs.connect(store_url)), so the race also runs across connections. No call fails with
        anything but vs.TransactionConflict (which a call may still raise after the memory's own retries
        under contention: it wrote nothing, and the thread runs it again); exactly one create succeeds and
        three raise DuplicateSkill; one 'contested' skill exists; and the shared skill, which started with 5
        uses at success rate, reward and latency 0, has 25 uses, success_rate 12/25, avg_reward 0.25 and
        avg_latency_ms 20.0 (each to 1e-9: running means fold the outcomes in whatever order they landed),
        read the same through both stores. A lost or twice-applied outcome changes the uses and the means.

        Troubleshooting: the threads' calls run as concurrent tasks on the store's event loop, so the
        backend's transaction state (in_transaction(), the transaction's connection) must be per task (a
        context variable), and every read and write inside transaction() must use the transaction's
        connection: a read served by another connection (a reader pool) sees old data, so uses are lost or
        two creates both miss the name. Isolation must be serializable (SQLite: BEGIN IMMEDIATE on the
        single writer; PostgreSQL: SERIALIZABLE, so the name lookup conflicts with a concurrent insert of
        that name), and a lost race must raise vs.TransactionConflict (map SQLSTATE 40001 and 40P01; never
        let 'database is locked' or a driver error through), which the memory retries up to 5 times; an
        exception in the failures list names the error that got through. A failure only with the second
        store means the serialization holds within one store object but not between connections (a lock
        held in process memory instead of the database's own locking)."""
        skills = SkillLibrary(store, clock=clock)
        sid = skills.create_skill(name="shared", success_rate=0.0, uses=5, avg_reward=0.0, avg_latency_ms=0)
        stores = [store]
        if store.capabilities.persistent and store.capabilities.concurrent_processes:
            stores.append(vs.connect(store_url))
        try:
            libraries = [SkillLibrary(s, clock=clock) for s in stores]
            threads_n, calls_n = 4, 5
            outcomes: list[str] = []
            failures: list[BaseException] = []
            escaped: list[int] = []
            barrier = threading.Barrier(threads_n)

            def again(t: int, call: Callable[[], Any]) -> Any:
                """Run call, again when TransactionConflict escapes the memory's retries (it wrote nothing)."""
                for _ in range(20):
                    try:
                        return call()
                    except vs.TransactionConflict:
                        escaped.append(t)
                raise AssertionError("20 calls in a row lost their race")

            def worker(t: int) -> None:
                library = libraries[t % len(libraries)]
                try:
                    barrier.wait()
                    for i in range(calls_n):
                        again(t, functools.partial(library.update_skill_stats, sid, i % 2 == 0, (t + 1) / 8,
                                                   10 * (t + 1)))
                    try:
                        again(t, functools.partial(library.create_skill, name="contested", success_rate=0.5))
                        outcomes.append("created")
                    except DuplicateSkill:
                        outcomes.append("duplicate")
                except BaseException as exc:  # reported below
                    failures.append(exc)

            threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(120)
            assert not failures, failures
            assert sorted(outcomes) == ["created"] + ["duplicate"] * (threads_n - 1), f"{len(escaped)} escaped"
            final = skills.get_skill(sid)
            assert final is not None
            assert final.uses == 5 + threads_n * calls_n, f"{len(escaped)} calls escaped"
            # 5 old uses at 0, then 3 successes per thread; rewards (t + 1) / 8 and latencies 10 * (t + 1), 5 each
            assert final.success_rate == pytest.approx(12 / 25, abs=1e-9)
            assert final.avg_reward == pytest.approx(0.25, abs=1e-9)
            assert final.avg_latency_ms == pytest.approx(20.0, abs=1e-9)
            assert all(library.get_skill(sid) == final for library in libraries)
            assert store.collection("skills").count({"name": "contested"}) == 1
        finally:
            for other in stores[1:]:
                other.close()

    def test_link_skills_and_skill_plan(self, store: vs.Store, clock: Clock) -> None:
        """link_skills stores a link without a vector (parent_skill_id, child_skill_id, relationship, weight;
        the metadata as given); linking the same (parent, child, relationship) again returns the same id and
        changes only the weight (the first metadata stays). get_skill_plan lists the children per
        relationship: prerequisites by weight, alternatives of equal weight by success rate, refinements by
        weight then newest created_at, and compositions; get_skill_links lists the parent's links. An
        unknown relationship raises UnknownRelationship, a missing child SkillNotFound, the plan of a
        missing skill SkillNotFound('Skill 777 not found'); eight links remain.

        Troubleshooting: the existing link is found with page(where=...) on the AND of two int equalities
        and a text equality, then replaced by an upsert of its id, which must keep one record, not add a
        second. The plan reads the links with scan(where={'parent_skill_id': ...}) and the children with
        one get() of several ids, so get() must return each of them, and the float weight, float
        success_rate and int created_at (the sort keys) must read back as stored. Links tied on every sort
        key would come in link-id order; no such tie occurs here."""
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
        """consolidate_episodes_into_skills (defaults: at least 3 episodes of one task with reward >= 0.7 in
        the last 7 days) creates the skill 'refactor compiler' from its three good episodes (the 0.2 one
        left out), updates the existing skill 'existing task' with one use and skips 'rare task' (one
        episode). Checked exactly: the patterns in task order, the common techniques (output keywords in
        first-seen order), 'Consistent lang: rust', the critique keywords and the '+19%' learning curve,
        the new skill's description, signature, success_rate 1.0, uses 3, avg_latency_ms 200.0,
        created_from_episode 3 and metadata (sourceEpisodes [1, 2, 3], autoGenerated, patternConfidence
        0.3, consolidatedAt in ms), and the updated skill's running means.

        Troubleshooting: the memory scans the episodes with ts {'$gt': ...} AND reward {'$gte': 0.7}; scan
        must return them in ascending id (keyword ties and sourceEpisodes follow that order), with metadata
        parsed from JSON and a NULL latency_ms as None (the existing skill's avg_latency_ms 5.0 is the mean
        of its 10 and 0, the mean latency of episodes that have none). All of it runs in one transaction.
        When porting, follow AgentDB's extractPatternsFromEpisodes
        (vectorstore.memory.skills.extract_episode_patterns): words longer than 3 characters, no stop
        words, at least two occurrences, the learning trend over the episodes in id order."""
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
        """prune_skills() with its defaults (uses < 3 AND success_rate < 0.4 AND created more than 60 days
        ago) deletes only 'weak' and returns 1, keeping the old skill with a high success rate, the old one
        with many uses and the new weak one. Of three links, the one whose child is the pruned skill and the
        one whose parent is the pruned skill are deleted; the link between two kept skills stays.

        Troubleshooting: the candidates are found with an AND of $lt on an int, a float and an int field,
        and the links deleted in the same transaction with delete(where={'$or': [{'parent_skill_id':
        {'$in': ids}}, {'child_skill_id': {'$in': ids}}]}): $or of $in must compile to (a IN (...) OR b IN
        (...)) with the parameters bound in placeholder order, and delete(ids) must return the number of
        records removed."""
        skills = SkillLibrary(store, clock=clock)
        clock.now = T0 - 90 * DAY
        weak = skills.create_skill(name="weak", success_rate=0.1, uses=1)
        strong_old = skills.create_skill(name="strong", success_rate=0.9, uses=1)
        used_old = skills.create_skill(name="used", success_rate=0.1, uses=10)
        clock.now = T0
        weak_new = skills.create_skill(name="weak new", success_rate=0.1, uses=1)
        skills.link_skills(parent_skill_id=strong_old, child_skill_id=weak, relationship="prerequisite")
        skills.link_skills(parent_skill_id=strong_old, child_skill_id=used_old, relationship="alternative")
        skills.link_skills(parent_skill_id=weak, child_skill_id=weak_new, relationship="composition")
        assert store.collection("skill_links").count() == 3
        assert skills.prune_skills() == 1
        assert ids_of(store.collection("skills")) == [strong_old, used_old, weak_new]
        assert [(r.fields["parent_skill_id"], r.fields["child_skill_id"], r.fields["relationship"])
                for r in store.collection("skill_links").scan()] == [(strong_old, used_old, "alternative")]

    # -- ReasoningBank -------------------------------------------------------------------------

    def test_reasoning_bank_store_search_filters(self, store: vs.Store, clock: Clock) -> None:
        """store_pattern writes ts (now), task_type, approach, success_rate, uses 0, avg_reward 0.0 and the
        tags as fields, and the embedding of 'task_type: approach'; search_patterns returns patterns by
        descending similarity (the exact cosine, to 1e-6) with their tags and created_at (the ts), filtered
        by exact task_type, success_rate >= min_success_rate and tags sharing any element; given a
        pattern's own vector as embedding= it finds that pattern first with similarity 1.0, and
        threshold=0.999 keeps only it; a pattern stored without tags or metadata reads back with [] and {}.

        Troubleshooting: the threshold reaches the backend as max_distance = 1 - threshold: keep hits with
        distance <= max_distance (inclusive; threshold=-1 gives 2, so every pattern), and a record's
        distance to its own vector must be 0 within float rounding. The tags filter is $overlap on a text[]
        field (any common element; a NULL tags never matches), task_type exact text equality and
        min_success_rate $gte on a float field. NULL tags read back as None; the memory turns them into []."""
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
        """get_pattern_stats over three patterns: the count, the mean success rate and uses, recent patterns
        (ts within 7 days: 2), high performing ones (success_rate >= 0.8: 2) and the task types by count;
        update_pattern_stats and record_outcome (reward 1.0 by default on success) fold one outcome into
        the running means, and get_pattern returns the same pattern; delete_pattern returns True, then
        False, and the pattern is gone (record_outcome raises PatternNotFound); with no patterns left the
        stats are 0.

        Troubleshooting: delete([id]) must return the number of records actually removed (0 for an id
        already deleted, so delete_pattern returns False), get() of a missing id must return nothing, and
        floats must read back bit-exact (float64) for get_pattern to equal the updated pattern. The stats
        scan every record, so scan() must return all of them with ts and success_rate as stored."""
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
        """One NightlyLearner run over the fixture data (three tasks in the last 24 h, an older task, five
        causal edges) scans the 8 episodes in the window, creates one pattern and one skill for 'summarize
        docs' (3 attempts, 2/3 successes; 'flaky task' at 1/3 and 'rare' with 2 attempts are skipped) and
        prunes the 2 edges with confidence < 0.6 made more than 90 days ago (one dated by created_at, one,
        of the MCP variant, only by ts), keeping the confident, the recent and the NULL-confidence ones.
        The report, the pattern (approach = the best success's output, uses 3, metadata source and
        last_episode_id 6) and the skill are checked field by field. A second run changes nothing; after
        one more episode a third run updates the pattern and the skill (uses 4).

        Troubleshooting: the edges are selected with confidence {'$lt': 0.6} AND (created_at {'$lt':
        cutoff} OR created_at None AND ts {'$lt': cutoff}): a comparison with NULL must not match (the
        NULL-confidence edge stays) and {'created_at': None} must compile to IS NULL. scan must return
        records in ascending id (last_episode_id and pruned_edge_ids follow it), and reads must return
        records exactly as written, since the second run is checked by comparing every record (ids,
        fields, metadata, vectors) with the state before it."""
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
        does the whole job. The failure is raised by the progress callback after the 'consolidate' step
        (the pattern and the skill inserted, no edge pruned yet): the RuntimeError propagates and every
        record of the five collections is as before; the next run reports the steps discover, consolidate
        and prune, and creates 1 pattern and 1 skill and prunes 2 edges.

        Troubleshooting: the whole run is one serializable transaction, so the backend must roll back
        every write made in it (inserts into two collections, with their vectors) when an exception leaves
        transaction(), and every write must go through the transaction's connection. A pattern or skill
        left behind also changes the next run's counts: the learner finds it and updates or skips it
        instead of creating it."""
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
        """run(dry_run=True) reports what a run would do (dry_run set; 1 pattern, 1 skill, 2 edges) and
        leaves every record of the five collections as before; a real run afterwards does the same work
        for the same tasks.

        Troubleshooting: a dry run makes all the writes, then raises inside its transaction to roll them
        back, so the backend must roll back on an exception leaving transaction() (inserts and deletes
        alike, across collections). A record changed after the dry run, or other counts from the real run,
        means a write escaped the transaction (ran on another connection, or was committed early)."""
        self._learning_data(store, clock)
        before = snapshot(store)
        dry = NightlyLearner(store, clock=clock).run(dry_run=True)
        assert dry.dry_run and (dry.patterns_created, dry.skills_created, dry.edges_pruned) == (1, 1, 2)
        assert snapshot(store) == before
        real = NightlyLearner(store, clock=clock).run()
        assert (real.patterns_created, real.skills_created, real.edges_pruned) == (1, 1, 2)
        assert [t.task for t in real.tasks] == [t.task for t in dry.tasks]

    def test_learn_command(self, store: vs.Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        """``vectorstore learn``: one summary line, exit code 0; 2 on bad configuration. With
        ``--url <the store under test> --dry-run`` it exits 0 and prints exactly one line on stdout,
        starting 'learn dry run (rolled back): '; with an unknown URL scheme it exits 2.

        Troubleshooting: the command opens its own connection to store_url while the test's store is open,
        creates the memory's collections there and runs a serializable transaction: the URL must open again
        through vectorstore.connect (a second connection to the same file or database must not be locked
        out), and nothing but the summary may reach stdout (backends and drivers log to stderr or through
        logging). On exit 1 the cause is on stderr, in the test's captured output ('vectorstore learn:
        failed, nothing was written: ...' or '... cannot open the store: ...'); 2 for store_url means
        connect() or the learner raised ConfigError for it (for example IncompatibleCollection)."""
        from vectorstore.cli import main

        assert main(["learn", "--url", store_url, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert out.count("\n") == 1 and out.startswith("learn dry run (rolled back): ")
        assert main(["learn", "--url", "nosuchscheme://x"]) == 2

    # -- persistence, migrated data, async twins, bad input ------------------------------------

    def test_memory_survives_reopen(self, store: vs.Store, store_url: str, clock: Clock) -> None:
        """An episode, two linked skills and a pattern survive close and reopen on a persistent backend:
        every record of the five collections reads back equal (ids, fields, metadata, vectors), get_episode
        returns the same episode, retrieve_relevant finds it, the skill plan lists the composition, the
        pattern is there, and the next episode gets the id after the last one. A backend that declares no
        persistence must come back empty.

        Troubleshooting: commit before close, and keep each collection's full definition in the catalog
        (int ids, dim, cosine, field types), or the memory refuses the reopened collections with
        IncompatibleCollection; json and text[] fields must read back as the same objects, and search must
        work after reopen. Ids allocated after reopen must be above every id allocated or stored before
        (eid + 1 here). capabilities.persistent must say what the backend does: a backend declaring no
        persistence that keeps data fails here too."""
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
        AgentDB allows it and some without embeddings, read back through the classes as written: reward
        0.30000000000000004 bit-exact, omitted fields as None (uses and created_at None, not 0 or now),
        metadata as stored; the episode without a vector is never a retrieve_relevant hit but is listed by
        get_recent_episodes (NULL ts last) and counted by get_task_stats; the next allocated episode id is
        10, after the explicit ids 7 and 9.

        Troubleshooting: float fields must be float64 (PostgreSQL double precision, not real), an omitted
        field must be stored as NULL with no column default, and a record without a vector must be stored
        with a NULL vector and left out of search. Ids allocated after an upsert with explicit ids must be
        above the greatest stored id (max(sequence, max(id)) + 1), so the next episode is 10, not 1."""
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
        """On a fresh store the async classes over store.async_store work: AsyncReflexionMemory stores an
        episode (id 1) that retrieve_relevant finds, AsyncSkillLibrary creates a skill (id 1), and
        AsyncReasoningBank stores a pattern that get_pattern returns; an async class given the sync store,
        and a sync class given the async store, raise TypeError. Only these calls are checked, against
        fixed values (not compared with the sync classes' results).

        Troubleshooting: the sync classes run the same coroutines through store.run, so fix the sync tests
        failing the same way first (test_store_episode_writes_the_agentdb_row,
        test_retrieve_relevant_ranks_filters_and_breaks_ties_by_reward,
        test_create_skill_row_embedding_and_unique_name). The skill's id 1 after the episode's id 1 needs an
        id sequence per collection, not one shared by the store. The TypeError checks are the library's
        (isinstance of Store / AsyncStore): a failure there means vectorstore and vectorstore_conformance
        come from different releases."""
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
        """25 bad calls each raise exactly their typed error, a subclass of vs.InvalidInput: store_episode with an
        empty task, a non-number or NaN reward, a non-bool success, tags as a str, or an embedding of the
        wrong length (DimensionMismatch); retrieve_relevant with k <= 0, an empty task, both only_failures
        and only_successes, or a negative window; get_task_stats(''); prune_episodes with a negative keep;
        create_skill with an empty name, a non-number success rate or a wrong-length embedding; link_skills
        with an unknown relationship (UnknownRelationship) or a missing child (SkillNotFound);
        update_skill_stats with a str reward; search_skills with k=0; store_pattern with an empty task
        type; search_patterns with a wrong-length embedding, neither task nor embedding, or k=0;
        update_pattern_stats of an existing pattern with reward None (the pattern exists, so the refusal is
        the reward check's, not PatternNotFound). Afterwards every record is as before.

        Troubleshooting: vectorstore.memory refuses all of these before the backend is asked to write. The
        one backend call involved is link_skills' lookup of the missing child inside a transaction: get()
        of a missing id must return nothing (not raise), and the transaction must roll back when
        SkillNotFound leaves it. Another error type, or a changed record, means a write was reached
        unchecked: install vectorstore and vectorstore_conformance from the same release and open the store
        through vectorstore (the store_url fixture)."""
        memory = ReflexionMemory(store, clock=clock)
        skills = SkillLibrary(store, clock=clock)
        bank = ReasoningBank(store, clock=clock)
        sid = skills.create_skill(name="s", success_rate=0.5)
        pid = bank.store_pattern(task_type="p", approach="a", success_rate=0.5)
        assert bank.get_pattern(pid) is not None
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
            (lambda: bank.update_pattern_stats(pid, True, None),  # type: ignore[arg-type]
             InvalidMemoryInput),
        ]
        for call, error in bad_calls:
            with pytest.raises(error) as caught:
                call()
            assert type(caught.value) is error and isinstance(caught.value, vs.InvalidInput)
        assert snapshot(store) == before
