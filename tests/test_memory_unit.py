"""Pure-Python parts of vectorstore.memory: embedded texts, formulas, pattern extraction,
JavaScript-compatible formatting, argument checks."""

from __future__ import annotations

import math

import pytest

from vectorstore import Hit, Record
from vectorstore.errors import ConfigError, DimensionMismatch, InvalidInput
from vectorstore.memory import Episode, InvalidMemoryInput, LearnerReport, UnknownRelationship
from vectorstore.memory._base import (
    check_bool,
    check_days,
    check_embedding,
    check_k,
    check_number,
    check_tags,
    check_text,
    js_fixed,
    js_json,
    js_string,
    optional_text,
)
from vectorstore.memory.learner import approach_for
from vectorstore.memory.reasoning import fold_outcomes, pattern_text
from vectorstore.memory.reflexion import episode_text, query_text, window_filter
from vectorstore.memory.schema import COLLECTIONS, resolve_dim
from vectorstore.memory.skills import (
    check_relationship,
    extract_episode_patterns,
    keyword_frequency,
    learning_trend,
    metadata_patterns,
    pattern_confidence,
    recency_boost,
    skill_score,
    skill_text,
    top_keywords,
)


def ep(i: int, reward: float | None = 1.0, output: str | None = None, critique: str | None = None,
       success: bool = True, metadata: dict[str, object] | None = None) -> Episode:
    return Episode(id=i, session_id="s", task="t", reward=reward, success=success, output=output,
                   critique=critique, metadata=metadata or {})


def test_embedded_texts_match_agentdb() -> None:
    assert episode_text("task", "crit", "out") == "task\ncrit\nout"
    assert episode_text("task", None, "out") == "task\nout"
    assert episode_text("task", "", "") == "task"
    assert query_text("task") == "task" and query_text("task", "state") == "task\nstate"
    assert skill_text("n", "d", {"inputs": {"a": 1.0}, "outputs": {}}) == 'n\nd\n{"inputs":{"a":1},"outputs":{}}'
    assert skill_text("n", None, None) == "n\n"
    assert skill_text("n", "", None) == "n\n"
    assert pattern_text("code_review", "read tests first") == "code_review: read tests first"


def test_js_formatting() -> None:
    assert js_fixed(0.125, 2) == "0.13"  # toFixed rounds exact ties away from zero; Python's format gives 0.12
    assert js_fixed(0.875, 2) == "0.88"
    assert js_fixed(1.005, 2) == "1.00"  # 1.005 is below the tie in binary
    assert js_fixed(-0.001, 2) == "-0.00" and js_fixed(-0.0, 2) == "0.00"
    assert js_fixed(12.5, 0) == "13" and js_fixed(math.inf, 0) == "Infinity"
    assert js_string(None) == "null" and js_string(True) == "true" and js_string(3.0) == "3"
    assert js_string([1, "a"]) == "1,a" and js_string({"a": 1}) == "[object Object]"
    assert js_json({"b": [1.5, 2.0], "a": None}) == '{"b":[1.5,2],"a":null}'


def test_skill_score_and_recency_boost() -> None:
    assert skill_score(0.5, 0.9, 500, 0.8) == 0.5 * 0.4 + 0.9 * 0.3 + 0.5 * 0.1 + 0.8 * 0.2
    assert skill_score(1.0, None, 5000, None) == 0.4 + 0.1  # uses saturate at 1000; NULLs count 0
    now = 1_000_000
    assert recency_boost(now, None, None, now) == 0.1
    assert recency_boost(now, now - 7 * 86_400, now, now) == pytest.approx(0.05)
    assert recency_boost(now, None, None, None) == 0.0
    assert recency_boost(now, now + 100, None, None) == 0.1  # future stamps do not exceed the maximum


def test_pattern_confidence() -> None:
    assert pattern_confidence(3, 1.0) == pytest.approx(0.3)
    assert pattern_confidence(50, 1.0) == 0.99
    assert pattern_confidence(10, 0.5) == 0.5


def test_keywords_follow_agentdb() -> None:
    freq = keyword_frequency(["Use the Visitor pattern; visitor-pattern again", "VISITOR tables with pattern"])
    assert freq == {"visitor": 2, "pattern": 2, "visitor-pattern": 1, "again": 1, "tables": 1}
    assert top_keywords(freq, 5) == ["visitor", "pattern"]
    assert top_keywords({"a1a1": 3, "b2b2": 3, "c3c3": 3}, 2) == ["a1a1", "b2b2"]  # ties: first seen


