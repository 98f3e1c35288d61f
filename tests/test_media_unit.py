"""Pure unit tests of vectorstore.media and vectorstore.ruvector: EMA math, hybrid scoring, explanations,
filter building, argument checks. No store involved (the conformance suite covers behaviour on backends)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

import vectorstore as vs
from vectorstore.media import ContentItem, HybridWeights, InvalidWeights
from vectorstore.media._util import KeyedLocks, check_number, run_serializable
from vectorstore.media.content import (
    ContentHit,
    coerce_item,
    content_filter,
    explain,
    hybrid_rank,
    rating_score,
    recency_score,
)
from vectorstore.media.preferences import ema, next_confidence, update_affinities, update_temporal
from vectorstore.media.schema import SPEC_TABLES, content_table, env_dim, preference_table
from vectorstore.ruvector import UnsupportedMetric, _hnsw, _metadata_filter, parse_metric

# -- EMA ---------------------------------------------------------------------------------------


def test_first_event_initialises_the_vector() -> None:
    e = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    out = ema(None, e, 0.3)
    np.testing.assert_array_equal(out, e.astype(np.float64))
    assert out is not e


def test_ema_blends_old_and_new() -> None:
    old, new = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(ema(old, new, 0.25), [0.75, 0.25])
    np.testing.assert_allclose(ema(old, new, 1.0), [0.0, 1.0])
    # Repeated events converge toward the embedding geometrically: (1 - a)^n of the old one remains.
    v: Any = old
    for _ in range(10):
        v = ema(v, new, 0.1)
    np.testing.assert_allclose(v, [0.9 ** 10, 1 - 0.9 ** 10])


def test_ema_that_cancels_out_keeps_the_embedding() -> None:
    out = ema(np.array([1.0, 0.0]), np.array([-1.0, 0.0]), 0.5)
    np.testing.assert_array_equal(out, [-1.0, 0.0])


def test_confidence_removes_alpha_of_the_remaining_uncertainty() -> None:
    assert next_confidence(None, 0.2) == pytest.approx(0.2)
    assert next_confidence(0.5, 0.2) == pytest.approx(0.6)
    c = None
    for _ in range(5):
        c = next_confidence(c, 0.1)
    assert c == pytest.approx(1 - 0.9 ** 5)
    assert next_confidence(1.0, 0.7) == 1.0


def test_genre_affinities_move_toward_the_reward() -> None:
    out = update_affinities({18: 0.8, 35: 0.2}, [18, 27], 0.0, 0.25)
    assert out == {18: pytest.approx(0.6), 35: 0.2, 27: 0.0}


def test_temporal_patterns_count_hour_and_weekday() -> None:
    friday = dt.datetime(2024, 5, 3, 7, 0, tzinfo=dt.UTC)
    out = update_temporal({}, friday)
    assert out == {"hour_of_day": {"7": 1}, "day_of_week": {"fri": 1}}
    out = update_temporal({**out, "other": [1]}, friday + dt.timedelta(days=2))
    assert out == {"hour_of_day": {"7": 2}, "day_of_week": {"fri": 1, "sun": 1}, "other": [1]}
    # Garbage under the pattern keys is replaced rather than crashing a watch event.
    assert update_temporal({"hour_of_day": "x", "day_of_week": {"fri": "n"}}, friday) == {
        "hour_of_day": {"7": 1}, "day_of_week": {"fri": 1}}


# -- hybrid scoring ----------------------------------------------------------------------------


def item(key: str, rating: float | None = None, released: str | None = None, genres: tuple[int, ...] = ()
         ) -> ContentItem:
    media_type, content_id = key.split(":")
    return ContentItem(content_id, media_type, None, rating=rating, genre_ids=genres,
                       release_date=None if released is None else dt.date.fromisoformat(released))


def test_rating_and_recency_scores() -> None:
    w = HybridWeights()
    assert rating_score(None, w) == 0.0 and rating_score(8.5, w) == 0.85 and rating_score(12, w) == 1.0
    today = dt.date(2024, 1, 1)
    assert recency_score(None, today, w) == 0.0
    assert recency_score(dt.date(2025, 1, 1), today, w) == 1.0
    assert recency_score(today, today, w) == 1.0
    five_years = today - dt.timedelta(days=1826.25)
    assert recency_score(five_years, today, w) == pytest.approx(0.5, abs=1e-3)
    assert recency_score(today - dt.timedelta(days=365), today, HybridWeights(recency_half_life_days=365)) == 0.5


def test_hybrid_formula_and_order() -> None:
    today = dt.date(2024, 1, 1)
    hits = [
        ContentHit(item("movie:a", 5.0, "1990-01-01"), 0.05, 0.95),
        ContentHit(item("movie:b", 9.0, "2023-12-01", (18, 80)), 0.15, 0.85),
        ContentHit(item("movie:c"), 0.10, 0.90),
        ContentHit(item("movie:d"), 0.10, 0.90),
    ]
    ranked = hybrid_rank(hits, 3, HybridWeights(), today, (18,))
    assert [h.item.key for h in ranked] == ["movie:b", "movie:a", "movie:c"]  # c before d: ties by key
    b = ranked[0]
    rs, cs = 0.9, 0.5 ** (31 / 1826.25)
    assert b.rating_score == pytest.approx(rs) and b.recency_score == pytest.approx(cs)
    assert b.boost == pytest.approx(0.5 * rs + 0.5 * cs)
    assert b.score == pytest.approx(0.7 * 0.85 + 0.3 * (0.5 * rs + 0.5 * cs))
    assert b.matched_genres == (18,)
    assert ranked[2].score == pytest.approx(0.7 * 0.9) and ranked[2].boost == 0.0
    vector_only = hybrid_rank(hits, 4, HybridWeights(vector=1, metadata=0), today)
    assert [h.item.key for h in vector_only] == ["movie:a", "movie:c", "movie:d", "movie:b"]


def test_explanations() -> None:
    w = HybridWeights()
    boosted = item("movie:b", 9.0, "2023-12-01", (18, 80))
    text = explain(0.8512, 0.9, 0.98, boosted, (18, 80), (18, 80, 35), w)
    assert text == ("similarity 0.85; boosted 0.94 by high rating 9/10 and recent release (2023-12-01); "
                    "genres matched: Drama (18), Crime (80)")
    small = explain(0.5, 0.5, 0.01, item("tv:x", 5.0, "1990-01-01", (99999,)), (99999,), (99999,), w)
    assert small == "similarity 0.50; small boost 0.26 (rating 5/10, released 1990-01-01); genres matched: 99999"
    assert explain(0.5, 0.0, 0.0, item("tv:y"), (), (18,), w) == (
        "similarity 0.50; no boost (no rating or release date); no requested genre matched")
    assert explain(0.5, 0.0, 0.0, item("tv:y"), (), (), w) == "similarity 0.50; no boost (no rating or release date)"


def test_weights_are_validated() -> None:
    assert HybridWeights.coerce(None) == HybridWeights(0.7, 0.3, 0.5, 0.5)
    w = HybridWeights.coerce({"vector": 0.9})
    assert w.vector == 0.9 and w.metadata == pytest.approx(0.1)
    assert HybridWeights.coerce({"recency": 0.25}).rating == 0.75
    for bad in ({"vector": 0.6, "metadata": 0.6}, {"vector": -0.2}, {"metadata": 1.5}, {"rating": float("inf")},
                {"vector": True}, {"vector": "0.7"}, {"rating_scale": 0}, {"recency_half_life_days": -1},
                {"bogus": 1}, [0.7, 0.3]):
        with pytest.raises(InvalidWeights):
            HybridWeights.coerce(bad)  # type: ignore[arg-type]
    assert issubclass(InvalidWeights, vs.InvalidInput)


# -- input -------------------------------------------------------------------------------------


def test_content_filter_building() -> None:
    assert content_filter() is None
    assert content_filter(media_type="movie") == {"media_type": "movie"}
    assert content_filter(media_type=["movie", "tv"], genre_ids=[18, 18, 80], min_rating=7) == {"$and": [
        {"media_type": {"$in": ["movie", "tv"]}}, {"genre_ids": {"$overlap": [18, 80]}}, {"rating": {"$gte": 7.0}}]}
    assert content_filter(release_date_range=("2000-01-01", None)) == {"release_date": {"$gte": dt.date(2000, 1, 1)}}
    assert content_filter(release_date_range=(None, dt.date(2000, 1, 1))) == {
        "release_date": {"$lte": dt.date(2000, 1, 1)}}
    assert content_filter(release_date_range=(None, None)) is None
    bad: dict[str, Any]
    for bad in ({"media_type": []}, {"genre_ids": []}, {"genre_ids": [True]}, {"min_rating": float("nan")},
                {"release_date_range": ("2001-01-01", "2000-01-01")}, {"release_date_range": ("2000-01-01",)},
                {"media_type": "Movie"}):
        with pytest.raises(vs.InvalidInput):
            content_filter(**bad)


def test_items_are_checked() -> None:
    c = coerce_item({"content_id": 550, "media_type": "movie", "vector": [1, 0], "genre_ids": (18,),
                     "release_date": "1999-10-15", "rating": 8}, "item")
    assert (c.key, c.genre_ids, c.release_date, c.rating) == ("movie:550", (18,), dt.date(1999, 10, 15), 8.0)
    for bad in ({"media_type": "movie"}, {"content_id": "1", "media_type": "mo:vie"},
                {"content_id": "1", "media_type": "movie", "title": 5},
                {"content_id": "1", "media_type": "movie", "metadata": {"x": {1, 2}}}):
        with pytest.raises(vs.InvalidInput):
            coerce_item(bad, "item")


def test_number_checks() -> None:
    assert check_number(0.5, "x", 0, 1) == 0.5
    with pytest.raises(vs.InvalidInput):
        check_number(0, "alpha", 0, 1, low_open=True)
    for bad in (True, "1", float("nan"), None):
        with pytest.raises(vs.InvalidInput):
            check_number(bad, "x")


def test_table_definitions_and_env_dims(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTDB_VECTOR_DIM", raising=False)
    monkeypatch.delenv("RUVECTOR_VECTOR_DIM", raising=False)
    assert (preference_table().dim, content_table().dim) == (384, 768)
    monkeypatch.setenv("AGENTDB_VECTOR_DIM", "64")
    monkeypatch.setenv("RUVECTOR_VECTOR_DIM", "128")
    assert (preference_table().dim, content_table().dim, content_table(16).dim) == (64, 128, 16)
    monkeypatch.setenv("RUVECTOR_VECTOR_DIM", "lots")
    with pytest.raises(vs.ConfigError):
        env_dim("RUVECTOR_VECTOR_DIM", 768)
    assert SPEC_TABLES == {"user_preferences": "user_preferences", "content_vectors": "content_vectors",
                           "reasoning_patterns": "reasoning_patterns", "reflexion_episodes": "episodes",
                           "skill_library": "skills"}


# -- retries and locks -------------------------------------------------------------------------


def test_retry_loop_counts_attempts_and_gives_up() -> None:
    """run_serializable counts the attempts of the core's run_transaction (on a real memory store)."""
    import asyncio

    async def scenario() -> tuple[tuple[str, int], int]:
        store = await vs.open_store("memory://")
        calls = {"n": 0}

        async def step() -> str:
            calls["n"] += 1
            if calls["n"] < 3:
                raise vs.TransactionConflict("lost")
            return "ok"

        first = await run_serializable(store, step, max_retries=3, base_delay=0.0)
        calls["n"] = 0

        async def always() -> str:
            calls["n"] += 1
            raise vs.TransactionConflict("lost")

        with pytest.raises(vs.TransactionConflict):
            await run_serializable(store, always, max_retries=3, base_delay=0.0)
        await store.aclose()
        return first, calls["n"]

    first, tries = asyncio.run(scenario())
    assert first == ("ok", 3)
    assert tries == 4


