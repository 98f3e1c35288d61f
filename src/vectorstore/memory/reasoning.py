"""ReasoningBank: reasoning patterns (task type + approach) found by similarity (AgentDB's
ReasoningBank). Behaviour follows AgentDB 2.0 (``docs/agentdb-semantics.md``); the differences are
listed in ``docs/agent-memory.md``."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from vectorstore.embedding import Embedder
from vectorstore.records import Hit, Record
from vectorstore.store import AsyncCollection, AsyncStore
from vectorstore.sync import Store

from ._base import (
    DAY,
    AsyncMemoryBase,
    Clock,
    SyncMemoryBase,
    check_bool,
    check_embedding,
    check_id,
    check_int,
    check_k,
    check_metadata,
    check_number,
    check_tags,
    check_text,
    optional_number,
)
from .errors import InvalidMemoryInput, PatternNotFound
from .records import PatternStats, ReasoningPattern, TaskTypeCount, record_id
from .reflexion import mean, ranked_search, where_all
from .schema import Collections

RECENT_DAYS = 7
HIGH_PERFORMING = 0.8
TOP_TASK_TYPES = 10


def pattern_text(task_type: str, approach: str) -> str:
    """The text AgentDB embeds for a pattern: ``"task_type: approach"``."""
    return f"{task_type}: {approach}"


def fold_outcomes(fields: dict[str, Any], outcomes: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Fold ``(success 0/1, reward)`` outcomes into ``uses``, ``success_rate`` and ``avg_reward``
    one at a time, as AgentDB's ``updatePatternStats`` does (``(old * uses + x) / (uses + 1)``)."""
    uses = int(fields.get("uses") or 0)
    rate = float(fields.get("success_rate") or 0.0)
    reward_mean = float(fields.get("avg_reward") or 0.0)
    for success, reward in outcomes:
        rate = (rate * uses + success) / (uses + 1)
        reward_mean = (reward_mean * uses + reward) / (uses + 1)
        uses += 1
    return {**fields, "uses": uses, "success_rate": rate, "avg_reward": reward_mean}


def tie_order(*, by_success_rate: bool) -> Callable[[Record | Hit], tuple[Any, ...]]:
    """The order ``searchPatterns`` keeps among equal similarities: the order its SQL reads the
    rows in, which JavaScript's stable sort on similarity keeps. With a ``minSuccessRate`` filter
    and no ``taskType`` filter SQLite reads them through the (ascending) ``success_rate`` index:
    lower success rate first, then ascending id; otherwise in ascending id."""
    if by_success_rate:
        return lambda r: (r.fields.get("success_rate") is None, r.fields.get("success_rate") or 0.0, record_id(r))
    return lambda r: (record_id(r),)


