"""ReflexionMemory: episodes with self-critiques, retrieved by similarity (AgentDB's ReflexionMemory).

Behaviour follows AgentDB 2.0 (``docs/agentdb-semantics.md``); the differences are listed in
``docs/agent-memory.md``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from vectorstore.embedding import Embedder
from vectorstore.errors import CollectionNotFound
from vectorstore.records import Hit, Record
from vectorstore.store import MAX_K, AsyncCollection, AsyncStore
from vectorstore.sync import Store

from ._base import (
    DAY,
    AsyncMemoryBase,
    Clock,
    SyncMemoryBase,
    check_bool,
    check_days,
    check_int,
    check_k,
    check_metadata,
    check_number,
    check_tags,
    check_text,
    js_fixed,
    optional_number,
    optional_text,
)
from .errors import InvalidMemoryInput
from .records import Episode, TaskStats, record_id
from .schema import Collections

RECENT_DAYS = 7  # improvement_trend compares the last 7 days with the time before


def episode_text(task: str, critique: str | None, output: str | None) -> str:
    """The text AgentDB embeds for an episode: ``task[\\ncritique][\\noutput]`` (never the input)."""
    parts = [task]
    if critique:
        parts.append(critique)
    if output:
        parts.append(output)
    return "\n".join(parts)


def query_text(task: str, current_state: str = "") -> str:
    return f"{task}\n{current_state}" if current_state else task


def mean(values: Sequence[float]) -> float | None:
    """SQL ``AVG``: None for no values."""
    return math.fsum(values) / len(values) if values else None


def window_filter(now: int, days: float | None) -> list[dict[str, Any]]:
    """``ts > now - days*86400`` (integer ts, so ``> floor(cutoff)`` is the same test)."""
    if not days:
        return []
    return [{"ts": {"$gt": math.floor(now - days * DAY)}}]


def where_all(conditions: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}


def _reward_key(reward: Any) -> float:
    return -math.inf if reward is None else float(reward)


def by_reward(hit: Hit) -> tuple[Any, ...]:
    """AgentDB's order among equal similarities in ``retrieveRelevant``: its SQL reads the rows
    through the ``reward DESC`` index (``ORDER BY e.reward DESC``), so higher reward first, NULL
    last, then ascending id; JavaScript's stable sort on similarity keeps that order."""
    return (-_reward_key(hit.fields.get("reward")), record_id(hit))


async def ranked_search(col: AsyncCollection, vector: Any, k: int, where: Any,
                        tie: Callable[[Hit], Any] = by_reward, threshold: float | None = None) -> list[Hit]:
    """The ``k`` most similar records, equal similarities ordered by ``tie`` (the order AgentDB's
    SQL reads the rows in, which its stable sort on similarity keeps). Searches deeper while the
    k-th place is tied, so a tie at the cut is resolved by ``tie`` too."""
    n = k
    while True:
        hits = await col.search(vector, n, where=where, threshold=threshold)
        if len(hits) < n or n >= MAX_K or hits[-1].similarity < hits[k - 1].similarity:
            break
        n = min(n * 4, MAX_K)
    hits.sort(key=lambda h: (-h.similarity, tie(h)))
    return hits[:k]


def recent_order(record: Record) -> tuple[Any, ...]:
    """``getRecentEpisodes``' order: ``ORDER BY ts DESC`` (NULL last) over rows read through the
    ``session_id`` index, i.e. in ascending id: SQLite's sort keeps that order among equal ``ts``,
    so episodes of the same second come back oldest id first."""
    ts = record.fields.get("ts")
    return (ts is None, -(ts or 0), record_id(record))


