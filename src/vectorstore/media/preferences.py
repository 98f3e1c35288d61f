"""User preference vectors, learned from watch events by an exponential moving average.

``record_watch_event`` is one serializable transaction: the preference update (EMA of the
vector, confidence, genre affinities, temporal pattern, interaction counter), the episode in
ReflexionMemory's ``episodes`` and the outcomes of the named ReasoningBank patterns commit
together or not at all. A lost race (``TransactionConflict``) is retried with exponential
backoff; a bad argument is refused before anything is written.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from vectorstore.embedding import Embedder
from vectorstore.errors import InvalidRecord, NotSupported
from vectorstore.media._util import (
    Clock,
    check_int,
    check_ints,
    check_number,
    check_text_id,
    check_timestamp,
    run_serializable,
    store_locks,
    utc_now,
)
from vectorstore.media.errors import InvalidMediaInput, UnknownPattern
from vectorstore.media.schema import ensure_collection, preference_table
from vectorstore.records import Record, Vector, coerce_metadata, coerce_vector
from vectorstore.schema import Metric
from vectorstore.store import AsyncCollection, AsyncStore

if TYPE_CHECKING:
    from vectorstore.sync import Store

DEFAULT_ALPHA = 0.1
DEFAULT_CONFIDENCE = 0.5
MAX_RETRIES = 3
RETRY_BASE_DELAY = 0.025  # seconds: 25, 50, 100 ms, each times a random factor in [0.5, 1.5)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class EpisodeStore(Protocol):
    """The part of ReflexionMemory a watch event needs."""

    async def store_episode(self, *, session_id: str, task: str, reward: float, success: bool,
                            input: str | None = ..., output: str | None = ...,
                            tags: Sequence[str] | None = ..., metadata: dict[str, Any] | None = ...) -> Any: ...


class PatternStore(Protocol):
    """The part of ReasoningBank a watch event needs."""

    async def get_pattern(self, pattern_id: int) -> Any: ...

    async def record_outcome(self, pattern_id: int, success: bool, reward: float | None = ...) -> Any: ...


# -- the pure update rules (unit-tested in tests/test_media_unit.py) ---------------------------


def ema(old: npt.ArrayLike | None, embedding: npt.ArrayLike, alpha: float) -> npt.NDArray[np.float64]:
    """``(1 - alpha) * old + alpha * embedding`` in float64; the first event (``old`` None) initialises
    the vector to the embedding. Should the blend cancel out exactly (all zeros, which has no
    direction), the embedding is kept."""
    new = np.asarray(embedding, dtype=np.float64)
    if old is None:
        return new.copy()
    blended: npt.NDArray[np.float64] = (1.0 - alpha) * np.asarray(old, dtype=np.float64) + alpha * new
    return blended if blended.any() else new.copy()


def next_confidence(confidence: float | None, alpha: float) -> float:
    """Each event removes ``alpha`` of the remaining uncertainty: ``c + alpha * (1 - c)``
    (so after n events from nothing, ``1 - (1 - alpha)**n``)."""
    c = 0.0 if confidence is None else confidence
    return min(1.0, c + alpha * (1.0 - c))


def update_affinities(affinities: Mapping[int, float], genre_ids: Sequence[int], reward: float,
                      alpha: float) -> dict[int, float]:
    """The watched genres move toward ``reward`` by the EMA (a new genre starts at ``reward``);
    the others are unchanged."""
    out = dict(affinities)
    for g in genre_ids:
        out[g] = reward if g not in out else (1.0 - alpha) * out[g] + alpha * reward
    return out


def update_temporal(patterns: Mapping[str, Any], watched_at: dt.datetime) -> dict[str, Any]:
    """Count the event under its UTC hour of day and day of week."""
    out = dict(patterns)
    for key, slot in (("hour_of_day", str(watched_at.hour)), ("day_of_week", WEEKDAYS[watched_at.weekday()])):
        counts = out.get(key)
        counts = dict(counts) if isinstance(counts, Mapping) else {}
        previous = counts.get(slot, 0)
        counts[slot] = (previous if isinstance(previous, int) and not isinstance(previous, bool) else 0) + 1
        out[key] = counts
    return out


# -- values ------------------------------------------------------------------------------------


def _vector_eq(a: object, b: object) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


@attrs.frozen(slots=True)
class UserPreference:
    """A user's preference vector (float32) and what was learned with it."""

    user_id: str
    vector: Vector = attrs.field(eq=attrs.cmp_using(eq=_vector_eq), repr=False)
    confidence: float
    interaction_count: int
    genre_affinities: Mapping[int, float] = attrs.field(factory=dict)
    temporal_patterns: Mapping[str, Any] = attrs.field(factory=dict)
    last_reward: float | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_record(cls, record: Record) -> UserPreference:
        f = record.fields
        affinities = f.get("genre_affinities") or {}
        return cls(
            user_id=str(record.id),
            vector=record.vector,
            confidence=float(f.get("confidence") or 0.0),
            interaction_count=int(f.get("interaction_count") or 0),
            genre_affinities={int(k): float(v) for k, v in affinities.items()},
            temporal_patterns=f.get("temporal_patterns") or {},
            last_reward=f.get("last_reward"),
            created_at=f.get("created_at"),
            updated_at=f.get("updated_at"),
            metadata=record.metadata,
        )

    def to_record(self) -> Record:
        return Record(self.user_id, self.vector, {
            "confidence": self.confidence,
            "interaction_count": self.interaction_count,
            "last_reward": self.last_reward,
            "genre_affinities": {str(k): v for k, v in sorted(self.genre_affinities.items())},
            "temporal_patterns": dict(self.temporal_patterns),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }, dict(self.metadata))