class AsyncReasoningBank(AsyncMemoryBase):
    """Reasoning patterns over an :class:`~vectorstore.AsyncStore` (collection ``reasoning_patterns``).
    Arguments as :class:`~vectorstore.memory.AsyncReflexionMemory`."""

    def __init__(self, store: AsyncStore, *, embedder: Embedder | None = None, dim: int | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(store, embedder=embedder, dim=dim, clock=clock)

    async def _patterns(self) -> AsyncCollection:
        return (await self._collections()).reasoning_patterns

    async def _insert_pattern(self, cols: Collections, fields: dict[str, Any], metadata: dict[str, Any],
                              vector: Any) -> int:
        ids = await cols.reasoning_patterns.insert([{"vector": vector, "fields": fields, "metadata": metadata}])
        return int(ids[0])

    async def store_pattern(self, *, task_type: str, approach: str, success_rate: float, uses: int | None = None,
                            avg_reward: float | None = None, tags: Sequence[str] | None = None,
                            metadata: dict[str, Any] | None = None, embedding: Sequence[float] | None = None) -> int:
        """Store a pattern; returns its id. ``ts`` is now; ``uses`` and ``avg_reward`` default to 0.
        The embedding is of ``"task_type: approach"`` unless ``embedding`` is given."""
        task_type = check_text(task_type, "task_type")
        approach = check_text(approach, "approach")
        fields = {"ts": self._now(), "task_type": task_type, "approach": approach,
                  "success_rate": check_number(success_rate, "success_rate"),
                  "uses": (check_int(uses, "uses", minimum=0) if uses is not None else 0),
                  "avg_reward": optional_number(avg_reward, "avg_reward") or 0.0, "tags": check_tags(tags)}
        meta = check_metadata(metadata)
        vector = await self._vector_for(pattern_text(task_type, approach), embedding)
        col = await self._patterns()
        ids = await col.insert([{"vector": vector, "fields": fields, "metadata": meta}])
        return int(ids[0])

    async def search_patterns(self, task: str | None = None, *, embedding: Sequence[float] | None = None, k: int = 10,
                              threshold: float | None = 0.0, task_type: str | None = None,
                              min_success_rate: float | None = None, tags: Sequence[str] | None = None
                              ) -> list[ReasoningPattern]:
        """Patterns most similar to ``task`` (embedded) or to ``embedding``, each with its
        ``similarity``: filtered by exact ``task_type``, ``success_rate >= min_success_rate`` and
        any of ``tags``; only similarities ``>= threshold`` (default 0); top ``k``. Equal
        similarities come in the order AgentDB's SQL reads the rows (:func:`tie_order`)."""
        if (task is None) == (embedding is None):
            raise InvalidMemoryInput("search_patterns() needs exactly one of task='...' or embedding=[...]")
        k = check_k(k)
        floor = 0.0 if threshold is None else check_number(threshold, "threshold")
        conds: list[dict[str, Any]] = []
        if task_type is not None and check_text(task_type, "task_type"):
            conds.append({"task_type": task_type})
        if min_success_rate is not None:
            conds.append({"success_rate": {"$gte": check_number(min_success_rate, "min_success_rate")}})
        tag_list = check_tags(tags)
        if tag_list:
            conds.append({"tags": {"$overlap": tag_list}})
        where = where_all(conds)
        tie = tie_order(by_success_rate=min_success_rate is not None and task_type is None)
        if embedding is not None:
            vector = check_embedding(embedding, self._dim)
        else:
            vector = await self._vector_for(check_text(task, "task"), None)
        col = await self._patterns()
        if not vector.any():  # AgentDB: a zero denominator makes every similarity 0
            if floor > 0.0:
                return []
            found = [record async for record in col.scan(where=where) if record.vector is not None]
            found.sort(key=tie)
            return [ReasoningPattern.from_record(record, similarity=0.0) for record in found[:k]]
        hits = await ranked_search(col, vector, k, where, tie=tie, threshold=floor)
        return [ReasoningPattern.from_record(h, similarity=h.similarity) for h in hits]

    async def get_pattern_stats(self) -> PatternStats:
        """Totals over every pattern: count, mean success rate and uses, the 10 most common task
        types, patterns from the last 7 days, and patterns with success rate >= 0.8."""
        now = self._now()
        recent_cut = math.ceil(now - RECENT_DAYS * DAY)
        col = await self._patterns()
        rows = [r.fields async for r in col.scan()]
        types = Counter(f.get("task_type") for f in rows)
        top = sorted(types.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or ""))[:TOP_TASK_TYPES]
        return PatternStats(
            total_patterns=len(rows),
            avg_success_rate=mean([float(f["success_rate"]) for f in rows if f.get("success_rate") is not None]) or 0.0,
            avg_uses=mean([float(f["uses"]) for f in rows if f.get("uses") is not None]) or 0.0,
            top_task_types=[TaskTypeCount(task_type=t, count=n) for t, n in top if t is not None],
            recent_patterns=sum(1 for f in rows if f.get("ts") is not None and f["ts"] >= recent_cut),
            high_performing_patterns=sum(1 for f in rows if f.get("success_rate") is not None
                                         and f["success_rate"] >= HIGH_PERFORMING),
        )

    async def update_pattern_stats(self, pattern_id: int, success: bool, reward: float) -> ReasoningPattern:
        """Record one outcome: ``uses + 1`` and running means of success rate and reward. Returns
        the updated pattern; :class:`PatternNotFound` if there is none."""
        pid = check_id(pattern_id, "pattern_id")
        outcome = (1.0 if check_bool(success, "success") else 0.0, check_number(reward, "reward"))

        async def work(cols: Collections) -> ReasoningPattern:
            found = await cols.reasoning_patterns.get([pid])
            if not found:
                raise PatternNotFound(f"Pattern {pid} not found")
            record = found[0]
            updated = Record(record.id, record.vector, fold_outcomes(dict(record.fields), [outcome]),
                             record.metadata)
            await cols.reasoning_patterns.upsert([updated])
            return ReasoningPattern.from_record(updated)

        return await self._atomic(work)

    async def record_outcome(self, pattern_id: int, success: bool, reward: float | None = None) -> ReasoningPattern:
        """:meth:`update_pattern_stats` with ``reward`` defaulting to 1.0 on success, 0.0 on failure."""
        ok = check_bool(success, "success")
        value = (1.0 if ok else 0.0) if reward is None else check_number(reward, "reward")
        return await self.update_pattern_stats(pattern_id, ok, value)

    async def get_pattern(self, pattern_id: int) -> ReasoningPattern | None:
        """The pattern with this id, or None."""
        found = await (await self._patterns()).get([check_id(pattern_id, "pattern_id")])
        return ReasoningPattern.from_record(found[0]) if found else None

    async def delete_pattern(self, pattern_id: int) -> bool:
        """Delete a pattern (and its embedding); True if it existed."""
        return await (await self._patterns()).delete([check_id(pattern_id, "pattern_id")]) > 0