class AsyncReflexionMemory(AsyncMemoryBase):
    """Episodic replay memory over an :class:`~vectorstore.AsyncStore` (collection ``episodes``).

    ``embedder`` overrides the default embedder (``vectorstore.embedding.get_embedder``);
    ``dim`` the dimension (default ``AGENTDB_VECTOR_DIM``, else 384); ``clock`` the time source
    (unix seconds; for tests).
    """

    def __init__(self, store: AsyncStore, *, embedder: Embedder | None = None, dim: int | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(store, embedder=embedder, dim=dim, clock=clock)

    async def _episodes(self) -> AsyncCollection:
        return (await self._collections()).episodes

    async def store_episode(self, *, session_id: str, task: str, reward: float, success: bool,
                            input: str | None = None, output: str | None = None, critique: str | None = None,
                            latency_ms: float | None = None, tokens_used: int | None = None,
                            tags: Sequence[str] | None = None, metadata: dict[str, Any] | None = None,
                            embedding: Sequence[float] | None = None) -> int:
        """Store an episode; returns its new id. ``ts`` and ``created_at`` are now. As in AgentDB,
        empty ``input``/``output``/``critique`` and zero ``latency_ms``/``tokens_used`` are stored
        as NULL. The embedding is of ``task[\\ncritique][\\noutput]`` unless ``embedding`` is given."""
        session_id = check_text(session_id, "session_id")
        task = check_text(task, "task")
        reward_value = check_number(reward, "reward")
        success_value = check_bool(success, "success")
        input_text = optional_text(input, "input")
        output_text = optional_text(output, "output")
        critique_text = optional_text(critique, "critique")
        latency = optional_number(latency_ms, "latency_ms") or None
        tokens = None if tokens_used is None else (check_int(tokens_used, "tokens_used") or None)
        tag_list = check_tags(tags)
        meta = check_metadata(metadata)
        vector = await self._vector_for(episode_text(task, critique_text, output_text), embedding)
        now = self._now()
        fields = {"ts": now, "session_id": session_id, "task": task, "input": input_text, "output": output_text,
                  "critique": critique_text, "reward": reward_value, "success": int(success_value),
                  "latency_ms": latency, "tokens_used": tokens, "tags": tag_list, "created_at": now}
        col = await self._episodes()
        try:
            ids = await col.insert([{"vector": vector, "fields": fields, "metadata": meta}])
        except CollectionNotFound:
            self._forget_collections()
            raise
        return int(ids[0])

    async def get_episode(self, episode_id: int) -> Episode | None:
        """The episode with this id, or None."""
        col = await self._episodes()
        found = await col.get([check_int(episode_id, "episode_id")])
        return Episode.from_record(found[0]) if found else None

    def _filters(self, min_reward: object, only_failures: bool, only_successes: bool,
                 time_window_days: object) -> dict[str, Any] | None:
        if only_failures and only_successes:
            raise InvalidMemoryInput("only_failures and only_successes exclude each other; pass at most one")
        conds: list[dict[str, Any]] = []
        if min_reward is not None:
            conds.append({"reward": {"$gte": check_number(min_reward, "min_reward")}})
        if only_failures:
            conds.append({"success": 0})
        if only_successes:
            conds.append({"success": 1})
        conds += window_filter(self._now(), check_days(time_window_days, "time_window_days"))
        return where_all(conds)

    async def retrieve_relevant(self, task: str, *, current_state: str = "", k: int = 5,
                                min_reward: float | None = None, only_failures: bool = False,
                                only_successes: bool = False, time_window_days: float | None = None
                                ) -> list[Episode]:
        """The ``k`` episodes most similar to ``task`` (``task\\ncurrent_state``), each with its
        ``similarity``; filtered first by ``reward >= min_reward``, success, and
        ``ts > now - time_window_days`` (0 or None: no window). Equal similarities: higher reward
        first, then lower id (:func:`by_reward`)."""
        task = check_text(task, "task")
        if not isinstance(current_state, str):
            raise InvalidMemoryInput(f"current_state must be a str, got {type(current_state).__name__}")
        k = check_k(k)
        where = self._filters(min_reward, bool(only_failures), bool(only_successes), time_window_days)
        vector = await self._vector_for(query_text(task, current_state), None)
        hits = await ranked_search(await self._episodes(), vector, k, where)
        return [Episode.from_record(h) for h in hits]

    async def get_task_stats(self, task: str, time_window_days: float | None = None) -> TaskStats:
        """Statistics of the episodes of exactly this task (within the window, if given).

        ``success_rate`` = share with success 1; ``avg_reward``/``avg_latency`` = means ignoring
        NULLs (0 when none); ``improvement_trend`` = (recent - older) / older, recent being the
        mean reward of the last 7 days and older the mean before (0 when either is missing or 0).
        """
        task = check_text(task, "task")
        now = self._now()
        conds: list[dict[str, Any]] = [{"task": task}]
        conds += window_filter(now, check_days(time_window_days, "time_window_days"))
        col = await self._episodes()
        rows = [r.fields async for r in col.scan(where=where_all(conds))]
        recent_cut = now - RECENT_DAYS * DAY
        rewards = [float(f["reward"]) for f in rows if f.get("reward") is not None]
        recent = mean([float(f["reward"]) for f in rows if f.get("reward") is not None
                       and f.get("ts") is not None and f["ts"] > recent_cut])
        older = mean([float(f["reward"]) for f in rows if f.get("reward") is not None
                      and f.get("ts") is not None and f["ts"] <= recent_cut])
        trend = (recent - older) / older if recent and older else 0.0
        return TaskStats(
            total_attempts=len(rows),
            success_rate=mean([1.0 if f.get("success") == 1 else 0.0 for f in rows]) or 0.0,
            avg_reward=mean(rewards) or 0.0,
            avg_latency=mean([float(f["latency_ms"]) for f in rows if f.get("latency_ms") is not None]) or 0.0,
            improvement_trend=trend,
        )

    async def get_critique_summary(self, task: str, *, current_state: str = "", min_reward: float | None = None,
                                   time_window_days: float | None = None) -> str:
        """The critiques of the 3 most similar failures, numbered, as AgentDB formats them."""
        failures = await self.retrieve_relevant(task, current_state=current_state, k=3, min_reward=min_reward,
                                                only_failures=True, time_window_days=time_window_days)
        if not failures:
            return "No prior failures found for this task."
        lines = [f"{i + 1}. {ep.critique} (reward: {_fixed2(ep.reward)})"
                 for i, ep in enumerate(e for e in failures if e.critique)]
        return "Prior failures and lessons learned:\n" + "\n".join(lines)

    async def get_success_strategies(self, task: str, *, current_state: str = "",
                                     time_window_days: float | None = None) -> str:
        """The outputs (first 200 characters) of the 3 most similar successes with reward >= 0.7."""
        successes = await self.retrieve_relevant(task, current_state=current_state, k=3, min_reward=0.7,
                                                 only_successes=True, time_window_days=time_window_days)
        if not successes:
            return "No successful strategies found for this task."
        lines = [f"{i + 1}. Approach (reward {_fixed2(ep.reward)}): "
                 f"{(ep.output or '')[:200] or 'No output recorded'}..." for i, ep in enumerate(successes)]
        return "Successful strategies:\n" + "\n".join(lines)

    async def get_recent_episodes(self, session_id: str, limit: int = 10) -> list[Episode]:
        """The session's ``limit`` latest episodes, newest ``ts`` first; episodes with the same
        ``ts`` in ascending id, as AgentDB returns them (:func:`recent_order`); NULL ``ts`` last."""
        session_id = check_text(session_id, "session_id")
        limit = check_k(limit, "limit")
        col = await self._episodes()
        records = [r async for r in col.scan(where={"session_id": session_id})]
        records.sort(key=recent_order)
        return [Episode.from_record(r) for r in records[:limit]]

    async def prune_episodes(self, *, min_reward: float = 0.3, max_age_days: float = 30,
                             keep_min_per_task: int = 5) -> int:
        """Delete old, low-reward episodes, keeping at least ``keep_min_per_task`` of them per task.

        Candidates: ``reward < min_reward`` and ``ts < now - max_age_days``. Per task they are
        ranked by reward (highest first, then lowest id); those ranked beyond
        ``keep_min_per_task`` are deleted, with their embeddings. Returns the number deleted."""
        min_reward_value = check_number(min_reward, "min_reward")
        age = check_number(max_age_days, "max_age_days")
        if age < 0:
            raise InvalidMemoryInput(f"max_age_days must not be negative, got {max_age_days!r}")
        keep = check_int(keep_min_per_task, "keep_min_per_task", minimum=0)
        cutoff = math.ceil(self._now() - age * DAY)

        async def work(cols: Collections) -> int:
            where = {"reward": {"$lt": min_reward_value}, "ts": {"$lt": cutoff}}
            by_task: dict[str, list[Record]] = defaultdict(list)
            async for record in cols.episodes.scan(where=where):
                by_task[record.fields["task"]].append(record)
            doomed: list[int] = []
            for records in by_task.values():
                records.sort(key=lambda r: (-float(r.fields["reward"]), record_id(r)))
                doomed += [record_id(r) for r in records[keep:]]
            return await cols.episodes.delete(doomed) if doomed else 0

        return await self._atomic(work)


def _fixed2(value: float | None) -> str:
    return "null" if value is None else js_fixed(value, 2)


class ReflexionMemory(SyncMemoryBase):
    """Sync twin of :class:`AsyncReflexionMemory` over a :class:`~vectorstore.Store`."""

    def __init__(self, store: Store, *, embedder: Embedder | None = None, dim: int | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(store)
        self._inner = AsyncReflexionMemory(store.async_store, embedder=embedder, dim=dim, clock=clock)
        store.run(self._inner.setup())

    @property
    def async_memory(self) -> AsyncReflexionMemory:
        return self._inner

    def store_episode(self, *, session_id: str, task: str, reward: float, success: bool,
                      input: str | None = None, output: str | None = None, critique: str | None = None,
                      latency_ms: float | None = None, tokens_used: int | None = None,
                      tags: Sequence[str] | None = None, metadata: dict[str, Any] | None = None,
                      embedding: Sequence[float] | None = None) -> int:
        return self._store.run(self._inner.store_episode(
            session_id=session_id, task=task, reward=reward, success=success, input=input, output=output,
            critique=critique, latency_ms=latency_ms, tokens_used=tokens_used, tags=tags, metadata=metadata,
            embedding=embedding))

    def get_episode(self, episode_id: int) -> Episode | None:
        return self._store.run(self._inner.get_episode(episode_id))

    def retrieve_relevant(self, task: str, *, current_state: str = "", k: int = 5, min_reward: float | None = None,
                          only_failures: bool = False, only_successes: bool = False,
                          time_window_days: float | None = None) -> list[Episode]:
        return self._store.run(self._inner.retrieve_relevant(
            task, current_state=current_state, k=k, min_reward=min_reward, only_failures=only_failures,
            only_successes=only_successes, time_window_days=time_window_days))

    def get_task_stats(self, task: str, time_window_days: float | None = None) -> TaskStats:
        return self._store.run(self._inner.get_task_stats(task, time_window_days))

    def get_critique_summary(self, task: str, *, current_state: str = "", min_reward: float | None = None,
                             time_window_days: float | None = None) -> str:
        return self._store.run(self._inner.get_critique_summary(
            task, current_state=current_state, min_reward=min_reward, time_window_days=time_window_days))

    def get_success_strategies(self, task: str, *, current_state: str = "",
                               time_window_days: float | None = None) -> str:
        return self._store.run(self._inner.get_success_strategies(
            task, current_state=current_state, time_window_days=time_window_days))

    def get_recent_episodes(self, session_id: str, limit: int = 10) -> list[Episode]:
        return self._store.run(self._inner.get_recent_episodes(session_id, limit))

    def prune_episodes(self, *, min_reward: float = 0.3, max_age_days: float = 30, keep_min_per_task: int = 5) -> int:
        return self._store.run(self._inner.prune_episodes(
            min_reward=min_reward, max_age_days=max_age_days, keep_min_per_task=keep_min_per_task))
