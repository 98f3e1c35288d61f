"""Typed results of the agent memory (attrs, frozen).

Field names are the snake_case forms of AgentDB's. Columns AgentDB allows to be NULL are
``X | None`` here, so data migrated from real AgentDB files reads back exactly as it was written.
``similarity`` (and ``score`` for skills) is set on search results only.
"""

from __future__ import annotations

from typing import Any

import attrs

from vectorstore.records import Hit, Record


def record_id(record: Record | Hit) -> int:
    """The int id of a record of one of the memory's collections."""
    rid = record.id
    if not isinstance(rid, int):
        raise TypeError(f"expected an int id, got {rid!r}")
    return rid


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _tags(value: Any) -> list[str] | None:
    return None if value is None else list(value)


@attrs.frozen(kw_only=True)
class Episode:
    """A row of ``episodes`` (ReflexionMemory)."""

    id: int
    session_id: str
    task: str
    reward: float | None
    success: bool | None
    ts: int | None = None
    input: str | None = None
    output: str | None = None
    critique: str | None = None
    latency_ms: float | None = None
    tokens_used: int | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    created_at: int | None = None
    similarity: float | None = None

    @classmethod
    def from_record(cls, record: Record | Hit) -> Episode:
        f = record.fields
        success = f.get("success")
        return cls(
            id=record_id(record), session_id=f["session_id"], task=f["task"],
            reward=_float(f.get("reward")), success=None if success is None else success == 1,
            ts=_int(f.get("ts")), input=f.get("input"), output=f.get("output"), critique=f.get("critique"),
            latency_ms=_float(f.get("latency_ms")), tokens_used=_int(f.get("tokens_used")),
            tags=_tags(f.get("tags")), metadata=dict(record.metadata), created_at=_int(f.get("created_at")),
            similarity=record.similarity if isinstance(record, Hit) else None,
        )


@attrs.frozen(kw_only=True)
class TaskStats:
    """``get_task_stats``: AgentDB's totalAttempts, successRate, avgReward, avgLatency, improvementTrend."""

    total_attempts: int
    success_rate: float
    avg_reward: float
    avg_latency: float
    improvement_trend: float


@attrs.frozen(kw_only=True)
class Skill:
    """A row of ``skills`` (SkillLibrary). ``score`` is the ranking score of a search."""

    id: int
    name: str
    description: str | None = None
    signature: Any = None
    code: str | None = None
    success_rate: float | None = None
    uses: int | None = None
    avg_reward: float | None = None
    avg_latency_ms: float | None = None
    created_from_episode: int | None = None
    created_at: int | None = None
    updated_at: int | None = None
    last_used_at: int | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    tags: list[str] | None = None  # the MCP-server schema variant's column
    ts: int | None = None  # the MCP-server schema variant's column
    similarity: float | None = None
    score: float | None = None

    @classmethod
    def from_record(cls, record: Record | Hit, *, similarity: float | None = None,
                    score: float | None = None) -> Skill:
        f = record.fields
        return cls(
            id=record_id(record), name=f["name"], description=f.get("description"),
            signature=f.get("signature"), code=f.get("code"), success_rate=_float(f.get("success_rate")),
            uses=_int(f.get("uses")), avg_reward=_float(f.get("avg_reward")),
            avg_latency_ms=_float(f.get("avg_latency_ms")), created_from_episode=_int(f.get("created_from_episode")),
            created_at=_int(f.get("created_at")), updated_at=_int(f.get("updated_at")),
            last_used_at=_int(f.get("last_used_at")), metadata=dict(record.metadata), tags=_tags(f.get("tags")),
            ts=_int(f.get("ts")), similarity=similarity, score=score,
        )