class ReasoningBank(SyncMemoryBase):
    """Sync twin of :class:`AsyncReasoningBank` over a :class:`~vectorstore.Store`."""

    def __init__(self, store: Store, *, embedder: Embedder | None = None, dim: int | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(store)
        self._inner = AsyncReasoningBank(store.async_store, embedder=embedder, dim=dim, clock=clock)
        store.run(self._inner.setup())

    @property
    def async_memory(self) -> AsyncReasoningBank:
        return self._inner

    def store_pattern(self, *, task_type: str, approach: str, success_rate: float, uses: int | None = None,
                      avg_reward: float | None = None, tags: Sequence[str] | None = None,
                      metadata: dict[str, Any] | None = None, embedding: Sequence[float] | None = None) -> int:
        return self._store.run(self._inner.store_pattern(
            task_type=task_type, approach=approach, success_rate=success_rate, uses=uses, avg_reward=avg_reward,
            tags=tags, metadata=metadata, embedding=embedding))

    def search_patterns(self, task: str | None = None, *, embedding: Sequence[float] | None = None, k: int = 10,
                        threshold: float | None = 0.0, task_type: str | None = None,
                        min_success_rate: float | None = None, tags: Sequence[str] | None = None
                        ) -> list[ReasoningPattern]:
        return self._store.run(self._inner.search_patterns(
            task, embedding=embedding, k=k, threshold=threshold, task_type=task_type,
            min_success_rate=min_success_rate, tags=tags))

    def get_pattern_stats(self) -> PatternStats:
        return self._store.run(self._inner.get_pattern_stats())

    def update_pattern_stats(self, pattern_id: int, success: bool, reward: float) -> ReasoningPattern:
        return self._store.run(self._inner.update_pattern_stats(pattern_id, success, reward))

    def record_outcome(self, pattern_id: int, success: bool, reward: float | None = None) -> ReasoningPattern:
        return self._store.run(self._inner.record_outcome(pattern_id, success, reward))

    def get_pattern(self, pattern_id: int) -> ReasoningPattern | None:
        return self._store.run(self._inner.get_pattern(pattern_id))

    def delete_pattern(self, pattern_id: int) -> bool:
        return self._store.run(self._inner.delete_pattern(pattern_id))