def test_metadata_patterns_use_js_set_semantics() -> None:
    metas = [{"lang": "rust", "n": 1, "obj": {"a": 1}, "flag": True},
             {"lang": "rust", "n": 1.0, "obj": {"a": 1}, "flag": 1}]
    # 1 and 1.0 are one JS number; objects are never equal; true is not 1
    assert metadata_patterns(metas) == ["Consistent lang: rust", "Consistent n: 1"]
    assert metadata_patterns([{"b": [1, 2]}, {}]) == ["Consistent b: 1,2"]


def test_learning_trend() -> None:
    assert learning_trend([ep(1), ep(2)]) is None
    assert learning_trend([ep(1, 0.8), ep(2, 0.9), ep(3, 1.0)]) == "Strong learning curve (+19% improvement)"
    assert learning_trend([ep(3, 1.06), ep(1, 1.0), ep(2, 1.06)]) == "Moderate learning curve (+6% improvement)"
    assert learning_trend([ep(1, 1.0), ep(2, 1.0), ep(3, 1.0)]) == "Stable performance (±0%)"
    assert learning_trend([ep(1, 1.0), ep(2, 0.5), ep(3, 0.5)]) is None
    assert learning_trend([ep(1, 0.0), ep(2, 1.0), ep(3, 1.0)]) == "Strong learning curve (+Infinity% improvement)"
    assert learning_trend([ep(1, 0.0), ep(2, 0.0), ep(3, 0.0)]) is None  # NaN


def test_extract_episode_patterns() -> None:
    episodes = [ep(1, 0.8, "cache the results", "small steps", metadata={"m": "x"}),
                ep(2, 0.9, "cache results twice", "small wins", metadata={"m": "x"}),
                ep(3, 1.0, None, None, metadata={"m": "y"})]
    common, indicators = extract_episode_patterns(episodes)
    assert common == ["Common techniques: cache, results"]
    assert indicators == ["small", "Strong learning curve (+19% improvement)"]
    assert extract_episode_patterns([]) == ([], [])
    _, consistent = extract_episode_patterns([ep(1, 1.0), ep(2, 1.0), ep(3, 0.1), ep(4, 1.0)])
    assert "High consistency (75% above average)" in consistent


def test_fold_outcomes_running_means() -> None:
    fields = {"uses": 2, "success_rate": 0.5, "avg_reward": 0.5}
    assert fold_outcomes(fields, [(1.0, 1.0)]) == {"uses": 3, "success_rate": 2 / 3, "avg_reward": 2 / 3}
    assert fold_outcomes({"uses": None, "success_rate": 0.0, "avg_reward": None}, [(0.0, 0.25), (1.0, 0.75)]) == {
        "uses": 2, "success_rate": 0.5, "avg_reward": 0.5}


def test_window_filter_uses_integer_cutoffs() -> None:
    assert window_filter(1000, None) == [] and window_filter(1000, 0) == []
    assert window_filter(100_000, 0.5) == [{"ts": {"$gt": 100_000 - 43_200}}]
    assert window_filter(100_000, 1e-5) == [{"ts": {"$gt": math.floor(100_000 - 0.864)}}]


def test_approach_for() -> None:
    assert approach_for([ep(1, 0.5, "low"), ep(2, 0.9, "high"), ep(3, 1.0, "failed", success=False)]) == "high"
    assert approach_for([ep(1, 0.5, None, "crit")]) == "crit"
    assert approach_for([ep(1, 0.5, success=False)]) == "Succeeded in 0 of 1 attempts"