def test_keyed_lock_is_bounded_and_cleans_up() -> None:
    import asyncio

    locks = KeyedLocks()

    async def scenario() -> list[str]:
        order: list[str] = []

        async def holder() -> None:
            async with locks.hold("k"):
                order.append("a-in")
                await asyncio.sleep(0.05)
                order.append("a-out")

        async def waiter() -> None:
            await asyncio.sleep(0.01)
            async with locks.hold("k"):
                order.append("b-in")

        async def impatient() -> None:
            await asyncio.sleep(0.01)
            async with locks.hold("k", timeout=0.001):  # gives up waiting and goes on
                order.append("c-in")

        await asyncio.gather(holder(), waiter(), impatient())
        return order

    order = asyncio.run(scenario())
    assert order.index("c-in") < order.index("a-out") < order.index("b-in")
    assert locks._locks == {}


# -- ruvector ----------------------------------------------------------------------------------


def test_ruvector_metrics() -> None:
    assert parse_metric("Cosine").value == "cosine"
    assert parse_metric("Euclidean").value == "l2"
    assert parse_metric("DotProduct").value == "inner_product"
    with pytest.raises(UnsupportedMetric, match="Manhattan"):
        parse_metric("Manhattan")
    with pytest.raises(vs.InvalidSchema):
        parse_metric("euclidean")


def test_ruvector_filter_and_hnsw_config() -> None:
    assert _metadata_filter(None) is None and _metadata_filter({}) is None
    assert _metadata_filter({"genre": "drama", "year": 7}) == {"metadata.genre": {"$eq": "drama"},
                                                               "metadata.year": {"$eq": 7}}
    for bad in ({"a": [1]}, {"a": {"b": 1}}, {"a.b": 1}, {"": 1}, "x"):
        with pytest.raises(vs.InvalidFilter):
            _metadata_filter(bad)
    index, ef = _hnsw({"m": 32, "efConstruction": 200, "efSearch": 100, "maxElements": 10})
    assert (index, ef) == (vs.HNSW(m=32, ef_construction=200), 100)
    for bad in ({"m": 1}, {"ef_search": 0}, {"size": 3}):
        with pytest.raises(vs.InvalidSchema):
            _hnsw(bad)
