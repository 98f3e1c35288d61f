"""SkillLibrary: reusable skills, their links, and consolidation of episodes into skills
(AgentDB's SkillLibrary). Behaviour follows AgentDB 2.0 (``docs/agentdb-semantics.md``);
the differences are listed in ``docs/agent-memory.md``."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vectorstore.embedding import Embedder
from vectorstore.records import Record
from vectorstore.store import MAX_K, AsyncCollection, AsyncStore
from vectorstore.sync import Store

from ._base import (
    DAY,
    AsyncMemoryBase,
    Clock,
    SyncMemoryBase,
    check_bool,
    check_id,
    check_int,
    check_k,
    check_metadata,
    check_number,
    check_text,
    js_fixed,
    js_json,
    js_string,
    optional_number,
    optional_text,
)
from .errors import DuplicateSkill, InvalidMemoryInput, SkillNotFound, UnknownRelationship
from .records import ConsolidatedPattern, ConsolidationResult, Episode, Skill, SkillLink, SkillPlan, record_id
from .reflexion import mean
from .schema import Collections

RELATIONSHIPS = ("prerequisite", "alternative", "refinement", "composition")
DEFAULT_SIGNATURE: Mapping[str, Any] = {"inputs": {}, "outputs": {}}
CONSOLIDATED_SIGNATURE: Mapping[str, Any] = {"inputs": {"task": "string"}, "outputs": {"result": "any"}}

#: ``prefer_recent``: a skill used (else updated, else created) just now gains RECENCY_WEIGHT;
#: the boost halves every RECENCY_HALF_LIFE_DAYS.
RECENCY_WEIGHT = 0.1
RECENCY_HALF_LIFE_DAYS = 7.0


def skill_text(name: str, description: str | None, signature: Mapping[str, Any] | None) -> str:
    """The text AgentDB embeds: name, [description], the caller's signature as compact JSON
    (an empty line when none was given), joined by newlines."""
    parts = [name]
    if description:
        parts.append(description)
    parts.append(js_json(signature) if signature is not None else "")
    return "\n".join(parts)


def skill_score(similarity: float, success_rate: float | None, uses: int | None, avg_reward: float | None) -> float:
    """AgentDB's ranking: ``sim*0.4 + success_rate*0.3 + min(uses/1000, 1)*0.1 + avg_reward*0.2``."""
    return (similarity * 0.4 + (success_rate or 0.0) * 0.3 + min((uses or 0) / 1000, 1.0) * 0.1
            + (avg_reward or 0.0) * 0.2)


def recency_boost(now: int, last_used_at: int | None, updated_at: int | None, created_at: int | None) -> float:
    """The ``prefer_recent`` addition: ``0.1 * 0.5 ** (age_days / 7)``, age from the last use
    (else update, else creation); 0 when the skill has no timestamp."""
    stamp = next((t for t in (last_used_at, updated_at, created_at) if t is not None), None)
    if stamp is None:
        return 0.0
    age_days = max(0, now - stamp) / DAY
    return float(RECENCY_WEIGHT * 0.5 ** (age_days / RECENCY_HALF_LIFE_DAYS))


def pattern_confidence(sample_size: int, success_rate: float) -> float:
    return min(min(sample_size / 10, 1.0) * success_rate, 0.99)


# -- pattern extraction (AgentDB's extractPatternsFromEpisodes) ---------------------------

STOP_WORDS = frozenset([
    "the", "a", "an", "and", "or", "but", "in", "on", "at", "to", "for", "of", "with", "by", "from", "as", "is",
    "was", "are", "were", "been", "be", "have", "has", "had", "do", "does", "did", "will", "would", "should",
    "could", "may", "might", "must", "can", "this", "that", "these", "those",
])
_WORDS = re.compile(r"\b[a-z0-9_-]+\b", re.ASCII)


def keyword_frequency(texts: Sequence[str]) -> dict[str, int]:
    """Words longer than 3 characters, not stop words, counted in first-seen order."""
    freq: dict[str, int] = {}
    for text in texts:
        for word in _WORDS.findall(text.lower()):
            if len(word) > 3 and word not in STOP_WORDS:
                freq[word] = freq.get(word, 0) + 1
    return freq