@attrs.frozen(slots=True)
class UserMatch:
    """A result of :meth:`AsyncUserPreferences.similar_users`."""

    preference: UserPreference
    similarity: float


@attrs.frozen(slots=True)
class WatchEventResult:
    """What :meth:`AsyncUserPreferences.record_watch_event` wrote."""

    preference: UserPreference
    episode_id: Any
    pattern_ids: tuple[int, ...]
    attempts: int  # 1, or more when a lost race was retried


@attrs.frozen(slots=True)
class _WatchEvent:
    user_id: str
    embedding: Vector = attrs.field(eq=False)
    reward: float
    success: bool
    alpha: float
    content_id: str | None
    media_type: str | None
    genre_ids: tuple[int, ...]
    pattern_ids: tuple[int, ...]
    watched_at: dt.datetime
    session_id: str
    task: str
    metadata: Mapping[str, Any]


def _check_alpha(alpha: object) -> float:
    return check_number(alpha, "alpha (the EMA weight of a new event)", 0.0, 1.0, low_open=True)


def _check_affinities(value: object) -> dict[int, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidMediaInput(f"genre_affinities must be a dict of genre id to a number in [0, 1], got {value!r}")
    out: dict[int, float] = {}
    for k, v in value.items():
        key = int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k
        out[check_int(key, "genre_affinities key")] = check_number(v, f"genre_affinities[{k!r}]", 0.0, 1.0)
    return out


def _check_json_object(value: object, name: str) -> dict[str, Any]:
    try:
        return coerce_metadata(value, name)
    except InvalidRecord as exc:
        raise InvalidMediaInput(str(exc)) from None


# -- the async class ---------------------------------------------------------------------------


class AsyncUserPreferences:
    """User preference vectors in the ``user_preferences`` collection.

    ``AsyncUserPreferences(store)`` over an :class:`~vectorstore.AsyncStore`; ``dim`` defaults to
    ``AGENTDB_VECTOR_DIM`` (384), ``alpha`` is the EMA weight of a new watch event. Episodes go
    to ``reflexion`` (default: ``vectorstore.memory.AsyncReflexionMemory(store, embedder=...)``),
    pattern outcomes to ``reasoning`` (default: ``AsyncReasoningBank(store, embedder=...)``).
    """

    def __init__(self, store: AsyncStore, *, dim: int | None = None, alpha: float = DEFAULT_ALPHA,
                 embedder: Embedder | None = None, reflexion: EpisodeStore | None = None,
                 reasoning: PatternStore | None = None, max_retries: int = MAX_RETRIES,
                 retry_base_delay: float = RETRY_BASE_DELAY, clock: Clock | None = None) -> None:
        self.store = store
        self.table = preference_table(dim)
        self._dim_given = dim is not None
        self.alpha = _check_alpha(alpha)
        self.embedder = embedder
        self._reflexion = reflexion
        self._reasoning = reasoning
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 10:
            raise InvalidMediaInput(f"max_retries must be an integer from 0 to 10, got {max_retries!r}")
        self.max_retries = max_retries
        self.retry_base_delay = check_number(retry_base_delay, "retry_base_delay", 0.0, 10.0)
        self._clock = clock or utc_now
        self._col: AsyncCollection | None = None

    @property
    def dim(self) -> int:
        dim = self._col.spec.dim if self._col is not None else self.table.dim
        assert dim is not None  # (the media collections always hold vectors)
        return dim

    async def collection(self) -> AsyncCollection:
        """The ``user_preferences`` collection (created on first use)."""
        if self._col is None:
            self._col = await ensure_collection(self.store, self.table, dim_given=self._dim_given)
        return self._col

    def reflexion(self) -> EpisodeStore:
        if self._reflexion is None:
            from vectorstore.memory import AsyncReflexionMemory

            self._reflexion = AsyncReflexionMemory(self.store, embedder=self.embedder)
        return self._reflexion

    def reasoning(self) -> PatternStore:
        if self._reasoning is None:
            from vectorstore.memory import AsyncReasoningBank

            self._reasoning = AsyncReasoningBank(self.store, embedder=self.embedder)
        return self._reasoning

    def _vector(self, value: object, name: str) -> Vector:
        return coerce_vector(value, self.dim, Metric.COSINE, name)

    async def get_preference(self, user_id: str) -> UserPreference | None:
        uid = check_text_id(user_id, "user_id")
        found = await (await self.collection()).get([uid])
        return UserPreference.from_record(found[0]) if found else None

    async def upsert_preference(self, user_id: str, vector: Sequence[float] | Any, *,
                                confidence: float = DEFAULT_CONFIDENCE,
                                genre_affinities: Mapping[int, float] | None = None,
                                temporal_patterns: Mapping[str, Any] | None = None,
                                metadata: Mapping[str, Any] | None = None) -> UserPreference:
        """Set a user's preference vector, confidence, genre affinities and temporal patterns.
        The interaction counter and ``created_at`` of an existing user are kept (atomically, in a
        serializable transaction, where the backend declares transactions)."""
        uid = check_text_id(user_id, "user_id")
        col = await self.collection()
        vec = self._vector(vector, "preference vector")
        conf = check_number(confidence, "confidence", 0.0, 1.0)
        affinities = _check_affinities(genre_affinities)
        temporal = _check_json_object(temporal_patterns, "temporal_patterns")
        meta = _check_json_object(metadata, "metadata")

        async def step() -> UserPreference:
            found = await col.get([uid])
            old = UserPreference.from_record(found[0]) if found else None
            now = self._clock()
            pref = UserPreference(uid, vec, conf, old.interaction_count if old else 0, affinities, temporal,
                                  old.last_reward if old else None, old.created_at if old else now, now, meta)
            await col.upsert([pref.to_record()])
            return pref

        async with store_locks(self.store).hold(f"user_preferences:{uid}"):
            if not self.store.capabilities.transactions:
                return await step()  # no transactions declared: last writer wins
            result, _ = await run_serializable(self.store, step, max_retries=self.max_retries,
                                               base_delay=self.retry_base_delay)
        return result

    async def delete_preference(self, user_id: str) -> bool:
        uid = check_text_id(user_id, "user_id")
        return await (await self.collection()).delete([uid]) > 0

    async def count(self) -> int:
        return await (await self.collection()).count()

    async def similar_users(self, vector: Sequence[float] | Any, k: int = 10, *,
                            min_confidence: float | None = None) -> list[UserMatch]:
        """Users whose preference vectors are nearest to ``vector``, nearest first."""
        col = await self.collection()
        where = None
        if min_confidence is not None:
            where = {"confidence": {"$gte": check_number(min_confidence, "min_confidence", 0.0, 1.0)}}
        hits = await col.search(self._vector(vector, "query vector"), k, where=where, include_vector=True)
        return [UserMatch(UserPreference.from_record(Record(h.id, h.vector, h.fields, h.metadata)), h.similarity)
                for h in hits]

    def _event(self, user_id: object, content_embedding: object, reward: object, success: object,
               alpha: object, content_id: object, media_type: object, genre_ids: object, pattern_ids: object,
               watched_at: object, session_id: object, task: object, metadata: object) -> _WatchEvent:
        uid = check_text_id(user_id, "user_id")
        emb = self._vector(content_embedding, "content_embedding")
        r = check_number(reward, "reward", 0.0, 1.0)
        if success is not None and not isinstance(success, bool):
            raise InvalidMediaInput(f"success must be True, False or None (then reward >= 0.5), got {success!r}")
        cid = None if content_id is None else check_text_id(content_id, "content_id")
        mtype = None if media_type is None else check_text_id(media_type, "media_type")
        when = self._clock() if watched_at is None else check_timestamp(watched_at, "watched_at")
        sid = f"user:{uid}" if session_id is None else check_text_id(session_id, "session_id")
        if task is None:
            task = f"watch {mtype}:{cid}" if cid is not None and mtype is not None else "watch"
        if not isinstance(task, str) or not task.strip():
            raise InvalidMediaInput(f"task must be a non-empty string, got {task!r}")
        meta = _check_json_object(metadata, "metadata")
        return _WatchEvent(uid, emb, r, r >= 0.5 if success is None else success,
                           self.alpha if alpha is None else _check_alpha(alpha), cid, mtype,
                           check_ints(genre_ids, "genre_ids"), check_ints(pattern_ids, "pattern_ids"),
                           when, sid, task, meta)

    async def record_watch_event(self, user_id: str, content_embedding: Sequence[float] | Any, reward: float, *,
                                 success: bool | None = None, content_id: str | None = None,
                                 media_type: str | None = None, genre_ids: Sequence[int] | None = None,
                                 pattern_ids: Sequence[int] | None = None, watched_at: dt.datetime | str | None = None,
                                 alpha: float | None = None, session_id: str | None = None,
                                 task: str | None = None, metadata: Mapping[str, Any] | None = None
                                 ) -> WatchEventResult:
        """Learn from one watch event, atomically.

        In one ``serializable`` transaction: the preference vector becomes
        ``(1 - alpha) * old + alpha * content_embedding`` (the first event sets it), confidence
        ``c + alpha * (1 - c)``, the watched genres' affinities move toward ``reward`` by the same
        EMA, the event's hour and weekday are counted, ``interaction_count`` goes up by one; an
        episode is stored in ReflexionMemory (session ``user:<user_id>`` unless given, task
        ``watch <media_type>:<content_id>``, ``success`` defaulting to ``reward >= 0.5``); and
        ``ReasoningBank.record_outcome(pattern_id, success, reward)`` runs for each of
        ``pattern_ids``. A TransactionConflict is retried with exponential backoff
        (``max_retries``, default 3). Bad input (wrong dimension, reward outside [0, 1], an unknown
        pattern id, ...) raises a subclass of InvalidInput and writes nothing. A backend without
        transactions raises NotSupported.
        """
        event = self._event(user_id, content_embedding, reward, success, alpha, content_id, media_type,
                            genre_ids, pattern_ids, watched_at, session_id, task, metadata)
        if not self.store.capabilities.transactions:
            raise NotSupported(f"record_watch_event needs transactions, which the {self.store.backend.name} "
                               "backend does not declare; use sqlite, postgresql or memory")
        col = await self.collection()
        reflexion, reasoning = self.reflexion(), self.reasoning()
        for memory in (reflexion, reasoning):  # create their collections outside the transaction
            setup = getattr(memory, "setup", None)
            if setup is not None:
                await setup()

        async def step() -> tuple[UserPreference, Any]:
            return await self._apply(col, event, reflexion, reasoning)

        async with store_locks(self.store).hold(f"user_preferences:{event.user_id}"):
            (pref, episode_id), attempts = await run_serializable(
                self.store, step, max_retries=self.max_retries, base_delay=self.retry_base_delay)
        return WatchEventResult(pref, episode_id, event.pattern_ids, attempts)

    async def _apply(self, col: AsyncCollection, event: _WatchEvent, reflexion: EpisodeStore,
                     reasoning: PatternStore) -> tuple[UserPreference, Any]:
        # Check the patterns first: an unknown one is bad input, refused before any write.
        for pid in event.pattern_ids:
            if await reasoning.get_pattern(pid) is None:
                raise UnknownPattern(f"pattern_ids names the reasoning pattern {pid}, which does not exist; "
                                     "store it with ReasoningBank.store_pattern() first (nothing was written)")
        pref = await self._write_preference(col, event)
        episode_id = await self._write_episode(reflexion, event)
        await self._record_patterns(reasoning, event)
        return pref, episode_id

    async def _write_preference(self, col: AsyncCollection, event: _WatchEvent) -> UserPreference:
        found = await col.get([event.user_id])
        old = UserPreference.from_record(found[0]) if found else None
        now = self._clock()
        vector = ema(None if old is None else old.vector, event.embedding, event.alpha)
        pref = UserPreference(
            user_id=event.user_id,
            vector=vector.astype(np.float32),
            confidence=next_confidence(None if old is None else old.confidence, event.alpha),
            interaction_count=(0 if old is None else old.interaction_count) + 1,
            genre_affinities=update_affinities({} if old is None else old.genre_affinities, event.genre_ids,
                                               event.reward, event.alpha),
            temporal_patterns=update_temporal({} if old is None else old.temporal_patterns, event.watched_at),
            last_reward=event.reward,
            created_at=now if old is None else old.created_at,
            updated_at=now,
            metadata={} if old is None else old.metadata,
        )
        if not math.isfinite(float(np.abs(pref.vector).max())):
            raise InvalidMediaInput("the updated preference vector overflows float32; scale the embeddings down")
        await col.upsert([pref.to_record()])
        return pref

    async def _write_episode(self, reflexion: EpisodeStore, event: _WatchEvent) -> Any:
        meta: dict[str, Any] = {"kind": "watch_event", "user_id": event.user_id,
                                "watched_at": event.watched_at.isoformat(), **event.metadata}
        if event.content_id is not None:
            meta["content_id"] = event.content_id
        if event.media_type is not None:
            meta["media_type"] = event.media_type
        if event.genre_ids:
            meta["genre_ids"] = list(event.genre_ids)
        if event.pattern_ids:
            meta["pattern_ids"] = list(event.pattern_ids)
        return await reflexion.store_episode(session_id=event.session_id, task=event.task, reward=event.reward,
                                             success=event.success, tags=["watch_event"], metadata=meta)

    async def _record_patterns(self, reasoning: PatternStore, event: _WatchEvent) -> None:
        for pid in event.pattern_ids:
            await reasoning.record_outcome(pid, event.success, event.reward)


# -- the sync twin -----------------------------------------------------------------------------


class UserPreferences:
    """Synchronous twin of :class:`AsyncUserPreferences` over a :class:`vectorstore.Store`."""

    def __init__(self, store: Store, *, dim: int | None = None, alpha: float = DEFAULT_ALPHA,
                 embedder: Embedder | None = None, reflexion: EpisodeStore | None = None,
                 reasoning: PatternStore | None = None, max_retries: int = MAX_RETRIES,
                 retry_base_delay: float = RETRY_BASE_DELAY, clock: Clock | None = None) -> None:
        self._store = store
        self.inner = AsyncUserPreferences(store.async_store, dim=dim, alpha=alpha, embedder=embedder,
                                          reflexion=reflexion, reasoning=reasoning, max_retries=max_retries,
                                          retry_base_delay=retry_base_delay, clock=clock)

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def alpha(self) -> float:
        return self.inner.alpha

    def get_preference(self, user_id: str) -> UserPreference | None:
        return self._store.run(self.inner.get_preference(user_id))

    def upsert_preference(self, user_id: str, vector: Sequence[float] | Any, *,
                          confidence: float = DEFAULT_CONFIDENCE, genre_affinities: Mapping[int, float] | None = None,
                          temporal_patterns: Mapping[str, Any] | None = None,
                          metadata: Mapping[str, Any] | None = None) -> UserPreference:
        return self._store.run(self.inner.upsert_preference(
            user_id, vector, confidence=confidence, genre_affinities=genre_affinities,
            temporal_patterns=temporal_patterns, metadata=metadata))

    def delete_preference(self, user_id: str) -> bool:
        return self._store.run(self.inner.delete_preference(user_id))

    def count(self) -> int:
        return self._store.run(self.inner.count())

    def similar_users(self, vector: Sequence[float] | Any, k: int = 10, *,
                      min_confidence: float | None = None) -> list[UserMatch]:
        return self._store.run(self.inner.similar_users(vector, k, min_confidence=min_confidence))

    def record_watch_event(self, user_id: str, content_embedding: Sequence[float] | Any, reward: float, *,
                           success: bool | None = None, content_id: str | None = None,
                           media_type: str | None = None, genre_ids: Sequence[int] | None = None,
                           pattern_ids: Sequence[int] | None = None, watched_at: dt.datetime | str | None = None,
                           alpha: float | None = None, session_id: str | None = None, task: str | None = None,
                           metadata: Mapping[str, Any] | None = None) -> WatchEventResult:
        return self._store.run(self.inner.record_watch_event(
            user_id, content_embedding, reward, success=success, content_id=content_id, media_type=media_type,
            genre_ids=genre_ids, pattern_ids=pattern_ids, watched_at=watched_at, alpha=alpha,
            session_id=session_id, task=task, metadata=metadata))
