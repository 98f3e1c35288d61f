"""NightlyLearner: turn the last day's episodes into reasoning patterns and skills, and prune
stale causal edges, in one transaction.

This is not AgentDB's NightlyLearner (which runs causal discovery); it is the job the issue asks
for. Each run:

1. **discover** — groups the episodes of the last ``window_hours`` (``ts > now - window``) by
   task; a task with at least ``min_attempts`` episodes and a success share of at least
   ``min_success_rate`` gets a ReasoningBank pattern (``task_type`` = the task). A pattern the
   learner made before (``metadata.source == "nightly_learner"``) is updated instead: the
   episodes it has not seen yet (id above its ``metadata.last_episode_id``) are folded into its
   running means, so running twice over the same episodes changes nothing.
2. **consolidate** — each pattern created or updated in step 1 becomes a skill named after the
   task (or, if a skill of that name exists, the new episodes are folded into its statistics).
3. **prune** — deletes causal edges with ``confidence < min_edge_confidence`` created more than
   ``edge_max_age_days`` ago (``ts`` for rows of AgentDB's MCP schema variant, which have no
   ``created_at``).

Everything happens in one serializable transaction: a failure anywhere rolls every step back
and the next run starts from the same state. ``dry_run=True`` computes the report and rolls back.
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import attrs

from vectorstore.embedding import Embedder
from vectorstore.errors import ConfigError, VectorStoreError
from vectorstore.records import Record
from vectorstore.store import AsyncStore
from vectorstore.sync import Store

from ._base import DAY, AsyncMemoryBase, Clock, SyncMemoryBase, check_int, check_number
from .errors import InvalidMemoryInput
from .reasoning import AsyncReasoningBank, fold_outcomes, pattern_text
from .records import Episode, LearnedTask, LearnerReport, record_id
from .reflexion import mean
from .schema import Collections
from .skills import CONSOLIDATED_SIGNATURE, AsyncSkillLibrary, skill_text

SOURCE = "nightly_learner"
APPROACH_CHARS = 500
Progress = Callable[[str], None]
STEPS = ("discover", "consolidate", "prune")


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""

    def __init__(self, report: LearnerReport) -> None:
        super().__init__("dry run")
        self.report = report


def approach_for(episodes: list[Episode]) -> str:
    """The learned approach: the output (else critique) of the best successful episode (highest
    reward, then latest), else a count of successes."""
    successes = [e for e in episodes if e.success]
    for episode in sorted(successes, key=lambda e: (-(e.reward if e.reward is not None else -math.inf), -e.id)):
        text = episode.output or episode.critique
        if text:
            return text[:APPROACH_CHARS]
    return f"Succeeded in {len(successes)} of {len(episodes)} attempts"


class AsyncNightlyLearner(AsyncMemoryBase):
    """The nightly learning job over an :class:`~vectorstore.AsyncStore`.

    ``progress`` is called with each step's name (``discover``, ``consolidate``, ``prune``) after
    the step, inside the transaction; an exception it raises aborts the run and rolls back.
    """

    def __init__(self, store: AsyncStore, *, embedder: Embedder | None = None, dim: int | None = None,
                 clock: Clock | None = None, window_hours: float = 24, min_attempts: int = 3,
                 min_success_rate: float = 0.6, min_edge_confidence: float = 0.6, edge_max_age_days: float = 90,
                 progress: Progress | None = None) -> None:
        super().__init__(store, embedder=embedder, dim=dim, clock=clock)
        self.window_hours = check_number(window_hours, "window_hours")
        self.min_attempts = check_int(min_attempts, "min_attempts", minimum=1)
        self.min_success_rate = check_number(min_success_rate, "min_success_rate")
        self.min_edge_confidence = check_number(min_edge_confidence, "min_edge_confidence")
        self.edge_max_age_days = check_number(edge_max_age_days, "edge_max_age_days")
        if self.window_hours <= 0 or self.edge_max_age_days < 0:
            raise InvalidMemoryInput("window_hours must be positive and edge_max_age_days not negative")
        self._progress = progress
        shared: dict[str, Any] = {"embedder": self._embedder, "dim": self._dim, "clock": self._clock}
        self._skills = AsyncSkillLibrary(store, **shared)
        self._bank = AsyncReasoningBank(store, **shared)

    def _step_done(self, step: str) -> None:
        if self._progress is not None:
            self._progress(step)

    async def run(self, *, dry_run: bool = False) -> LearnerReport:
        """Run the job once; returns what it did (with ``dry_run``, what it would have done)."""
        started = time.monotonic()
        await self._collections()  # outside the transaction, so a rollback cannot undo their creation

        async def work(cols: Collections) -> LearnerReport:
            report = await self._run(cols, bool(dry_run))
            if dry_run:
                raise _DryRun(report)
            return report

        try:
            report = await self._atomic(work)
        except _DryRun as rolled_back:
            report = rolled_back.report
        return attrs.evolve(report, duration_s=time.monotonic() - started)

    async def _run(self, cols: Collections, dry_run: bool) -> LearnerReport:
        now = self._now()
        window_start = math.floor(now - self.window_hours * 3600)
        groups: dict[str, list[Episode]] = defaultdict(list)
        scanned = 0
        async for record in cols.episodes.scan(where={"ts": {"$gt": window_start}}):
            scanned += 1
            episode = Episode.from_record(record)
            groups[episode.task].append(episode)

        # 1. discover patterns
        learned: list[tuple[str, list[Episode], list[Episode], int, bool, float, float]] = []
        for task in sorted(groups):
            episodes = sorted(groups[task], key=lambda e: e.id)
            rate = sum(1 for e in episodes if e.success) / len(episodes)
            if len(episodes) < self.min_attempts or rate < self.min_success_rate:
                continue
            avg_reward = mean([e.reward for e in episodes if e.reward is not None]) or 0.0
            existing = await self._learned_pattern(cols, task)
            if existing is None:
                approach = approach_for(episodes)
                pid = await self._bank._insert_pattern(cols, {
                    "ts": now, "task_type": task, "approach": approach, "success_rate": rate,
                    "uses": len(episodes), "avg_reward": avg_reward,
                    "tags": sorted({t for e in episodes for t in (e.tags or [])}) or None,
                }, {"source": SOURCE, "last_episode_id": episodes[-1].id, "learned_at": now},
                    await self._vector_for(pattern_text(task, approach), None))
                learned.append((task, episodes, episodes, pid, True, rate, avg_reward))
                continue
            seen = int(existing.metadata.get("last_episode_id") or 0)
            fresh = [e for e in episodes if e.id > seen]
            if not fresh:
                continue
            fields = fold_outcomes(dict(existing.fields), [(1.0 if e.success else 0.0, e.reward or 0.0) for e in fresh])
            meta = {**existing.metadata, "last_episode_id": fresh[-1].id, "learned_at": now}
            await cols.reasoning_patterns.upsert([Record(existing.id, existing.vector, fields, meta)])
            learned.append((task, episodes, fresh, record_id(existing), False, rate, avg_reward))
        self._step_done("discover")

        # 2. consolidate the patterns into skills
        tasks: list[LearnedTask] = []
        skills_created = skills_updated = 0
        for task, episodes, fresh, pid, pattern_created, rate, avg_reward in learned:
            skill = await self._skills._find_by_name(cols.skills, task)
            if skill is None:
                description = f"Learned by the nightly learner (reasoning pattern {pid})"
                signature = dict(CONSOLIDATED_SIGNATURE)
                ids = [e.id for e in fresh]
                skill_id = await self._skills._insert_skill(cols, {
                    "name": task, "description": description, "signature": signature, "code": None,
                    "success_rate": sum(1 for e in fresh if e.success) / len(fresh),
                    "uses": len(fresh), "avg_reward": mean([e.reward for e in fresh if e.reward is not None]) or 0.0,
                    "avg_latency_ms": mean([e.latency_ms for e in fresh if e.latency_ms is not None]) or 0.0,
                    "created_from_episode": max(ids), "created_at": now, "updated_at": now, "last_used_at": None,
                }, {"source": SOURCE, "pattern_id": pid, "sourceEpisodes": ids, "autoGenerated": True},
                    await self._vector_for(skill_text(task, description, signature), None))
                skills_created += 1
                created = True
            else:
                await self._skills._apply_stats(cols.skills, skill, [
                    (1.0 if e.success else 0.0, e.reward or 0.0, e.latency_ms or 0.0) for e in fresh])
                skill_id = record_id(skill)
                skills_updated += 1
                created = False
            tasks.append(LearnedTask(task=task, attempts=len(episodes), success_rate=rate, avg_reward=avg_reward,
                                     pattern_id=pid, pattern_created=pattern_created, new_episodes=len(fresh),
                                     skill_id=skill_id, skill_created=created))
        self._step_done("consolidate")

        # 3. prune stale, low-confidence causal edges
        cutoff = math.ceil(now - self.edge_max_age_days * DAY)
        where = {"confidence": {"$lt": self.min_edge_confidence},
                 "$or": [{"created_at": {"$lt": cutoff}}, {"created_at": None, "ts": {"$lt": cutoff}}]}
        pruned = [record_id(r) async for r in cols.causal_edges.scan(where=where)]
        if pruned:
            await cols.causal_edges.delete(pruned)
        self._step_done("prune")

        return LearnerReport(
            dry_run=dry_run, started_at=now, window_start=window_start, episodes_scanned=scanned,
            tasks_seen=len(groups), patterns_created=sum(1 for t in tasks if t.pattern_created),
            patterns_updated=sum(1 for t in tasks if not t.pattern_created), skills_created=skills_created,
            skills_updated=skills_updated, edges_pruned=len(pruned), tasks=tasks, pruned_edge_ids=pruned,
        )

    async def _learned_pattern(self, cols: Collections, task: str) -> Record | None:
        async for record in cols.reasoning_patterns.scan(where={"task_type": task}):
            if record.metadata.get("source") == SOURCE:
                return record
        return None


class NightlyLearner(SyncMemoryBase):
    """Sync twin of :class:`AsyncNightlyLearner` over a :class:`~vectorstore.Store`."""

    def __init__(self, store: Store, *, embedder: Embedder | None = None, dim: int | None = None,
                 clock: Clock | None = None, window_hours: float = 24, min_attempts: int = 3,
                 min_success_rate: float = 0.6, min_edge_confidence: float = 0.6, edge_max_age_days: float = 90,
                 progress: Progress | None = None) -> None:
        super().__init__(store)
        self._inner = AsyncNightlyLearner(
            store.async_store, embedder=embedder, dim=dim, clock=clock, window_hours=window_hours,
            min_attempts=min_attempts, min_success_rate=min_success_rate, min_edge_confidence=min_edge_confidence,
            edge_max_age_days=edge_max_age_days, progress=progress)
        store.run(self._inner.setup())

    @property
    def async_memory(self) -> AsyncNightlyLearner:
        return self._inner

    def run(self, *, dry_run: bool = False) -> LearnerReport:
        return self._store.run(self._inner.run(dry_run=dry_run))


def main(url: str | None, *, dry_run: bool = False) -> int:
    """``vectorstore learn``: one summary line on stdout; exit code 0 on success, 1 on failure,
    2 on bad configuration (URL, backend, ``AGENTDB_VECTOR_DIM``, incompatible collections)."""
    from vectorstore.sync import connect

    try:
        store = connect(url)
    except ConfigError as exc:
        print(f"vectorstore learn: configuration error: {exc}", file=sys.stderr)
        return 2
    except VectorStoreError as exc:
        print(f"vectorstore learn: cannot open the store: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            learner = NightlyLearner(store)
        except ConfigError as exc:
            print(f"vectorstore learn: configuration error: {exc}", file=sys.stderr)
            return 2
        report = learner.run(dry_run=dry_run)
    except Exception as exc:  # any failure: rolled back; cron sees exit code 1
        print(f"vectorstore learn: failed, nothing was written: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            store.close()
        except Exception:  # closing must not mask the result
            pass
    print(report.summary())
    return 0