@attrs.frozen(kw_only=True)
class SkillLink:
    """A row of ``skill_links``."""

    id: int
    parent_skill_id: int
    child_skill_id: int
    relationship: str
    weight: float | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_record(cls, record: Record) -> SkillLink:
        f = record.fields
        return cls(id=record_id(record), parent_skill_id=f["parent_skill_id"], child_skill_id=f["child_skill_id"],
                   relationship=f["relationship"], weight=_float(f.get("weight")),
                   metadata=dict(record.metadata))


@attrs.frozen(kw_only=True)
class SkillPlan:
    """``get_skill_plan``: the skill and the children of its links, per relationship.

    AgentDB returns no ``compositions`` list; it is an addition here."""

    skill: Skill
    prerequisites: list[Skill]
    alternatives: list[Skill]
    refinements: list[Skill]
    compositions: list[Skill]


@attrs.frozen(kw_only=True)
class ConsolidatedPattern:
    """Patterns found in one task's successful episodes by ``consolidate_episodes_into_skills``."""

    task: str
    common_patterns: list[str]
    success_indicators: list[str]
    avg_reward: float


@attrs.frozen(kw_only=True)
class ConsolidationResult:
    """``consolidate_episodes_into_skills``: skills created and updated, and the extracted patterns."""

    created: int
    updated: int
    patterns: list[ConsolidatedPattern]


@attrs.frozen(kw_only=True)
class ReasoningPattern:
    """A row of ``reasoning_patterns`` (ReasoningBank). As AgentDB returns them, NULL tags read as
    ``[]`` and ``created_at`` is the row's ``ts``."""

    id: int
    task_type: str
    approach: str
    success_rate: float | None
    uses: int | None = None
    avg_reward: float | None = None
    tags: list[str] = attrs.field(factory=list)
    metadata: dict[str, Any] = attrs.field(factory=dict)
    created_at: int | None = None
    similarity: float | None = None

    @classmethod
    def from_record(cls, record: Record | Hit, *, similarity: float | None = None) -> ReasoningPattern:
        f = record.fields
        return cls(id=record_id(record), task_type=f["task_type"], approach=f["approach"],
                   success_rate=_float(f.get("success_rate")), uses=_int(f.get("uses")),
                   avg_reward=_float(f.get("avg_reward")), tags=list(f.get("tags") or []),
                   metadata=dict(record.metadata), created_at=_int(f.get("ts")), similarity=similarity)


@attrs.frozen(kw_only=True)
class TaskTypeCount:
    task_type: str
    count: int


@attrs.frozen(kw_only=True)
class PatternStats:
    """``get_pattern_stats``."""

    total_patterns: int
    avg_success_rate: float
    avg_uses: float
    top_task_types: list[TaskTypeCount]
    recent_patterns: int
    high_performing_patterns: int


@attrs.frozen(kw_only=True)
class LearnedTask:
    """One task the nightly learner turned into a pattern (and a skill)."""

    task: str
    attempts: int
    success_rate: float
    avg_reward: float
    pattern_id: int
    pattern_created: bool
    new_episodes: int
    skill_id: int | None
    skill_created: bool


@attrs.frozen(kw_only=True)
class LearnerReport:
    """What one :class:`~vectorstore.memory.NightlyLearner` run did (or, with ``dry_run``, would do)."""

    dry_run: bool
    started_at: int
    window_start: int
    episodes_scanned: int
    tasks_seen: int
    patterns_created: int
    patterns_updated: int
    skills_created: int
    skills_updated: int
    edges_pruned: int
    tasks: list[LearnedTask]
    pruned_edge_ids: list[int]
    duration_s: float = 0.0

    def summary(self) -> str:
        """One line, for logs and cron mail."""
        mode = "dry run (rolled back)" if self.dry_run else "done"
        return (f"learn {mode}: {self.episodes_scanned} episodes in {self.tasks_seen} tasks; "
                f"patterns {self.patterns_created} created, {self.patterns_updated} updated; "
                f"skills {self.skills_created} created, {self.skills_updated} updated; "
                f"causal edges {self.edges_pruned} pruned; {self.duration_s:.2f}s")

