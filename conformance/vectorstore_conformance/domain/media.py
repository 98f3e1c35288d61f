"""The media gateway model (``vectorstore.media``) on any backend: user preferences learned from
watch events (atomic with the agent memory), content search, hybrid re-rank, embedding cache."""

from __future__ import annotations

import datetime as dt
import inspect
import threading
from typing import Any

import numpy as np
import pytest

import vectorstore as vs
from vectorstore.embedding import HashingEmbedder
from vectorstore.media import (
    AmbiguousContent,
    AsyncContentSearch,
    AsyncUserPreferences,
    ContentNotFound,
    ContentSearch,
    EmbeddingCache,
    HybridWeights,
    InvalidWeights,
    UnknownPattern,
    UserPreferences,
)
from vectorstore.memory import AsyncReasoningBank, AsyncReflexionMemory, ReasoningBank, ReflexionMemory
from vectorstore_conformance.guard import requires
from vectorstore_conformance.helpers import reopened

DIM = 8
T0 = dt.datetime(2024, 5, 3, 20, 15, tzinfo=dt.UTC)  # a Friday, 20:15 UTC


class Boom(Exception):
    pass


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim)
    out: np.ndarray = (v / np.linalg.norm(v)).astype(np.float32)
    return out


def f32(x: Any) -> np.ndarray:
    out: np.ndarray = np.asarray(x, dtype=np.float64).astype(np.float32)
    return out


class FakeClock:
    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


def catalogue() -> list[dict[str, Any]]:
    """Six items in 4-d: directions chosen so that the nearest neighbours are known."""
    return [
        {"content_id": "1", "media_type": "movie", "embedding": [1, 0, 0, 0], "title": "Alpha",
         "genre_ids": [18, 80], "rating": 8.0, "release_date": "2001-06-01", "metadata": {"src": "tmdb"}},
        {"content_id": "2", "media_type": "movie", "embedding": [0.9, 0.1, 0, 0], "title": "Beta",
         "genre_ids": [35], "rating": 6.0, "release_date": "1995-01-01"},
        {"content_id": "3", "media_type": "movie", "embedding": [0.8, 0.3, 0, 0], "title": "Gamma",
         "genre_ids": [18], "rating": 9.1, "release_date": "2023-03-01"},
        {"content_id": "1", "media_type": "tv", "embedding": [0.7, 0, 0.3, 0], "title": "Alpha: the series",
         "genre_ids": [18], "rating": 7.5, "release_date": "2010-09-09"},
        {"content_id": "5", "media_type": "tv", "embedding": [0, 1, 0, 0], "title": "Delta",
         "genre_ids": [10765], "rating": 5.0, "release_date": "2008-02-02"},
        {"content_id": "6", "media_type": "movie", "embedding": [-1, 0, 0, 0], "title": "Omega",
         "genre_ids": [27], "rating": None, "release_date": None},
    ]


def expected_cosine(query: Any, vector: Any) -> float:
    q = np.asarray(query, dtype=np.float32).astype(np.float64)
    x = np.asarray(vector, dtype=np.float32).astype(np.float64)
    return float(q @ x / (np.linalg.norm(q) * np.linalg.norm(x)))


class _Episodes:
    """An episode store (the ``reflexion=`` parameter) that writes through to the real one, then
    fails when told to."""

    def __init__(self, real: AsyncReflexionMemory, calls: list[str], fail: bool = False) -> None:
        self.real, self.calls, self.fail = real, calls, fail

    async def setup(self) -> None:
        await self.real.setup()

    async def store_episode(self, **kwargs: Any) -> Any:
        episode = await self.real.store_episode(**kwargs)
        self.calls.append("episode written")
        if self.fail:
            raise Boom("injected failure after the episode was written")
        return episode


class _Patterns:
    """A pattern store (the ``reasoning=`` parameter) over the real one that fails before or after
    the real update, or raises TransactionConflict after it ``conflicts`` times."""

    def __init__(self, real: AsyncReasoningBank, calls: list[str], fail_before: bool = False,
                 fail_after: bool = False, conflicts: int = 0) -> None:
        self.real, self.calls = real, calls
        self.fail_before, self.fail_after, self.conflicts = fail_before, fail_after, conflicts

    async def setup(self) -> None:
        await self.real.setup()

    async def get_pattern(self, pattern_id: int) -> Any:
        return await self.real.get_pattern(pattern_id)

    async def record_outcome(self, pattern_id: int, success: bool, reward: float | None = None) -> Any:
        self.calls.append("pattern step")
        if self.fail_before:
            raise Boom("injected failure inside the pattern step, before its update")
        result = await self.real.record_outcome(pattern_id, success, reward)
        if self.fail_after:
            raise Boom("injected failure after the pattern's update was written")
        if self.conflicts > 0:
            self.conflicts -= 1
            raise vs.TransactionConflict("injected serialization failure")
        return result