def top_keywords(freq: Mapping[str, int], n: int) -> list[str]:
    """The ``n`` most frequent (ties: first seen first), then only those seen at least twice."""
    ranked = sorted(freq.items(), key=lambda kv: -kv[1])[:n]
    return [word for word, count in ranked if count >= 2]


def _js_key(value: Any, serial: int) -> tuple[Any, ...]:
    """SameValueZero identity of a JSON value in a JS Set: primitives by value, objects each distinct."""
    if value is None or isinstance(value, (bool, str)):
        return ("p", type(value).__name__, value)
    if isinstance(value, (int, float)):
        return ("n", float(value))
    return ("o", serial)


def metadata_patterns(metadatas: Sequence[Mapping[str, Any]]) -> list[str]:
    """``Consistent key: value`` for each metadata key with a single distinct value (keys in code
    point order: backends do not keep JSON key order)."""
    values: dict[str, dict[tuple[Any, ...], Any]] = {}
    serial = 0
    for meta in metadatas:
        for key in sorted(meta):
            serial += 1
            values.setdefault(key, {}).setdefault(_js_key(meta[key], serial), meta[key])
    return [f"Consistent {key}: {js_string(next(iter(seen.values())))}"
            for key, seen in values.items() if len(seen) == 1]


def learning_trend(episodes: Sequence[Episode]) -> str | None:
    """Compare the mean reward of the first and second half (by id) of at least 3 episodes."""
    if len(episodes) < 3:
        return None
    ordered = sorted(episodes, key=lambda e: e.id)
    half = len(ordered) // 2
    first = math.fsum(e.reward or 0.0 for e in ordered[:half]) / half
    second = math.fsum(e.reward or 0.0 for e in ordered[half:]) / (len(ordered) - half)
    if first == 0:
        improvement = math.nan if second == 0 else math.copysign(math.inf, second)
    else:
        improvement = (second - first) / first * 100
    if improvement > 10:
        return f"Strong learning curve (+{js_fixed(improvement, 0)}% improvement)"
    if improvement > 5:
        return f"Moderate learning curve (+{js_fixed(improvement, 0)}% improvement)"
    if abs(improvement) < 5:
        return f"Stable performance (±{js_fixed(abs(improvement), 0)}%)"
    return None


def extract_episode_patterns(episodes: Sequence[Episode]) -> tuple[list[str], list[str]]:
    """``(common_patterns, success_indicators)`` from successful episodes, as AgentDB computes them:
    top output keywords, top critique keywords, reward consistency, constant metadata, learning trend."""
    if not episodes:
        return [], []
    common: list[str] = []
    indicators: list[str] = []
    outputs = [e.output for e in episodes if e.output]
    if outputs:
        top = top_keywords(keyword_frequency(outputs), 5)
        if top:
            common.append(f"Common techniques: {', '.join(top)}")
    critiques = [e.critique for e in episodes if e.critique]
    if critiques:
        indicators += top_keywords(keyword_frequency(critiques), 3)
    rewards = [e.reward or 0.0 for e in episodes]
    average = math.fsum(rewards) / len(rewards)
    ratio = sum(1 for r in rewards if r > average) / len(rewards)
    if ratio > 0.6:
        indicators.append(f"High consistency ({js_fixed(ratio * 100, 0)}% above average)")
    common += metadata_patterns([e.metadata for e in episodes])
    trend = learning_trend(episodes)
    if trend:
        indicators.append(trend)
    return common, indicators


def check_relationship(value: object) -> str:
    if value not in RELATIONSHIPS:
        raise UnknownRelationship(f"unknown relationship {value!r}; use one of {', '.join(RELATIONSHIPS)}")
    return str(value)


def _desc(value: Any) -> tuple[bool, float]:
    """A sort key for ``ORDER BY value DESC``, with SQLite's NULLs last."""
    return (value is None, -float(value) if value is not None else 0.0)