def test_argument_checks() -> None:
    assert check_text("x", "task") == "x"
    for bad_text in ("", "  ", None, 3):
        with pytest.raises(InvalidMemoryInput):
            check_text(bad_text, "task")
    assert optional_text("", "input") is None
    assert check_number(1, "reward") == 1.0
    for bad_number in ("1", True, math.nan, math.inf, None):
        with pytest.raises(InvalidMemoryInput):
            check_number(bad_number, "reward")
    assert check_bool(True, "success") is True and check_bool(0, "success") is False
    with pytest.raises(InvalidMemoryInput):
        check_bool("yes", "success")
    assert check_k(1) == 1
    for bad_k in (0, -1, 10_001, 2.0, True):
        with pytest.raises(InvalidMemoryInput):
            check_k(bad_k)
    assert check_days(0, "d") is None and check_days(2, "d") == 2.0
    with pytest.raises(InvalidMemoryInput):
        check_days(-1, "d")
    assert check_tags(("a", "b")) == ["a", "b"]
    with pytest.raises(InvalidMemoryInput):
        check_tags("ab")
    with pytest.raises(DimensionMismatch):
        check_embedding([1.0, 2.0], 3)
    assert check_embedding([0.0, 0.0, 0.0], 3).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(UnknownRelationship):
        check_relationship("parent")
    assert issubclass(InvalidMemoryInput, InvalidInput) and issubclass(UnknownRelationship, InvalidInput)


def test_resolve_dim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTDB_VECTOR_DIM", raising=False)
    assert resolve_dim() == 384 and resolve_dim(16) == 16
    monkeypatch.setenv("AGENTDB_VECTOR_DIM", "768")
    assert resolve_dim() == 768 and resolve_dim(32) == 32
    monkeypatch.setenv("AGENTDB_VECTOR_DIM", "big")
    with pytest.raises(ConfigError):
        resolve_dim()
    with pytest.raises(ConfigError):
        resolve_dim(0)


def test_collections_cover_agentdb_columns() -> None:
    assert set(COLLECTIONS) == {"episodes", "skills", "skill_links", "reasoning_patterns", "causal_edges"}
    assert not COLLECTIONS["skill_links"].embedded and not COLLECTIONS["causal_edges"].embedded
    edges = COLLECTIONS["causal_edges"].fields
    assert {"from_memory_id", "from_memory_type", "to_memory_id", "to_memory_type", "edge_similarity", "uplift",
            "confidence", "sample_size", "evidence_ids", "experiment_ids", "confounder_score", "mechanism",
            "created_at", "updated_at", "last_validated_at"} <= set(edges)


def test_report_summary_is_one_line() -> None:
    report = LearnerReport(dry_run=True, started_at=0, window_start=0, episodes_scanned=8, tasks_seen=3,
                           patterns_created=1, patterns_updated=0, skills_created=1, skills_updated=0,
                           edges_pruned=2, tasks=[], pruned_edge_ids=[1, 4], duration_s=0.5)
    assert report.summary() == ("learn dry run (rolled back): 8 episodes in 3 tasks; patterns 1 created, 0 updated; "
                                "skills 1 created, 0 updated; causal edges 2 pruned; 0.50s")
    assert "\n" not in report.summary()


def test_tie_orders_follow_agentdb_sql_including_nulls() -> None:
    """The orders AgentDB's SQL leaves among equal sort keys, with SQLite's NULL placement."""
    from vectorstore.memory.reasoning import tie_order
    from vectorstore.memory.reflexion import by_reward, recent_order
    from vectorstore.memory.skills import search_order

    def rec(i: int, **fields: object) -> Record:
        return Record(i, None, fields)

    def hit(i: int, **fields: object) -> Hit:
        return Hit(i, 0.0, 1.0, fields)

    episodes = [rec(5, ts=10), rec(2, ts=None), rec(3, ts=10), rec(9, ts=11), rec(1, ts=None)]
    assert [r.id for r in sorted(episodes, key=recent_order)] == [9, 3, 5, 1, 2]  # ts DESC NULL last, id ASC
    hits = [hit(4, reward=0.5), hit(1, reward=None), hit(3, reward=0.5), hit(2, reward=0.9)]
    assert [h.id for h in sorted(hits, key=by_reward)] == [2, 3, 4, 1]  # reward DESC NULL last, id ASC
    skills = [(0.3, rec(1, success_rate=0.5)), (0.3, rec(2, success_rate=0.9)), (0.3, rec(3, success_rate=None)),
              (0.3, rec(4, success_rate=0.9)), (0.4, rec(5, success_rate=0.1))]
    assert [r.id for _, r in sorted(skills, key=lambda t: search_order(*t))] == [5, 2, 4, 1, 3]
    patterns = [rec(1, success_rate=0.9), rec(2, success_rate=0.6), rec(3, success_rate=0.6)]
    assert [r.id for r in sorted(patterns, key=tie_order(by_success_rate=True))] == [2, 3, 1]
    assert [r.id for r in sorted(patterns[::-1], key=tie_order(by_success_rate=False))] == [1, 2, 3]