class MediaConformance:
    # -- the data model ------------------------------------------------------------------------

    def test_media_collections_follow_the_spec(self, store: vs.Store, monkeypatch: pytest.MonkeyPatch) -> None:
        """user_preferences (384-d) and content_vectors (768-d) are cosine collections with the spec's fields
        and HNSW m=16, ef_construction=64; the agent-memory tables are AgentDB's own (episodes,
        reasoning_patterns), never parallel reflexion_episodes / skill_library collections.

        Troubleshooting: vectorstore.media.schema defines the fields, and AGENTDB_VECTOR_DIM / RUVECTOR_VECTOR_DIM
        must not be set in the test environment; the backend's catalog must return each created spec exactly (dim,
        metric, HNSW m and ef_construction, field types such as int[] and date), and store.collection() must find
        the episodes collection the watch event wrote to.
        """
        monkeypatch.delenv("AGENTDB_VECTOR_DIM", raising=False)
        monkeypatch.delenv("RUVECTOR_VECTOR_DIM", raising=False)
        prefs = UserPreferences(store)
        content = ContentSearch(store)
        prefs.upsert_preference("u1", unit(1, 384), confidence=0.9)
        content.upsert_content({"content_id": "550", "media_type": "movie", "embedding": unit(2, 768)})
        specs = {s.name: s for s in store.list_collections()}
        up, cv = specs["user_preferences"], specs["content_vectors"]
        assert (up.dim, up.metric.value, up.index) == (384, "cosine", vs.HNSW(m=16, ef_construction=64))
        assert (cv.dim, cv.metric.value, cv.index) == (768, "cosine", vs.HNSW(m=16, ef_construction=64))
        assert {"confidence", "interaction_count", "genre_affinities", "temporal_patterns", "updated_at"} <= set(
            up.fields)
        assert {"content_id", "media_type", "genre_ids", "rating", "release_date"} <= set(cv.fields)
        assert cv.fields["genre_ids"].value == "int[]" and cv.fields["release_date"].value == "date"
        if not store.capabilities.transactions:
            with pytest.raises(vs.NotSupported):
                prefs.record_watch_event("u1", unit(3, 384), 0.8)
            return
        prefs.record_watch_event("u1", unit(3, 384), 0.8)
        names = {s.name for s in store.list_collections()}
        assert {"episodes", "reasoning_patterns"} <= names
        assert not names & {"reflexion_episodes", "skill_library"}
        assert store.collection("episodes").count() == 1  # the watch event's episode went to AgentDB's table

    # -- user preferences ----------------------------------------------------------------------

    def test_preference_round_trip(self, store: vs.Store) -> None:
        """upsert_preference stores vector, confidence, genre affinities and temporal patterns; a second
        upsert replaces them but keeps the interaction counter and created_at.

        Troubleshooting: a preference is a record of user_preferences: its json fields (genre_affinities, stored
        with string keys and read back with int keys; temporal_patterns) and its metadata must read back as the same
        objects, created_at / updated_at as the same aware UTC datetimes, and an upsert must replace the row;
        similar_users needs exact cosine similarities (1.0 for the same vector) and applies min_confidence as a $gte
        filter on a float field before the top k.
        """
        clock = FakeClock()
        prefs = UserPreferences(store, dim=DIM, clock=clock)
        assert prefs.get_preference("nobody") is None
        first = prefs.upsert_preference("u1", unit(1), confidence=0.25, genre_affinities={18: 0.9, "35": 0.1},  # type: ignore[dict-item]
                                        temporal_patterns={"hour_of_day": {"21": 4}}, metadata={"plan": "pro"})
        got = prefs.get_preference("u1")
        assert got == first
        assert got is not None and got.genre_affinities == {18: 0.9, 35: 0.1}
        assert got.temporal_patterns == {"hour_of_day": {"21": 4}} and got.metadata == {"plan": "pro"}
        assert (got.confidence, got.interaction_count, got.created_at) == (0.25, 0, T0)
        np.testing.assert_array_equal(got.vector, unit(1))
        events = 0
        if store.capabilities.transactions:
            prefs.record_watch_event("u1", unit(2), 1.0)
            events = 1
        clock.now = T0 + dt.timedelta(hours=1)
        again = prefs.upsert_preference("u1", unit(3), confidence=0.5)
        assert (again.interaction_count, again.created_at, again.updated_at) == (events, T0, clock.now)
        assert prefs.get_preference("u1") == again
        assert prefs.count() == 1
        prefs.upsert_preference("u2", unit(1), confidence=0.9)
        matches = prefs.similar_users(unit(3), k=2)
        assert [(m.preference.user_id, round(m.similarity, 6)) for m in matches] == [
            ("u1", 1.0), ("u2", round(expected_cosine(unit(3), unit(1)), 6))]
        assert matches[0].preference == again
        assert [m.preference.user_id for m in prefs.similar_users(unit(3), k=2, min_confidence=0.8)] == ["u2"]
        prefs.delete_preference("u2")
        assert prefs.delete_preference("u1") is True and prefs.delete_preference("u1") is False

    def test_watch_events_update_by_ema_with_episode_and_patterns(self, store: vs.Store) -> None:
        """The first watch event initialises the vector; later ones blend it: new = (1 - alpha) * old + alpha * e.
        Confidence becomes c + alpha * (1 - c); genre affinities and temporal patterns update; the episode is
        stored in ReflexionMemory's episodes and the named patterns' stats in ReasoningBank change.

        Troubleshooting: the blend is computed in float64 from the stored float32 vector, then stored as float32, so
        the backend must return the stored vector bit-exact; the preference, the episode and the pattern statistics
        are written in one serializable transaction, with the agent memory's own transactions nested as savepoints.
        """
        if not store.capabilities.transactions:
            with pytest.raises(vs.NotSupported):
                UserPreferences(store, dim=DIM).record_watch_event("u1", unit(1), 0.5)
            return
        bank = ReasoningBank(store)
        pid = bank.store_pattern(task_type="recommend", approach="genre match", success_rate=0.5, uses=1,
                                 avg_reward=0.5)
        prefs = UserPreferences(store, dim=DIM, alpha=0.25, clock=FakeClock())
        e1, e2 = unit(1), unit(2)
        r1 = prefs.record_watch_event("u1", e1, 0.9, content_id="550", media_type="movie", genre_ids=[18, 80],
                                      pattern_ids=[pid], watched_at=T0)
        assert r1.attempts == 1 and r1.pattern_ids == (pid,)
        p1 = prefs.get_preference("u1")
        assert p1 is not None
        np.testing.assert_array_equal(p1.vector, e1)
        assert (p1.interaction_count, p1.confidence, p1.last_reward) == (1, 0.25, 0.9)
        assert p1.genre_affinities == {18: 0.9, 80: 0.9}
        assert p1.temporal_patterns == {"hour_of_day": {"20": 1}, "day_of_week": {"fri": 1}}
        r2 = prefs.record_watch_event("u1", e2, 0.1, genre_ids=[18], pattern_ids=[pid], alpha=0.5,
                                      watched_at=T0 + dt.timedelta(days=1))
        p2 = prefs.get_preference("u1")
        assert p2 is not None and p2 == r2.preference
        np.testing.assert_allclose(p2.vector, f32(0.5 * e1.astype(np.float64) + 0.5 * e2.astype(np.float64)),
                                   rtol=0, atol=1e-7)
        assert p2.interaction_count == 2
        assert abs(p2.confidence - (0.25 + 0.5 * 0.75)) < 1e-12
        assert p2.genre_affinities == {18: 0.5 * 0.9 + 0.5 * 0.1, 80: 0.9}
        assert p2.temporal_patterns == {"hour_of_day": {"20": 2}, "day_of_week": {"fri": 1, "sat": 1}}
        memory = ReflexionMemory(store)
        episode = memory.get_episode(r1.episode_id)
        assert episode is not None
        assert (episode.session_id, episode.task, episode.reward, episode.success) == ("user:u1", "watch movie:550",
                                                                                       0.9, True)
        assert episode.metadata["content_id"] == "550" and episode.metadata["genre_ids"] == [18, 80]
        second = memory.get_episode(r2.episode_id)
        assert second is not None and second.success is False
        pattern = bank.get_pattern(pid)
        assert pattern is not None and pattern.uses == 3
        assert pattern.success_rate is not None and abs(pattern.success_rate - (0.5 + 1 + 0) / 3) < 1e-9
        assert pattern.avg_reward is not None and abs(pattern.avg_reward - (0.5 + 0.9 + 0.1) / 3) < 1e-9

    def _state(self, store: vs.Store, bank: ReasoningBank, pid: int) -> tuple[Any, ...]:
        pref = UserPreferences(store).get_preference("u1")
        pattern = bank.get_pattern(pid)
        assert pattern is not None
        return (None if pref is None else (pref.vector.tolist(), pref.interaction_count, pref.confidence,
                                           dict(pref.genre_affinities), dict(pref.temporal_patterns)),
                store.collection("episodes").count(), (pattern.uses, pattern.success_rate, pattern.avg_reward))

    def test_crash_inside_a_watch_event_writes_nothing(self, store: vs.Store) -> None:
        """A failure after the preference and the episode were written rolls back all three:
        preferences, episodes and pattern stats are as before. The failures are injected through the
        public ``reflexion=`` / ``reasoning=`` parameters (the episode store and the pattern store a
        watch event writes to): one after the pattern's update was written, one inside the pattern
        step before it, one right after the episode was written.

        Troubleshooting: every write of record_watch_event must run inside its one transaction, on the
        transaction's connection (the agent memory's own transactions nest as savepoints).
        """
        requires(store, "transactions")
        bank = ReasoningBank(store)
        pid = bank.store_pattern(task_type="recommend", approach="a", success_rate=0.5)
        UserPreferences(store, dim=DIM).record_watch_event("u1", unit(1), 0.7, genre_ids=[18], pattern_ids=[pid])
        before = self._state(store, bank, pid)
        inner = store.async_store
        calls: list[str] = []
        for fail_at in ("after the pattern update", "before the pattern update", "after the episode"):
            episodes = _Episodes(AsyncReflexionMemory(inner), calls, fail=fail_at == "after the episode")
            patterns = _Patterns(AsyncReasoningBank(inner), calls, fail_before=fail_at == "before the pattern update",
                                 fail_after=fail_at == "after the pattern update")
            prefs = UserPreferences(store, dim=DIM, reflexion=episodes, reasoning=patterns)
            calls.clear()
            with pytest.raises(Boom):
                prefs.record_watch_event("u1", unit(2), 0.9, genre_ids=[18, 35], pattern_ids=[pid])
            assert calls[0] == "episode written", fail_at  # the preference and the episode were written first
            assert self._state(store, bank, pid) == before, fail_at

    def test_unknown_pattern_is_refused_without_writing(self, store: vs.Store) -> None:
        """A watch event naming a pattern id that does not exist raises UnknownPattern (an InvalidInput whose
        message names the id) and writes nothing: no preference, no episode, and the existing pattern's uses
        unchanged.

        Troubleshooting: the pattern check runs first inside the event's serializable transaction: get() of an int
        id that does not exist must return no record (not raise), and the exception leaving the transaction must
        roll it back; a preference or episode left behind means a write ran outside the transaction's connection.
        """
        requires(store, "transactions")
        bank = ReasoningBank(store)
        pid = bank.store_pattern(task_type="recommend", approach="a", success_rate=0.5)
        prefs = UserPreferences(store, dim=DIM)
        with pytest.raises(UnknownPattern) as info:
            prefs.record_watch_event("u1", unit(1), 0.7, pattern_ids=[pid, pid + 1000])
        assert isinstance(info.value, vs.InvalidInput) and str(pid + 1000) in str(info.value)
        assert prefs.get_preference("u1") is None
        assert store.collection("episodes").count() == 0
        pattern = bank.get_pattern(pid)
        assert pattern is not None and not pattern.uses

    def test_concurrent_watch_events_lose_no_update(self, store: vs.Store, store_url: str) -> None:
        """Watch events for one user from several threads (and, on persistent backends, two connections to
        the same store) all count: interaction_count, episodes and pattern uses equal the number of events.
        A call may still end in TransactionConflict after its own retries under sustained cross-connection
        contention; such a call wrote nothing, and the caller runs it again.

        Troubleshooting: record_watch_event must run in store.transaction(serializable=True) and retry on
        TransactionConflict; a read-committed read-modify-write loses updates here.
        """
        requires(store, "transactions")
        bank = ReasoningBank(store)
        pid = bank.store_pattern(task_type="recommend", approach="a", success_rate=0.0)
        stores = [store]
        if store.capabilities.persistent and store.capabilities.concurrent_processes:
            stores.append(vs.connect(store_url))
        try:
            objects = [UserPreferences(s, dim=DIM) for s in stores]
            objects[0].record_watch_event("u1", unit(0), 1.0)  # create every collection first
            threads_n, events_n = 4, 5
            errors: list[BaseException] = []
            escaped: list[int] = []
            barrier = threading.Barrier(threads_n)

            def worker(t: int) -> None:
                prefs = objects[t % len(objects)]
                try:
                    barrier.wait()
                    for i in range(events_n):
                        for _ in range(20):
                            try:
                                prefs.record_watch_event("u1", unit(100 * t + i), 1.0, pattern_ids=[pid])
                                break
                            except vs.TransactionConflict:
                                escaped.append(t)
                        else:  # pragma: no cover
                            raise AssertionError("20 calls in a row lost their race")
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(120)
            assert not errors, errors
            total = threads_n * events_n
            pref = objects[0].get_preference("u1")
            assert pref is not None and pref.interaction_count == total + 1, f"{len(escaped)} calls escaped"
            assert store.collection("episodes").count() == total + 1
            pattern = bank.get_pattern(pid)
            assert pattern is not None and pattern.uses == total
        finally:
            for other in stores[1:]:
                other.close()

    def test_transaction_conflicts_are_retried(self, store: vs.Store) -> None:
        """A TransactionConflict inside a watch event rolls back and runs the event again (attempts counts
        them); after max_retries retries it propagates, with nothing written. The conflict is raised by
        the pattern store passed as ``reasoning=``, after its real update was written.

        Troubleshooting: the retry loop must wrap the whole transaction, not a single write.
        """
        requires(store, "transactions")
        bank = ReasoningBank(store)
        pid = bank.store_pattern(task_type="recommend", approach="a", success_rate=0.5)
        inner = store.async_store
        calls: list[str] = []
        patterns = _Patterns(AsyncReasoningBank(inner), calls, conflicts=2)
        prefs = UserPreferences(store, dim=DIM, retry_base_delay=0.001, reasoning=patterns)
        prefs.record_watch_event("u1", unit(1), 0.5)
        result = prefs.record_watch_event("u1", unit(2), 0.5, pattern_ids=[pid])
        assert result.attempts == 3 and patterns.conflicts == 0
        assert result.preference.interaction_count == 2
        assert store.collection("episodes").count() == 2
        pattern = bank.get_pattern(pid)
        assert pattern is not None and pattern.uses == 1  # the two rolled-back attempts left no use behind
        patterns.conflicts = 99
        with pytest.raises(vs.TransactionConflict):
            prefs.record_watch_event("u1", unit(3), 0.5, pattern_ids=[pid])
        assert patterns.conflicts == 99 - 4  # one attempt and three retries
        pref = prefs.get_preference("u1")
        assert pref is not None and pref.interaction_count == 2
        assert store.collection("episodes").count() == 2
        pattern = bank.get_pattern(pid)
        assert pattern is not None and pattern.uses == 1

    def test_bad_watch_events_are_refused(self, store: vs.Store) -> None:
        """Wrong dimension, a zero or NaN embedding, reward outside [0, 1], NaN or a bool, alpha outside (0, 1], bad
        user, genre or pattern ids, a bad success flag, watched_at or metadata: a subclass of InvalidInput; so are a
        bad alpha for the constructor and a bad confidence or genre affinity for upsert_preference. Nothing is
        written: no preference, no episode.

        Troubleshooting: the event is validated (UserPreferences._event) before its transaction opens, and the
        constructor and upsert_preference check their arguments before writing, so the backend sees none of these
        calls; a preference or an episode left afterwards means a write ran before the error and was not rolled
        back: the backend's transaction must roll back when an exception leaves the block.
        """
        prefs = UserPreferences(store, dim=DIM)
        bad: list[tuple[dict[str, Any], type[Exception]]] = [
            ({"content_embedding": [0.1] * (DIM + 1)}, vs.DimensionMismatch),
            ({"content_embedding": [0.0] * DIM}, vs.InvalidVector),
            ({"content_embedding": [float("nan")] * DIM}, vs.InvalidVector),
            ({"reward": 1.5}, vs.InvalidInput),
            ({"reward": float("nan")}, vs.InvalidInput),
            ({"reward": True}, vs.InvalidInput),
            ({"alpha": 0}, vs.InvalidInput),
            ({"alpha": 1.01}, vs.InvalidInput),
            ({"user_id": ""}, vs.InvalidInput),
            ({"user_id": None}, vs.InvalidInput),
            ({"genre_ids": ["drama"]}, vs.InvalidInput),
            ({"pattern_ids": [1.5]}, vs.InvalidInput),
            ({"success": "yes"}, vs.InvalidInput),
            ({"watched_at": "yesterday"}, vs.InvalidInput),
            ({"metadata": {"x": float("inf")}}, vs.InvalidInput),
        ]
        for change, error in bad:
            args: dict[str, Any] = {"user_id": "u1", "content_embedding": unit(1), "reward": 0.5, **change}
            with pytest.raises(error):
                prefs.record_watch_event(args.pop("user_id"), args.pop("content_embedding"), args.pop("reward"),
                                         **args)
        with pytest.raises(vs.InvalidInput):
            UserPreferences(store, dim=DIM, alpha=-0.1)
        with pytest.raises(vs.InvalidInput):
            prefs.upsert_preference("u1", unit(1), confidence=2)
        with pytest.raises(vs.InvalidInput):
            prefs.upsert_preference("u1", unit(1), genre_affinities={18: "high"})  # type: ignore[dict-item]
        assert prefs.get_preference("u1") is None
        names = {s.name for s in store.list_collections()}
        assert "episodes" not in names or store.collection("episodes").count() == 0

    # -- content -------------------------------------------------------------------------------

    def test_content_search_with_filters(self, store: vs.Store) -> None:
        """search_content returns the k nearest items, filtered by media type, genre overlap, minimum rating,
        release date range and a similarity threshold; (content_id, media_type) is unique and storing an item
        again replaces it.

        Troubleshooting: the record id is '<media_type>:<content_id>' and the options become field filters: $overlap
        on the int[] genre_ids, $gte on the float rating (a NULL rating never matches), $between / $gte / $lte on
        the date release_date. Apply them before the k nearest are chosen (genre 27 matches only the farthest item),
        and read dates back as dates and int[] as lists of int.
        """
        content = ContentSearch(store, dim=4)
        stored = content.upsert_batch(catalogue())
        assert [c.key for c in stored] == ["movie:1", "movie:2", "movie:3", "tv:1", "tv:5", "movie:6"]
        assert content.count() == 6 and content.count("tv") == 2
        q = [1, 0.05, 0, 0]
        hits = content.search_content(q, k=3)
        assert [h.item.key for h in hits] == ["movie:1", "movie:2", "movie:3"]
        for h in hits:
            assert abs(h.similarity - expected_cosine(q, next(c["embedding"] for c in catalogue()
                                                              if f"{c['media_type']}:{c['content_id']}" == h.item.key
                                                              ))) < 1e-6
            assert abs(h.distance - (1 - h.similarity)) < 1e-6
        assert hits[0].item.title == "Alpha" and hits[0].item.genre_ids == (18, 80)
        assert hits[0].item.release_date == dt.date(2001, 6, 1) and hits[0].item.metadata == {"src": "tmdb"}
        assert [h.item.key for h in content.search_content(q, k=10, media_type="tv")] == ["tv:1", "tv:5"]
        assert [h.item.key for h in content.search_content(q, k=10, genre_ids=[18])] == ["movie:1", "movie:3",
                                                                                           "tv:1"]
        assert [h.item.key for h in content.search_content(q, k=10, min_rating=7.5)] == ["movie:1", "movie:3",
                                                                                           "tv:1"]
        assert [h.item.key for h in content.search_content(
            q, k=10, release_date_range=("2000-01-01", dt.date(2010, 12, 31)))] == ["movie:1", "tv:1", "tv:5"]
        assert [h.item.key for h in content.search_content(q, k=10, release_date_range=(None, "2000-01-01"))] == [
            "movie:2"]
        assert [h.item.key for h in content.search_content(
            q, k=10, media_type=["movie"], genre_ids=[18, 35], min_rating=7, release_date_range=("2020-01-01", None)
        )] == ["movie:3"]
        assert [h.item.key for h in content.search_content(q, k=10, threshold=0.95)] == ["movie:1", "movie:2",
                                                                                          "movie:3"]
        assert content.search_content(q, k=2, genre_ids=[27])[0].item.key == "movie:6"  # filter never starves
        # the same content_id under two media types is two items; storing again replaces
        assert content.get_content("1", "tv") is not None and content.get_content("1", "movie") is not None
        content.upsert_content({"content_id": "1", "media_type": "movie", "embedding": [0, 0, 0, 1],
                                "title": "Alpha (restored)", "rating": 8.2})
        assert content.count() == 6
        item = content.get_content("1", "movie")
        assert item is not None and item.title == "Alpha (restored)" and item.genre_ids == ()
        assert item.created_at is not None and item.updated_at is not None and item.created_at <= item.updated_at
        nearest = content.search_content([0, 0, 0, 1], k=1, include_vector=True)[0].item
        assert nearest.embedding is not None and nearest.embedding.tolist() == [0, 0, 0, 1]
        assert content.delete_content("1", "movie") is True and content.get_content("1", "movie") is None

    def test_similar_content_excludes_the_item_itself(self, store: vs.Store) -> None:
        """similar_content returns the k nearest other items (5 when 5 others exist), optionally only of the item's
        media type; an ambiguous content_id needs media_type (AmbiguousContent), a missing one or a wrong media type
        raises ContentNotFound, and k=0 InvalidInput.

        Troubleshooting: the item itself is excluded by a filter ($not of its content_id and media_type) and is the
        nearest record (distance 0): apply the filter before taking the k nearest, or k=5 returns 4.
        page(where={'content_id': ...}) must return the stored vector too, since the query is read from it.
        """
        content = ContentSearch(store, dim=4)
        content.upsert_batch(catalogue())
        hits = content.similar_content("2", k=3)
        assert [h.item.key for h in hits] == ["movie:1", "movie:3", "tv:1"]
        assert len(content.similar_content("2", k=5)) == 5
        assert [h.item.key for h in content.similar_content("1", k=2, media_type="tv")] == ["movie:1", "movie:2"]
        assert [h.item.key for h in content.similar_content("1", k=2, media_type="tv", same_media_type=True)] == [
            "tv:5"]
        with pytest.raises(AmbiguousContent):
            content.similar_content("1", k=2)
        with pytest.raises(ContentNotFound):
            content.similar_content("404", k=2)
        with pytest.raises(ContentNotFound):
            content.similar_content("5", k=2, media_type="movie")
        with pytest.raises(vs.InvalidInput):
            content.similar_content("2", k=0)

    def test_hybrid_rerank_scores_and_explains(self, store: vs.Store) -> None:
        """hybrid_search re-ranks the nearest candidates by 0.7 * similarity + 0.3 * boost (boost: half rating/10,
        half recency with a five-year half-life), returns the top n with their parts and an explanation naming
        the matched genres; weights are configurable and validated.

        Troubleshooting: the formula is vectorstore.media.content.hybrid_rank and today= pins the recency; the
        backend's part is the candidate search: exact cosine similarities, release_date read back as a date and a
        NULL rating as None, and the genre_ids / media_type filters applied before the candidates are chosen.
        """
        content = ContentSearch(store, dim=4)
        content.upsert_batch(catalogue())
        today = dt.date(2024, 3, 1)
        q = [1, 0.05, 0, 0]
        top = content.hybrid_search(q, n=3, today=today, preferred_genres=[18])
        assert len(top) == 3
        for h in top:
            age = (today - h.item.release_date).days if h.item.release_date else None
            rs = 0.0 if h.item.rating is None else min(1.0, h.item.rating / 10)
            cs = 0.0 if age is None else 0.5 ** (age / 1826.25)
            assert abs(h.rating_score - rs) < 1e-12 and abs(h.recency_score - cs) < 1e-12
            assert abs(h.boost - (0.5 * rs + 0.5 * cs)) < 1e-12
            assert abs(h.score - (0.7 * h.similarity + 0.3 * h.boost)) < 1e-12
        assert [h.score for h in top] == sorted((h.score for h in top), reverse=True)
        # Gamma (rating 9.1, released a year ago) overtakes the nearer Alpha (8.0, 2001) and Beta (6.0, 1995).
        assert [h.item.key for h in top] == ["movie:3", "movie:1", "movie:2"]
        assert "high rating 9.1/10" in top[0].explanation and "recent release (2023-03-01)" in top[0].explanation
        assert "Drama (18)" in top[1].explanation and top[1].matched_genres == (18,)
        assert top[2].matched_genres == () and "no requested genre matched" in top[2].explanation
        vector_only = content.hybrid_search(q, n=3, today=today, weights={"vector": 1.0})
        assert [h.item.key for h in vector_only] == ["movie:1", "movie:2", "movie:3"]
        rating_only = content.hybrid_search(q, n=2, today=today, weights=HybridWeights(
            vector=0.0, metadata=1.0, rating=1.0, recency=0.0), candidates=6)
        assert [h.item.key for h in rating_only] == ["movie:3", "movie:1"]
        filtered = content.hybrid_search(q, n=5, today=today, genre_ids=[18], media_type="movie")
        assert [h.item.key for h in filtered] == ["movie:3", "movie:1"]
        assert all(h.matched_genres == (18,) for h in filtered)
        for weights in ({"vector": 0.6, "metadata": 0.6}, {"vector": -0.1}, {"rating": 2}, {"vector": float("nan")},
                        {"speed": 1.0}):
            with pytest.raises(InvalidWeights):
                content.hybrid_search(q, n=3, weights=weights)
        with pytest.raises(InvalidWeights):
            ContentSearch(store, dim=4, weights={"vector": 0.5, "metadata": 0.4})
        for n in (0, -1):
            with pytest.raises(vs.InvalidInput):
                content.hybrid_search(q, n=n)

    def test_bad_content_is_refused(self, store: vs.Store) -> None:
        """Wrong dimension, bad media type, empty content_id, unknown keys, negative rating, bad release date, no
        embedding without an embedder, or a duplicate item in the batch: a subclass of InvalidInput, and a batch
        with one bad item writes nothing. Bad search options (k <= 0, media type, genre ids, rating type, date
        range, NaN threshold) raise InvalidInput, a wrong query dimension DimensionMismatch.

        Troubleshooting: all of these are checked by vectorstore.media and the core before the backend writes
        anything (upsert_batch validates every item first); a count other than 0 means part of a batch was written,
        so the backend's upsert is not all or nothing. Another error type means the backend was reached with the
        input unchecked: install vectorstore and vectorstore_conformance from the same release, and make sure the
        store under test is opened through vectorstore (the store_url fixture).
        """
        content = ContentSearch(store, dim=4)
        good = catalogue()[:2]
        cases: list[tuple[dict[str, Any], type[Exception]]] = [
            ({"content_id": "9", "media_type": "movie", "embedding": [1, 0, 0]}, vs.DimensionMismatch),
            ({"content_id": "9", "media_type": "Movie!", "embedding": [1, 0, 0, 0]}, vs.InvalidInput),
            ({"content_id": "", "media_type": "movie", "embedding": [1, 0, 0, 0]}, vs.InvalidInput),
            ({"content_id": "9", "media_type": "movie", "embedding": [1, 0, 0, 0], "year": 1999}, vs.InvalidInput),
            ({"content_id": "9", "media_type": "movie", "embedding": [1, 0, 0, 0], "rating": -1}, vs.InvalidInput),
            ({"content_id": "9", "media_type": "movie", "embedding": [1, 0, 0, 0], "release_date": "soon"},
             vs.InvalidInput),
            ({"content_id": "9", "media_type": "movie"}, vs.InvalidInput),  # no embedding and no embedder
            (dict(good[0]), vs.InvalidInput),  # a duplicate of good[0]
        ]
        for bad, error in cases:
            with pytest.raises(error):
                content.upsert_batch([*good, bad])
        assert content.count() == 0
        content.upsert_batch(good)
        q = [1, 0, 0, 0]
        for kwargs in ({"k": 0}, {"k": -3}, {"media_type": "MOVIE"}, {"genre_ids": ["x"]}, {"min_rating": "7"},
                       {"release_date_range": ("2010-01-01", "2000-01-01")}, {"release_date_range": "2000"},
                       {"threshold": float("nan")}):
            with pytest.raises(vs.InvalidInput):
                content.search_content(q, **kwargs)
        with pytest.raises(vs.DimensionMismatch):
            content.search_content([1, 0], k=1)

    def test_content_with_an_embedder(self, store: vs.Store) -> None:
        """With embedder=, items without an embedding are embedded from title and overview, a text query finds the
        matching item, and similar_content works on the embedded items.

        Troubleshooting: the embedder and the text handling are the library's; the backend's part is
        similar_content's: page(where={'content_id': ...}) must return the record with its stored vector (the query
        is read from it), and a search with where={'$not': {'content_id': ..., 'media_type': ...}} must exclude
        exactly that item (NOT of an AND of two equalities, two-valued).
        """
        content = ContentSearch(store, dim=64, embedder=HashingEmbedder(64))
        content.upsert_batch([
            {"content_id": "1", "media_type": "movie", "title": "Space pirates", "overview": "pirates in space"},
            {"content_id": "2", "media_type": "movie", "title": "Cooking show", "overview": "a baking contest"},
        ])
        assert content.search_content("pirates in outer space", k=1)[0].item.content_id == "1"
        assert content.similar_content("2", k=1)[0].item.content_id == "1"

    # -- embedding cache -----------------------------------------------------------------------

    def test_embedding_cache_hits_misses_and_ttl(self, store: vs.Store) -> None:
        """embed() computes only what the cache misses; hits and misses are counted; an entry past its TTL is
        a miss and is recomputed.

        Troubleshooting: entries are keyed by sha256(model NUL text) in embedding_cache_<dim>, with a timestamp
        expires_at (NULL: never). The backend's part: get() of missing ids returns nothing for them, timestamps
        compare as instants ($lte with an aware datetime), and delete(where=...) returns the number removed and only
        touches the given model's entries (purge_expired() == 1, clear() == 1).
        """
        calls: list[list[str]] = []

        class Counting(HashingEmbedder):
            name = "counting"

            def embed(self, texts: Any) -> Any:
                calls.append(list(texts))
                return super().embed(texts)

        clock = FakeClock()
        cache = EmbeddingCache(store, Counting(16), ttl=dt.timedelta(hours=1), clock=clock)
        assert cache.get("hello") is None
        first = cache.embed(["hello", "world", "hello"])
        assert calls == [["hello", "world"]]
        np.testing.assert_array_equal(first[0], first[2])
        np.testing.assert_array_equal(first[0], HashingEmbedder(16).embed(["hello"])[0])
        again = cache.embed(["world", "hello"])
        assert calls == [["hello", "world"]]
        np.testing.assert_array_equal(again, first[[1, 0]])
        assert (cache.stats.hits, cache.stats.misses, cache.stats.writes) == (2, 3, 2)
        clock.now = T0 + dt.timedelta(minutes=59)
        assert cache.get("hello") is not None
        clock.now = T0 + dt.timedelta(hours=1)
        assert cache.get("hello") is None  # expired: a miss
        cache.embed(["hello"])
        assert calls[-1] == ["hello"]
        assert cache.purge_expired() == 1  # "world" expired too
        assert cache.get("world") is None and cache.get("hello") is not None
        other_model = EmbeddingCache(store, model="other", dim=16)
        assert other_model.get("hello") is None  # keyed by model as well
        other_model.put("hello", [1.0] * 16)
        assert cache.get("hello") is not None and cache.clear() == 1 and other_model.get("hello") is not None
        with pytest.raises(vs.DimensionMismatch):
            other_model.put("x", [1.0] * 3)
        with pytest.raises(vs.InvalidInput):
            EmbeddingCache(store, Counting(16), ttl=-5)
        with pytest.raises(vs.InvalidInput):
            EmbeddingCache(store, model="m")

    # -- persistence and the async API ---------------------------------------------------------

    def test_media_data_survives_reopen(self, store: vs.Store, store_url: str) -> None:
        """Preferences (with a watch event where transactions exist), six content items and a cached embedding are
        still there after close and reopen on a persistent backend: the preference reads back equal, the stored
        dimensions are adopted, similar_content works and the cache hit is counted. A non-persistent backend starts
        empty.

        Troubleshooting: commit before close and keep the full definition in the catalog (get_collection returns the
        stored dim, so UserPreferences(again) adopts 8 and ContentSearch 4); timestamp fields must read back as the
        same aware UTC datetimes (microseconds kept), json fields as the same objects and date fields as dates,
        since the preference is compared field by field.
        """
        prefs = UserPreferences(store, dim=DIM)
        prefs.upsert_preference("u1", unit(1), confidence=0.4, genre_affinities={18: 0.7})
        if store.capabilities.transactions:
            prefs.record_watch_event("u1", unit(2), 0.9, genre_ids=[18])
        expected = prefs.get_preference("u1")
        ContentSearch(store, dim=4).upsert_batch(catalogue())
        embedder = HashingEmbedder(16)
        EmbeddingCache(store, embedder).embed(["kept"])
        with reopened(store, store_url) as again:
            if again is None:
                return
            assert UserPreferences(again).get_preference("u1") == expected  # the stored dim is adopted
            content = ContentSearch(again)
            assert content.count() == 6 and content.dim == 4
            assert [h.item.key for h in content.similar_content("2", k=2)] == ["movie:1", "movie:3"]
            cache = EmbeddingCache(again, embedder)
            assert cache.get("kept") is not None and cache.stats.hits == 1

    def test_media_async_twins(self, store: vs.Store) -> None:
        """AsyncUserPreferences and AsyncContentSearch over the async store give the sync classes' results. The same
        script of calls (every public method of UserPreferences and ContentSearch, by the same name on both twins,
        with the same arguments and fixed clocks: watch events, preference upserts, similar_users with and without
        min_confidence, deletes, counts, catalogue upserts, gets, filtered searches, similar_content, hybrid_search,
        and bad calls that raise) runs once on the sync classes and, after every collection is dropped, once on the
        async ones; each call's result (its value, or the error's type and message) is equal between the two runs,
        and so are the twins' dim, alpha and weights. Spot checks of the sync run: the first watch event counts one
        interaction (NotSupported without transactions), similar_content('2', k=1) is movie:1 and hybrid_search
        ranks movie:3 first. After the async run, new sync objects read what the async ones wrote (the same
        preferences, counts, item and search results).

        Troubleshooting: the async classes await the same backend calls as the sync ones (which run them through
        store.run), so fix the sync tests failing the same way first (test_similar_content_excludes_the_item_itself,
        test_hybrid_rerank_scores_and_explains, test_watch_events_update_by_ema_with_episode_and_patterns); a
        difference only here is in vectorstore.media's async classes, or in the backend after drop_collection: a
        re-created collection must start empty, with its int ids (the watch events' episode ids) from 1 again, and
        a search must give the same hits, scores and order for the same data every time.
        """
        inner = store.async_store
        day = dt.date(2024, 1, 1)
        zeta = {"content_id": "7", "media_type": "tv", "embedding": [0, 0, 1, 0], "title": "Zeta", "rating": 7.0,
                "release_date": "2020-01-01"}

        def script() -> list[tuple[str, str, tuple[Any, ...], dict[str, Any]]]:
            return [
                ("prefs", "count", (), {}),
                ("prefs", "get_preference", ("u1",), {}),
                ("prefs", "record_watch_event", ("u1", unit(1), 0.6),
                 {"content_id": "1", "media_type": "movie", "genre_ids": [18]}),
                ("prefs", "record_watch_event", ("u1", unit(2), 0.2),
                 {"genre_ids": [18, 35], "metadata": {"device": "tv"}}),
                ("prefs", "upsert_preference", ("u2", unit(3)),
                 {"confidence": 0.9, "genre_affinities": {35: 0.5}, "temporal_patterns": {"hour_of_day": {"20": 2}},
                  "metadata": {"k": 1}}),
                ("prefs", "upsert_preference", ("u3", unit(4)), {"confidence": 0.2}),
                ("prefs", "similar_users", (unit(3),), {"k": 3}),
                ("prefs", "similar_users", (unit(3),), {"k": 3, "min_confidence": 0.5}),
                ("prefs", "get_preference", ("u1",), {}),
                ("prefs", "delete_preference", ("u3",), {}),
                ("prefs", "delete_preference", ("u3",), {}),
                ("prefs", "count", (), {}),
                ("prefs", "record_watch_event", ("u1", unit(5), 1.5), {}),  # reward outside [0, 1]
                ("prefs", "upsert_preference", ("u4", unit(6, dim=3)), {}),  # wrong dimension
                ("content", "upsert_batch", (catalogue(),), {}),
                ("content", "upsert_content", (dict(zeta),), {}),
                ("content", "count", (), {}),
                ("content", "count", ("tv",), {}),
                ("content", "get_content", ("1", "tv"), {}),
                ("content", "get_content", ("404", "movie"), {}),
                ("content", "search_content", ([1, 0, 0, 0],), {"k": 3, "include_vector": True}),
                ("content", "search_content", ([1, 0, 0, 0],), {"k": 10, "media_type": "movie", "min_rating": 6.0}),
                ("content", "similar_content", ("2",), {"k": 1}),
                ("content", "similar_content", ("1",), {"k": 2}),  # ambiguous: movie:1 and tv:1
                ("content", "similar_content", ("1",), {"k": 3, "media_type": "tv", "same_media_type": True}),
                ("content", "hybrid_search", ([1, 0, 0, 0],), {"n": 3, "today": day, "preferred_genres": [18]}),
                ("content", "delete_content", ("6", "movie"), {}),
                ("content", "delete_content", ("6", "movie"), {}),
                ("content", "count", (), {}),
                ("content", "search_content", ([1, 0, 0, 0],), {"k": 0}),  # k must be positive
            ]

        def run(objects: dict[str, Any], awaited: bool) -> list[tuple[Any, ...]]:
            """Each call's result: ("value", what it returned) or ("error", the error's type, its message)."""
            results: list[tuple[Any, ...]] = []
            for target, name, args, kwargs in script():
                try:
                    result = getattr(objects[target], name)(*args, **kwargs)
                    results.append(("value", store.run(result) if awaited else result))
                except vs.VectorStoreError as exc:
                    results.append(("error", type(exc), str(exc)))
            return results

        # every public method of the sync classes is in the script, and is a coroutine of the async twin
        for target, sync_cls, async_cls in (("prefs", UserPreferences, AsyncUserPreferences),
                                            ("content", ContentSearch, AsyncContentSearch)):
            methods = {n for n, v in vars(sync_cls).items() if not n.startswith("_") and callable(v)}
            assert methods == {name for t, name, _, _ in script() if t == target}
            assert all(inspect.iscoroutinefunction(getattr(async_cls, n)) for n in methods)

        sync_objects: dict[str, Any] = {"prefs": UserPreferences(store, dim=DIM, clock=FakeClock()),
                                        "content": ContentSearch(store, dim=4, clock=FakeClock())}
        sync_results = run(sync_objects, awaited=False)

        def sync_result(name: str, *args: Any) -> tuple[Any, ...]:
            """The sync run's result of the first call of ``name`` with these positional arguments."""
            return next(r for (_, n, a, _), r in zip(script(), sync_results, strict=True)
                        if n == name and repr(a) == repr(args))

        first_event = sync_result("record_watch_event", "u1", unit(1), 0.6)
        if store.capabilities.transactions:
            assert first_event[0] == "value" and first_event[1].preference.interaction_count == 1
        else:
            assert first_event[:2] == ("error", vs.NotSupported)
        similar = sync_result("similar_content", "2")
        assert similar[0] == "value" and [h.item.key for h in similar[1]] == ["movie:1"]
        ranked = sync_result("hybrid_search", [1, 0, 0, 0])
        assert ranked[0] == "value" and ranked[1][0].item.key == "movie:3"

        for spec in store.list_collections():
            store.drop_collection(spec.name)
        async_objects: dict[str, Any] = {"prefs": AsyncUserPreferences(inner, dim=DIM, clock=FakeClock()),
                                         "content": AsyncContentSearch(inner, dim=4, clock=FakeClock())}
        async_results = run(async_objects, awaited=True)
        for step, got, want in zip(script(), async_results, sync_results, strict=True):
            assert got == want, f"{step[0]}.{step[1]}{step[2]!r} {step[3]!r}: async {got!r} != sync {want!r}"
        assert (async_objects["prefs"].dim, async_objects["prefs"].alpha) == (sync_objects["prefs"].dim,
                                                                              sync_objects["prefs"].alpha)
        assert (async_objects["content"].dim, async_objects["content"].weights) == (
            sync_objects["content"].dim, sync_objects["content"].weights)

        # what the async twins wrote, the sync classes read
        prefs, content = UserPreferences(store, dim=DIM), ContentSearch(store, dim=4)
        for user in ("u1", "u2", "u3"):
            assert prefs.get_preference(user) == store.run(async_objects["prefs"].get_preference(user))
        assert prefs.count() == store.run(async_objects["prefs"].count())
        assert content.count() == store.run(async_objects["content"].count())
        assert content.get_content("1", "tv") == store.run(async_objects["content"].get_content("1", "tv"))
        assert content.search_content([1, 0, 0, 0], k=10) == store.run(
            async_objects["content"].search_content([1, 0, 0, 0], k=10))

