"""Replay AgentDB's own answers against the Python agent memory, after ``vectorstore migrate``.

``tests/fixtures/agentdb_replay.json`` holds what AgentDB 2.0.0-alpha.3.7 itself answered (run under
node; its ``about`` and ``make_replay.mjs`` entries say how) for an AgentDB file written with
AgentDB's API: episodes of three sessions stored so that many share a second, skills whose composite
scores tie, skill links tied on weight, reasoning patterns tied on similarity. Here the same file is
rebuilt with the fixture builder (checked row by row and by the sha256 of its embeddings, so no node
is needed), migrated with the ``vectorstore migrate`` command to SQLite and to PostgreSQL (and, for
the memory backend, copied from the SQLite migration into a memory:// store), and every recorded call
is made on the Python classes: the answers must be AgentDB's, in AgentDB's order.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import vectorstore as vs
from fixtures.agentdb_files import AgentDBFileBuilder
from vectorstore.cli import main as cli_main
from vectorstore.memory import (
    COLLECTIONS,
    AsyncReflexionMemory,
    Episode,
    ReasoningBank,
    ReasoningPattern,
    ReflexionMemory,
    Skill,
    SkillLibrary,
)
from vectorstore.memory.schema import ensure_collections

REPLAY = json.loads((Path(__file__).parent / "fixtures" / "agentdb_replay.json").read_text())
DIM = 384
TOL = 1e-6

#: The columns the replay dumped, per table, and which of them hold JSON text.
COLUMNS = {
    "episodes": ("id, ts, session_id, task, input, output, critique, reward, success, latency_ms, tokens_used, "
                 "tags, metadata, created_at"),
    "skills": ("id, name, description, signature, code, success_rate, uses, avg_reward, avg_latency_ms, "
               "created_from_episode, created_at, updated_at, last_used_at, metadata"),
    "skill_links": "id, parent_skill_id, child_skill_id, relationship, weight, metadata",
    "reasoning_patterns": "id, ts, task_type, approach, success_rate, uses, avg_reward, tags, metadata",
}
JSON_COLUMNS = {"tags", "metadata", "signature"}
EMBEDDINGS = {"episodes": ("episode_embeddings", "episode_id"), "skills": ("skill_embeddings", "skill_id"),
              "reasoning_patterns": ("pattern_embeddings", "pattern_id")}


class WordEmbedder:
    """The replay's embedder (``embed.mjs`` in the fixture), in Python: each whitespace-separated
    lower-cased word adds 1 to bucket ``hash(word) % 384``; the sum is L2-normalised to float32."""

    name = "agentdb-replay-words"
    dim = DIM

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            counts = np.zeros(DIM)
            for word in text.lower().split():
                h = 0
                for ch in word:
                    h = (h * 31 + ord(ch)) % 1_000_003
                counts[h % DIM] += 1
            norm = math.sqrt(float(np.sum(counts * counts)))
            out[row] = (counts / norm if norm else counts).astype(np.float32)
        return out


EMBEDDER = WordEmbedder()


def vector(text: str) -> npt.NDArray[np.float32]:
    return np.asarray(EMBEDDER.embed([text])[0], dtype=np.float32)


def rebuild(path: Path) -> None:
    """Write the recorded AgentDB file again with the fixture builder (AgentDB's DDL and row format),
    with the embeddings AgentDB stored: of ``task[\\ncritique][\\noutput]``, ``name\\ndescription\\n``
    (no signature was passed) and ``task_type: approach``."""
    rows = REPLAY["rows"]
    b = AgentDBFileBuilder(path, "main")
    for e in rows["episodes"]:
        text = "\n".join(p for p in (e["task"], e["critique"], e["output"]) if p)
        new = b.episode(id=e["id"], ts=e["ts"], session_id=e["session_id"], task=e["task"], input=e["input"],
                        output=e["output"], critique=e["critique"], reward=e["reward"], success=e["success"] == 1,
                        latency_ms=e["latency_ms"], tokens_used=e["tokens_used"],
                        tags=json.loads(e["tags"]) if e["tags"] else None,
                        metadata=json.loads(e["metadata"]) if e["metadata"] else None, embedding=vector(text))
        assert new == e["id"]
    for s in rows["skills"]:
        new = b.skill(name=s["name"], success_rate=s["success_rate"], description=s["description"],
                      signature=json.loads(s["signature"]), code=s["code"], uses=s["uses"], avg_reward=s["avg_reward"],
                      avg_latency_ms=s["avg_latency_ms"], ts=s["created_at"],
                      metadata=json.loads(s["metadata"]) if s["metadata"] else None,
                      embedding=vector(f"{s['name']}\n{s['description']}\n"))
        assert new == s["id"]
    for link in rows["skill_links"]:
        new = b.link(link["parent_skill_id"], link["child_skill_id"], link["relationship"], link["weight"],
                     json.loads(link["metadata"]) if link["metadata"] else None)
        assert new == link["id"]
    for p in rows["reasoning_patterns"]:
        new = b.pattern(task_type=p["task_type"], approach=p["approach"], success_rate=p["success_rate"],
                        uses=p["uses"], avg_reward=p["avg_reward"], ts=p["ts"],
                        tags=json.loads(p["tags"]) if p["tags"] else None,
                        metadata=json.loads(p["metadata"]) if p["metadata"] else None,
                        embedding=vector(f"{p['task_type']}: {p['approach']}"))
        assert new == p["id"]
    b.close()


def as_json_values(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v) if k in JSON_COLUMNS and isinstance(v, str) else v for k, v in row.items()}


def cli(*args: str) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main(list(args))
    return code, buf.getvalue()


# -- AgentDB's result shapes -------------------------------------------------------------------------


def episode(e: Episode, *, with_similarity: bool = False) -> dict[str, Any]:
    """An Episode as AgentDB returns it (NULL columns absent: they are ``undefined`` there)."""
    out: dict[str, Any] = {k: v for k, v in {
        "id": e.id, "ts": e.ts, "sessionId": e.session_id, "task": e.task, "input": e.input, "output": e.output,
        "critique": e.critique, "reward": e.reward, "success": e.success, "latencyMs": e.latency_ms,
        "tokensUsed": e.tokens_used, "tags": e.tags, "metadata": e.metadata or None}.items() if v is not None}
    if with_similarity:
        out["similarity"] = e.similarity
    return out


SKILL_KEYS = ("id", "name", "description", "successRate", "uses", "avgReward", "avgLatencyMs")


def skill(s: Skill) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "description": s.description, "successRate": s.success_rate, "uses": s.uses,
            "avgReward": s.avg_reward, "avgLatencyMs": s.avg_latency_ms}


def pattern(p: ReasoningPattern) -> dict[str, Any]:
    return {"id": p.id, "taskType": p.task_type, "approach": p.approach, "successRate": p.success_rate,
            "uses": p.uses, "avgReward": p.avg_reward, "tags": p.tags, "metadata": p.metadata,
            "createdAt": p.created_at, "similarity": p.similarity}


def same(a: Any, b: Any) -> bool:
    """Equal JSON values; numbers to 1e-6 (similarities are float32 products here, doubles in node)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= TOL
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def replay(store: vs.Store, call: dict[str, Any]) -> tuple[Any, Any]:
    """(Python's answer, AgentDB's recorded answer) for one recorded call, in AgentDB's shape."""
    method, args, want = call["method"], call["args"], call["result"]
    read_now, prune_now = REPLAY["read_now"], REPLAY["prune_now"]
    memory = ReflexionMemory(store, embedder=EMBEDDER, clock=lambda: read_now)
    skills = SkillLibrary(store, embedder=EMBEDDER, clock=lambda: read_now)
    bank = ReasoningBank(store, embedder=EMBEDDER, clock=lambda: read_now)
    if method == "getRecentEpisodes":
        limit = {} if args.get("limit") is None else {"limit": args["limit"]}
        got = [episode(e) for e in memory.get_recent_episodes(args["sessionId"], **limit)]
        twin = AsyncReflexionMemory(store.async_store, embedder=EMBEDDER, clock=lambda: read_now)
        from_async = [episode(e) for e in store.run(twin.get_recent_episodes(args["sessionId"], **limit))]
        assert from_async == got, "the async twin answers like the sync class"
        return got, want
    if method == "retrieveRelevant":
        return [episode(e, with_similarity=True) for e in memory.retrieve_relevant(
            args["task"], current_state=args.get("currentState", ""), k=args.get("k", 5),
            min_reward=args.get("minReward"), only_failures=args.get("onlyFailures", False),
            only_successes=args.get("onlySuccesses", False))], want
    if method == "getTaskStats":
        t = memory.get_task_stats(args["task"])
        return {"totalAttempts": t.total_attempts, "successRate": t.success_rate, "avgReward": t.avg_reward,
                "avgLatency": t.avg_latency, "improvementTrend": t.improvement_trend}, want
    if method == "getCritiqueSummary":
        return memory.get_critique_summary(args["task"]), want
    if method == "getSuccessStrategies":
        return memory.get_success_strategies(args["task"]), want
    if method == "searchSkills":
        found = skills.search_skills(args["task"], k=args.get("k", 5))
        return ([{**skill(s), "similarity": s.similarity} for s in found],
                [{**{k: s[k] for k in SKILL_KEYS}, "similarity": s["similarity"]} for s in want])
    if method == "getSkillPlan":
        plan = skills.get_skill_plan(args["skillId"])
        kinds = ("prerequisites", "alternatives", "refinements")
        return ({"skill": skill(plan.skill), **{k: [skill(s) for s in getattr(plan, k)] for k in kinds}},
                {"skill": {k: want["skill"][k] for k in SKILL_KEYS},
                 **{k: [{key: s[key] for key in SKILL_KEYS} for s in want[k]] for k in kinds}})
    if method == "searchPatterns":
        filters = args.get("filters", {})
        return [pattern(p) for p in bank.search_patterns(
            args["task"], k=args.get("k", 10), threshold=args.get("threshold", 0.0),
            task_type=filters.get("taskType"), min_success_rate=filters.get("minSuccessRate"),
            tags=filters.get("tags"))], want
    if method == "getPatternStats":
        st = bank.get_pattern_stats()
        return {"totalPatterns": st.total_patterns, "avgSuccessRate": st.avg_success_rate, "avgUses": st.avg_uses,
                "topTaskTypes": [{"taskType": t.task_type, "count": t.count} for t in st.top_task_types],
                "recentPatterns": st.recent_patterns, "highPerformingPatterns": st.high_performing_patterns}, want
    if method == "consolidateEpisodesIntoSkills":
        r = skills.consolidate_episodes_into_skills(min_attempts=args["minAttempts"], min_reward=args["minReward"],
                                                    time_window_days=args["timeWindowDays"])
        return {"created": r.created, "updated": r.updated, "patterns": [
            {"task": p.task, "commonPatterns": p.common_patterns, "successIndicators": p.success_indicators,
             "avgReward": p.avg_reward} for p in r.patterns]}, want
    if method == "pruneEpisodes":
        pruner = ReflexionMemory(store, embedder=EMBEDDER, clock=lambda: prune_now)
        deleted = pruner.prune_episodes(min_reward=args["minReward"], max_age_days=args["maxAgeDays"],
                                        keep_min_per_task=args["keepMinPerTask"])
        left = sorted(int(r.id) for r in store.collection("episodes").scan())  # type: ignore[arg-type]
        return [deleted, left], [want, call["remaining_episode_ids"]]
    raise AssertionError(f"the replay has a call this test does not know: {method}")


def assert_rebuilt_file_is_the_recorded_one(path: Path) -> None:
    """The builder's file has exactly the recorded rows (JSON columns as JSON values) and
    byte-identical embeddings (sha256 over each embedding table in id order); and it is the issue's
    case: three sessions, many episodes sharing a second, 12 get_recent_episodes calls."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        for table, columns in COLUMNS.items():
            rows = [as_json_values(dict(r)) for r in conn.execute(f"SELECT {columns} FROM {table} ORDER BY id")]
            assert rows == [as_json_values(r) for r in REPLAY["rows"][table]], table
        for table, (embeddings, key) in EMBEDDINGS.items():
            digest = hashlib.sha256()
            for (blob,) in conn.execute(f"SELECT embedding FROM {embeddings} ORDER BY {key}"):
                digest.update(blob)
            assert digest.hexdigest() == REPLAY["embedding_sha256"][table], embeddings
    finally:
        conn.close()
    episodes = REPLAY["rows"]["episodes"]
    assert len({e["session_id"] for e in episodes}) == 3
    per_second: dict[tuple[str, int], int] = {}
    for e in episodes:
        per_second[(e["session_id"], e["ts"])] = per_second.get((e["session_id"], e["ts"]), 0) + 1
    assert max(per_second.values()) >= 5
    assert sum(c["method"] == "getRecentEpisodes" for c in REPLAY["calls"]) == 12


# -- the test -----------------------------------------------------------------------------------------


def copy_memory_collections(source: vs.Store, target: vs.Store) -> None:
    """The agent memory's collections of ``source``, record for record, into ``target``."""
    target.run(ensure_collections(target.async_store, DIM))
    for name in COLLECTIONS:
        records = list(source.collection(name).scan())
        if records:
            target.collection(name).upsert(records)


@pytest.fixture(params=["sqlite", "memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_python_answers_equal_agentdb_answers_after_migrate(tmp_path: Path, backend: str,
                                                            request: pytest.FixtureRequest) -> None:
    """Every recorded call (get_recent_episodes with ties on ts, retrieve_relevant, task stats,
    summaries, search_skills with tied scores, get_skill_plan with tied links, search_patterns with
    tied similarities, pattern stats, consolidation, prune) answers exactly what AgentDB answered.
    The file is migrated to SQLite or PostgreSQL with ``vectorstore migrate``; for the memory
    backend (a memory:// store lives in one process only) the SQLite migration's collections are
    copied into a memory:// store."""
    source = tmp_path / "agentdb.db"
    rebuild(source)
    assert_rebuilt_file_is_the_recorded_one(source)
    target_url = str(request.getfixturevalue("url")) if backend == "postgres" else f"sqlite:///{tmp_path / 'm.db'}"
    code, output = cli("migrate", str(source), target_url)
    assert code == 0, output
    store = vs.connect(target_url)
    if backend == "memory":
        migrated, store = store, vs.connect("memory://")
        copy_memory_collections(migrated, store)
        migrated.close()
    try:
        differences = []
        for call in REPLAY["calls"]:
            got, want = replay(store, call)
            if not same(got, want):
                differences.append(f"{call['method']}({json.dumps(call['args'])}):\n  AgentDB: {json.dumps(want)}"
                                   f"\n  Python:  {json.dumps(got)}")
        assert not differences, f"{len(differences)} of {len(REPLAY['calls'])} calls differ:\n" + "\n".join(differences)
    finally:
        store.close()