def search_order(score: float, record: Record) -> tuple[Any, ...]:
    """``searchSkills``' order: score descending; equal scores keep the order AgentDB's SQL read
    the skills in (through the ``success_rate DESC`` index of its ``success_rate >= ?`` filter):
    higher success rate first, then ascending id."""
    return (-score, *_desc(record.fields.get("success_rate")), record_id(record))


class AsyncSkillLibrary(AsyncMemoryBase):
    """Skills over an :class:`~vectorstore.AsyncStore` (collections ``skills`` and ``skill_links``;
    consolidation reads ``episodes``). Arguments as :class:`~vectorstore.memory.AsyncReflexionMemory`."""

    def __init__(self, store: AsyncStore, *, embedder: Embedder | None = None, dim: int | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(store, embedder=embedder, dim=dim, clock=clock)

    # -- helpers used inside transactions (also by the nightly learner) --------------------

    async def _find_by_name(self, skills: AsyncCollection, name: str) -> Record | None:
        found = await skills.page(None, 1, where={"name": name})
        return found[0] if found else None

    async def _insert_skill(self, cols: Collections, fields: dict[str, Any], metadata: dict[str, Any],
                            vector: Any) -> int:
        if await self._find_by_name(cols.skills, fields["name"]) is not None:
            raise DuplicateSkill(f"a skill named {fields['name']!r} exists already; skill names are unique "
                                 "(update it with update_skill_stats, or choose another name)")
        ids = await cols.skills.insert([{"vector": vector, "fields": fields, "metadata": metadata}])
        return int(ids[0])

    async def _get_skill_record(self, skills: AsyncCollection, skill_id: int) -> Record:
        found = await skills.get([skill_id])
        if not found:
            raise SkillNotFound(f"Skill {skill_id} not found")
        return found[0]

    async def _apply_stats(self, skills: AsyncCollection, record: Record,
                           observations: Sequence[tuple[float, float, float]]) -> Record:
        """Fold ``(success 0/1, reward, latency)`` observations into the running means, one at a
        time as AgentDB's UPDATE does; sets ``updated_at`` and ``last_used_at`` to now."""
        f = dict(record.fields)
        uses = int(f.get("uses") or 0)
        success_rate = float(f.get("success_rate") or 0.0)
        avg_reward = float(f.get("avg_reward") or 0.0)
        avg_latency = float(f.get("avg_latency_ms") or 0.0)
        for success, reward, latency in observations:
            success_rate = (success_rate * uses + success) / (uses + 1)
            avg_reward = (avg_reward * uses + reward) / (uses + 1)
            avg_latency = (avg_latency * uses + latency) / (uses + 1)
            uses += 1
        now = self._now()
        f.update(uses=uses, success_rate=success_rate, avg_reward=avg_reward, avg_latency_ms=avg_latency,
                 updated_at=now, last_used_at=now)
        updated = Record(record.id, record.vector, f, record.metadata)
        await skills.upsert([updated])
        return updated

    # -- public API --------------------------------------------------------------------------

    async def create_skill(self, *, name: str, success_rate: float, description: str | None = None,
                           signature: Mapping[str, Any] | None = None, code: str | None = None,
                           uses: int | None = None, avg_reward: float | None = None,
                           avg_latency_ms: float | None = None, created_from_episode: int | None = None,
                           metadata: dict[str, Any] | None = None, embedding: Sequence[float] | None = None) -> int:
        """Create a skill; returns its id. Names are unique (:class:`DuplicateSkill`). ``signature``
        defaults to ``{"inputs": {}, "outputs": {}}``; ``uses``, ``avg_reward`` and
        ``avg_latency_ms`` to 0. The embedding is of ``name\\ndescription\\nsignature``."""
        name = check_text(name, "name")
        rate = check_number(success_rate, "success_rate")
        description_text = optional_text(description, "description")
        code_text = optional_text(code, "code")
        if signature is not None and not isinstance(signature, Mapping):
            raise InvalidMemoryInput(f"signature must be a dict such as {{'inputs': {{}}, 'outputs': {{}}}}, "
                                     f"got {type(signature).__name__}")
        uses_value = 0 if uses is None else check_int(uses, "uses", minimum=0)
        reward_value = optional_number(avg_reward, "avg_reward") or 0.0
        latency_value = optional_number(avg_latency_ms, "avg_latency_ms") or 0.0
        episode = None if created_from_episode is None else check_id(created_from_episode, "created_from_episode")
        meta = check_metadata(metadata)
        vector = await self._vector_for(skill_text(name, description_text, signature), embedding)
        now = self._now()
        fields = {"name": name, "description": description_text,
                  "signature": dict(signature) if signature is not None else dict(DEFAULT_SIGNATURE),
                  "code": code_text, "success_rate": rate, "uses": uses_value, "avg_reward": reward_value,
                  "avg_latency_ms": latency_value, "created_from_episode": episode, "created_at": now,
                  "updated_at": now, "last_used_at": None}

        async def work(cols: Collections) -> int:
            return await self._insert_skill(cols, fields, meta, vector)

        return await self._atomic(work)

    async def get_skill(self, skill_id: int) -> Skill | None:
        """The skill with this id, or None."""
        skills = (await self._collections()).skills
        found = await skills.get([check_id(skill_id, "skill_id")])
        return Skill.from_record(found[0]) if found else None

    async def update_skill_stats(self, skill_id: int, success: bool, reward: float, latency_ms: float) -> Skill:
        """Record one use: ``uses + 1`` and running means of success rate, reward and latency
        (``(old * uses + x) / (uses + 1)``); ``last_used_at`` and ``updated_at`` become now
        (AgentDB leaves them unchanged). Returns the updated skill; :class:`SkillNotFound` if none."""
        sid = check_id(skill_id, "skill_id")
        observation = (1.0 if check_bool(success, "success") else 0.0, check_number(reward, "reward"),
                       check_number(latency_ms, "latency_ms"))

        async def work(cols: Collections) -> Skill:
            record = await self._get_skill_record(cols.skills, sid)
            return Skill.from_record(await self._apply_stats(cols.skills, record, [observation]))

        return await self._atomic(work)

    async def search_skills(self, task: str, *, k: int = 5, min_success_rate: float | None = 0.5,
                            prefer_recent: bool = False) -> list[Skill]:
        """Skills for ``task``, best first, each with ``similarity`` and ``score``.

        Every skill with ``success_rate >= min_success_rate`` and an embedding is scored
        ``sim*0.4 + success_rate*0.3 + min(uses/1000, 1)*0.1 + avg_reward*0.2``; with
        ``prefer_recent`` a recency boost (:func:`recency_boost`) is added (AgentDB ignores the flag).
        Equal scores: higher success rate first, then lower id (:func:`search_order`)."""
        task = check_text(task, "task")
        k = check_k(k)
        where = None if min_success_rate is None else {
            "success_rate": {"$gte": check_number(min_success_rate, "min_success_rate")}}
        vector = await self._vector_for(task, None)
        skills = (await self._collections()).skills
        candidates: list[tuple[Record, float]] = []
        total = await skills.count(where)
        if total <= MAX_K:
            if total:
                candidates = [(Record(h.id, None, h.fields, h.metadata), h.similarity)
                              for h in await skills.search(vector, total, where=where)]
        else:  # more candidates than one search returns: score them all here
            query = vector.astype(np.float64)
            query /= np.linalg.norm(query)
            async for record in skills.scan(where=where):
                if record.vector is None:
                    continue
                v = np.asarray(record.vector, dtype=np.float64)
                norm = float(np.linalg.norm(v))
                candidates.append((record, float(v @ query) / norm if norm else 0.0))
        now = self._now()
        scored = []
        for record, similarity in candidates:
            f = record.fields
            score = skill_score(similarity, f.get("success_rate"), f.get("uses"), f.get("avg_reward"))
            if prefer_recent:
                score += recency_boost(now, f.get("last_used_at"), f.get("updated_at"), f.get("created_at"))
            scored.append((score, similarity, record))
        scored.sort(key=lambda t: search_order(t[0], t[2]))
        return [Skill.from_record(r, similarity=sim, score=score) for score, sim, r in scored[:k]]

    async def retrieve_skills(self, task: str, *, k: int = 5, min_success_rate: float | None = 0.5,
                              prefer_recent: bool = False) -> list[Skill]:
        """Same as :meth:`search_skills` (AgentDB has both names)."""
        return await self.search_skills(task, k=k, min_success_rate=min_success_rate, prefer_recent=prefer_recent)

    async def link_skills(self, *, parent_skill_id: int, child_skill_id: int, relationship: str,
                          weight: float = 1.0, metadata: dict[str, Any] | None = None) -> int:
        """Link two skills; returns the link's id. A link is unique per (parent, child,
        relationship): linking again updates only its weight. Relationships: prerequisite,
        alternative, refinement, composition (:class:`UnknownRelationship` otherwise); both skills
        must exist (:class:`SkillNotFound`)."""
        parent = check_id(parent_skill_id, "parent_skill_id")
        child = check_id(child_skill_id, "child_skill_id")
        kind = check_relationship(relationship)
        weight_value = check_number(weight, "weight")
        meta = check_metadata(metadata)

        async def work(cols: Collections) -> int:
            for sid in dict.fromkeys((parent, child)):
                await self._get_skill_record(cols.skills, sid)
            existing = await cols.skill_links.page(None, 1, where={
                "parent_skill_id": parent, "child_skill_id": child, "relationship": kind})
            if existing:
                link = existing[0]
                await cols.skill_links.upsert([{"id": link.id, "vector": None,
                                                "fields": {**link.fields, "weight": weight_value},
                                                "metadata": link.metadata}])
                return record_id(link)
            ids = await cols.skill_links.insert([{"vector": None, "metadata": meta, "fields": {
                "parent_skill_id": parent, "child_skill_id": child, "relationship": kind, "weight": weight_value}}])
            return int(ids[0])

        return await self._atomic(work)

    async def get_skill_links(self, skill_id: int) -> list[SkillLink]:
        """Links from this skill (it is the parent), by id."""
        links = (await self._collections()).skill_links
        sid = check_id(skill_id, "skill_id")
        return [SkillLink.from_record(r) async for r in links.scan(where={"parent_skill_id": sid})]

    async def get_skill_plan(self, skill_id: int) -> SkillPlan:
        """The skill and the children of its links: prerequisites (by weight), alternatives (by
        weight, then success rate), refinements (by weight, then newest), compositions (by weight),
        each highest first with NULL last. Links tied on those keys come in the order they were
        made (ascending link id), as AgentDB's SQL returns them: it reads the links through their
        ``parent_skill_id`` index and SQLite's sort keeps that order among equal keys.
        :class:`SkillNotFound` ("Skill N not found") if there is no such skill."""
        sid = check_id(skill_id, "skill_id")
        cols = await self._collections()
        skill = Skill.from_record(await self._get_skill_record(cols.skills, sid))
        links = [r async for r in cols.skill_links.scan(where={"parent_skill_id": sid})]
        children = {record_id(r): Skill.from_record(r)
                    for r in await cols.skills.get(list(dict.fromkeys(int(link.fields["child_skill_id"])
                                                                      for link in links)))}
        groups: dict[str, list[tuple[Any, int, Skill]]] = defaultdict(list)
        for link in links:
            child = children.get(int(link.fields["child_skill_id"]))
            if child is not None:
                groups[link.fields["relationship"]].append((link.fields.get("weight"), record_id(link), child))

        def ordered(kind: str, extra: Callable[[Skill], tuple[Any, ...]] | None = None) -> list[Skill]:
            rows = groups.get(kind, [])
            rows.sort(key=lambda row: (*_desc(row[0]), *(extra(row[2]) if extra else ()), row[1]))
            return [child for _, _, child in rows]

        return SkillPlan(
            skill=skill,
            prerequisites=ordered("prerequisite"),
            alternatives=ordered("alternative", lambda s: _desc(s.success_rate)),
            refinements=ordered("refinement", lambda s: _desc(s.created_at)),
            compositions=ordered("composition"),
        )

    async def consolidate_episodes_into_skills(self, *, min_attempts: int = 3, min_reward: float = 0.7,
                                               time_window_days: float = 7, extract_patterns: bool = True
                                               ) -> ConsolidationResult:
        """Turn tasks with at least ``min_attempts`` episodes of ``reward >= min_reward`` in the
        last ``time_window_days`` into skills named after the task (an existing skill of that name
        gets one :meth:`update_skill_stats` use instead). One transaction."""
        attempts = check_int(min_attempts, "min_attempts", minimum=1)
        reward_floor = check_number(min_reward, "min_reward")
        days = check_number(time_window_days, "time_window_days")
        if days < 0:
            raise InvalidMemoryInput(f"time_window_days must not be negative, got {time_window_days!r}")
        extract = bool(extract_patterns)

        async def work(cols: Collections) -> ConsolidationResult:
            now = self._now()
            where = {"ts": {"$gt": math.floor(now - days * DAY)}, "reward": {"$gte": reward_floor}}
            groups: dict[str, list[Episode]] = defaultdict(list)
            async for record in cols.episodes.scan(where=where):
                episode = Episode.from_record(record)
                groups[episode.task].append(episode)
            created = updated = 0
            patterns: list[ConsolidatedPattern] = []
            for task in sorted(groups):
                episodes = groups[task]
                if len(episodes) < attempts:
                    continue
                ids = [e.id for e in episodes]
                stored_success = [1.0 if e.success else 0.0 for e in episodes if e.success is not None]
                success_rate = mean(stored_success) or 0.0
                avg_reward = mean([e.reward for e in episodes if e.reward is not None]) or 0.0
                avg_latency = mean([e.latency_ms for e in episodes if e.latency_ms is not None]) or 0.0
                common: list[str] = []
                indicators: list[str] = []
                description = "Auto-generated skill from successful episodes"
                if extract:
                    common, indicators = extract_episode_patterns([e for e in episodes if e.success])
                    if common:
                        description = (f"Skill learned from {len(ids)} successful episodes. "
                                       f"Common patterns: {', '.join(common[:3])}")
                    patterns.append(ConsolidatedPattern(task=task, common_patterns=common,
                                                        success_indicators=indicators, avg_reward=avg_reward))
                existing = await self._find_by_name(cols.skills, task)
                if existing is None:
                    meta = {"sourceEpisodes": ids, "autoGenerated": True, "consolidatedAt": int(self._clock() * 1000),
                            "extractedPatterns": common, "successIndicators": indicators,
                            "patternConfidence": pattern_confidence(len(ids), success_rate)}
                    signature = dict(CONSOLIDATED_SIGNATURE)
                    vector = await self._vector_for(skill_text(task, description, signature), None)
                    await self._insert_skill(cols, {
                        "name": task, "description": description, "signature": signature, "code": None,
                        "success_rate": success_rate, "uses": len(ids), "avg_reward": avg_reward,
                        "avg_latency_ms": avg_latency, "created_from_episode": max(ids), "created_at": now,
                        "updated_at": now, "last_used_at": None}, meta, vector)
                    created += 1
                else:
                    await self._apply_stats(cols.skills, existing,
                                            [(1.0 if success_rate > 0.5 else 0.0, avg_reward, avg_latency)])
                    updated += 1
            return ConsolidationResult(created=created, updated=updated, patterns=patterns)

        return await self._atomic(work)

    async def prune_skills(self, *, min_uses: int = 3, min_success_rate: float = 0.4, max_age_days: float = 60) -> int:
        """Delete skills with ``uses < min_uses`` and ``success_rate < min_success_rate`` created
        before ``now - max_age_days``, and their links. Returns the number of skills deleted."""
        uses = check_int(min_uses, "min_uses")
        rate = check_number(min_success_rate, "min_success_rate")
        age = check_number(max_age_days, "max_age_days")
        if age < 0:
            raise InvalidMemoryInput(f"max_age_days must not be negative, got {max_age_days!r}")

        async def work(cols: Collections) -> int:
            cutoff = math.ceil(self._now() - age * DAY)
            where = {"uses": {"$lt": uses}, "success_rate": {"$lt": rate}, "created_at": {"$lt": cutoff}}
            doomed = [record_id(r) async for r in cols.skills.scan(where=where)]
            if not doomed:
                return 0
            await cols.skill_links.delete(where={"$or": [{"parent_skill_id": {"$in": doomed}},
                                                         {"child_skill_id": {"$in": doomed}}]})
            return await cols.skills.delete(doomed)

        return await self._atomic(work)


class SkillLibrary(SyncMemoryBase):
    """Sync twin of :class:`AsyncSkillLibrary` over a :class:`~vectorstore.Store`."""

    def __init__(self, store: Store, *, embedder: Embedder | None = None, dim: int | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(store)
        self._inner = AsyncSkillLibrary(store.async_store, embedder=embedder, dim=dim, clock=clock)
        store.run(self._inner.setup())

    @property
    def async_memory(self) -> AsyncSkillLibrary:
        return self._inner

    def create_skill(self, *, name: str, success_rate: float, description: str | None = None,
                     signature: Mapping[str, Any] | None = None, code: str | None = None, uses: int | None = None,
                     avg_reward: float | None = None, avg_latency_ms: float | None = None,
                     created_from_episode: int | None = None, metadata: dict[str, Any] | None = None,
                     embedding: Sequence[float] | None = None) -> int:
        return self._store.run(self._inner.create_skill(
            name=name, success_rate=success_rate, description=description, signature=signature, code=code,
            uses=uses, avg_reward=avg_reward, avg_latency_ms=avg_latency_ms,
            created_from_episode=created_from_episode, metadata=metadata, embedding=embedding))

    def get_skill(self, skill_id: int) -> Skill | None:
        return self._store.run(self._inner.get_skill(skill_id))

    def update_skill_stats(self, skill_id: int, success: bool, reward: float, latency_ms: float) -> Skill:
        return self._store.run(self._inner.update_skill_stats(skill_id, success, reward, latency_ms))

    def search_skills(self, task: str, *, k: int = 5, min_success_rate: float | None = 0.5,
                      prefer_recent: bool = False) -> list[Skill]:
        return self._store.run(self._inner.search_skills(task, k=k, min_success_rate=min_success_rate,
                                                         prefer_recent=prefer_recent))

    def retrieve_skills(self, task: str, *, k: int = 5, min_success_rate: float | None = 0.5,
                        prefer_recent: bool = False) -> list[Skill]:
        return self._store.run(self._inner.retrieve_skills(task, k=k, min_success_rate=min_success_rate,
                                                           prefer_recent=prefer_recent))

    def link_skills(self, *, parent_skill_id: int, child_skill_id: int, relationship: str, weight: float = 1.0,
                    metadata: dict[str, Any] | None = None) -> int:
        return self._store.run(self._inner.link_skills(parent_skill_id=parent_skill_id, child_skill_id=child_skill_id,
                                                       relationship=relationship, weight=weight, metadata=metadata))

    def get_skill_links(self, skill_id: int) -> list[SkillLink]:
        return self._store.run(self._inner.get_skill_links(skill_id))

    def get_skill_plan(self, skill_id: int) -> SkillPlan:
        return self._store.run(self._inner.get_skill_plan(skill_id))

    def consolidate_episodes_into_skills(self, *, min_attempts: int = 3, min_reward: float = 0.7,
                                         time_window_days: float = 7, extract_patterns: bool = True
                                         ) -> ConsolidationResult:
        return self._store.run(self._inner.consolidate_episodes_into_skills(
            min_attempts=min_attempts, min_reward=min_reward, time_window_days=time_window_days,
            extract_patterns=extract_patterns))

    def prune_skills(self, *, min_uses: int = 3, min_success_rate: float = 0.4, max_age_days: float = 60) -> int:
        return self._store.run(self._inner.prune_skills(min_uses=min_uses, min_success_rate=min_success_rate,
                                                        max_age_days=max_age_days))
