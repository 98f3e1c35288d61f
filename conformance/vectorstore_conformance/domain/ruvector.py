"""The RuVector-style facade (``vectorstore.ruvector.VectorDB``) on any backend: RuVector's names and
result shapes, without the defects listed in ``shared/compat/ruvector.md``."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

import vectorstore as vs
from vectorstore.ruvector import AsyncVectorDB, SearchResult, UnsupportedMetric, VectorDB, VectorEntry
from vectorstore_conformance.helpers import assert_score, clustered, reference_distances


class RuVectorConformance:
    def test_insert_get_delete_len(self, store: vs.Store) -> None:
        """insert returns the id (a UUID when none is given), get returns {id, vector, metadata} or None, delete
        returns whether something was deleted, len / is_empty count entries.

        Troubleshooting: entries are records of the text-id collection 'ruvector' without fields: get must return
        the nested metadata unchanged and the vector as float32, get of a missing id no record (so None), delete the
        number of rows removed (True once, then False), and count the exact number of records.
        """
        db = VectorDB(dimensions=3, store=store)
        assert db.is_empty() and db.len() == 0
        new = db.insert({"vector": [0.1, 0.2, 0.3], "metadata": {"genre": "drama", "tags": ["a", "b"],
                                                                   "nested": {"year": 1999, "score": 7.5}}})
        uuid.UUID(new)  # a UUID string, as RuVector's
        assert db.insert({"id": "b", "vector": [1, 0, 0]}) == "b"
        assert db.insert_batch([{"id": "c", "vector": [0, 1, 0]}, VectorEntry("d", np.array([0, 0, 1.0]))]) == [
            "c", "d"]
        assert db.len() == 4 and len(db) == 4 and not db.is_empty()
        got = db.get(new)
        assert isinstance(got, VectorEntry) and got.id == new
        assert got.metadata == {"genre": "drama", "tags": ["a", "b"], "nested": {"year": 1999, "score": 7.5}}
        assert got.vector.dtype == np.float32
        assert got.vector.tolist() == np.array([0.1, 0.2, 0.3], dtype=np.float32).tolist()
        assert got.to_dict()["metadata"]["nested"] == {"year": 1999, "score": 7.5}
        assert db.get("b") is not None and db.get("b").metadata == {}  # type: ignore[union-attr]
        assert db.get("missing") is None
        assert db.delete("b") is True and db.delete("b") is False
        assert db.len() == 3

    @pytest.mark.parametrize("metric", ["Cosine", "Euclidean", "DotProduct"])
    def test_scores_are_distances_ascending(self, store: vs.Store, metric: str) -> None:
        """search returns {id, score, vector, metadata}, ascending by score, where score is a distance: Cosine
        1 - cos, Euclidean the L2 distance, DotProduct -dot (to 1e-6, every backend), ties by id; each result
        carries its metadata and its stored vector.

        Troubleshooting: the score is the backend's Hit.distance under cosine, l2 or inner_product: l2 the Euclidean
        distance (not squared), inner_product -dot, cosine 1 - cos, in float64 from the stored vectors (re-rank
        float32 index scores); ties by id; VectorDB always asks include_vector=True, so return the stored float32
        vector bit-exact.
        """
        data = clustered(60, 8, seed=3)
        db = VectorDB(dimensions=8, distance_metric=metric, store=store, collection=f"rv_{metric.lower()}")
        db.insert_batch([{"id": f"v{i:02d}", "vector": v, "metadata": {"i": i}} for i, v in enumerate(data)])
        query = data[7] + 0.05
        results = db.search({"vector": query, "k": 10})
        assert len(results) == 10 and all(isinstance(r, SearchResult) for r in results)
        name = {"Cosine": "cosine", "Euclidean": "l2", "DotProduct": "inner_product"}[metric]
        dist = reference_distances(name, data, query)
        order = sorted(range(len(data)), key=lambda i: (dist[i], f"v{i:02d}"))[:10]
        assert [r.id for r in results] == [f"v{i:02d}" for i in order]
        for r, i in zip(results, order, strict=True):
            assert_score(name, r.score, float(dist[i]), query, data[i], f"score of {r.id}")
            assert r.metadata == {"i": i}
            np.testing.assert_array_equal(r.vector, data[i])
        assert [r.score for r in results] == sorted(r.score for r in results)
        assert results[0].to_dict()["id"] == results[0].id

    def test_filter_applies_before_top_k(self, store: vs.Store) -> None:
        """The filter (exact match on metadata keys) is applied before taking the top k, so k results come back
        whenever k entries match, even when they are far from the query; numbers compare as numbers (7 == 7.0,
        true != 1).

        Troubleshooting: the filter becomes {'metadata.<key>': {'$eq': value}}: the backend's metadata equality must
        compare JSON numbers numerically (7 == 7.0) but booleans only with booleans (true != 1; SQLite's
        json_extract returns 1 for true, so check json_type), and must apply before the k nearest are chosen (the
        rare entries are the farthest). The last search asks for 50 of 44 entries: return all 44.
        """
        db = VectorDB(dimensions=4, store=store)
        rng = np.random.default_rng(0)
        near = rng.normal(0, 0.01, (40, 4)) + np.array([1, 0, 0, 0])
        db.insert_batch([{"id": f"n{i:02d}", "vector": v, "metadata": {"kind": "common", "year": 2000}}
                         for i, v in enumerate(near)])
        db.insert_batch([
            {"id": "r1", "vector": [-1, 0, 0, 0], "metadata": {"kind": "rare", "year": 7}},
            {"id": "r2", "vector": [-1, 0.1, 0, 0], "metadata": {"kind": "rare", "year": 7.0}},
            {"id": "r3", "vector": [-1, 0, 0.2, 0], "metadata": {"kind": "rare", "year": True}},
            {"id": "r4", "vector": [-1, 0, 0, 0.3], "metadata": {"kind": "rare"}},
        ])
        q = [1, 0, 0, 0]
        rare = db.search({"vector": q, "k": 3, "filter": {"kind": "rare"}})
        assert len(rare) == 3 and {r.id for r in rare} <= {"r1", "r2", "r3", "r4"}
        assert sorted(r.id for r in db.search({"vector": q, "k": 10, "filter": {"year": 7}})) == ["r1", "r2"]
        assert sorted(r.id for r in db.search({"vector": q, "k": 10, "filter": {"year": 7.0, "kind": "rare"}})) == [
            "r1", "r2"]
        assert [r.id for r in db.search({"vector": q, "k": 10, "filter": {"year": True}})] == ["r3"]
        assert db.search({"vector": q, "k": 10, "filter": {"year": 1}}) == []
        assert len(db.search({"vector": q, "k": 5, "filter": {}})) == 5
        assert len(db.search({"vector": q, "k": 50, "efSearch": 100})) == 44

    def test_reinsert_replaces(self, store: vs.Store) -> None:
        """Inserting an existing id replaces its vector and metadata: len stays 2, a search at the new vector finds
        it first with score exactly 0.0 and the new metadata, and once it is deleted only 'b' is found.

        Troubleshooting: an insert is an upsert: replace the vector and metadata (no merge, no second row). Compute
        l2 as the root of the summed squared differences, not from norms and a dot product, which gives a small
        non-zero (or NaN) distance for identical vectors; a delete must remove the record from every search path,
        index included.
        """
        db = VectorDB(dimensions=2, distance_metric="Euclidean", store=store)
        db.insert({"id": "a", "vector": [0, 0], "metadata": {"v": 1}})
        db.insert({"id": "b", "vector": [5, 5]})
        db.insert({"id": "a", "vector": [10, 10], "metadata": {"v": 2}})
        assert db.len() == 2
        results = db.search({"vector": [10, 10], "k": 2})
        assert [r.id for r in results] == ["a", "b"]
        assert results[0].score == 0.0 and results[0].metadata == {"v": 2}
        db.delete("a")
        assert [r.id for r in db.search({"vector": [10, 10], "k": 2})] == ["b"]

    def test_bad_input_is_typed(self, store: vs.Store) -> None:
        """k <= 0, a wrong dimension, Manhattan (not supported by the store), an unknown metric, bad dimensions or
        hnsw_config, bad entries or queries or filters: typed errors (subclasses of InvalidInput), nothing written;
        the 'ruvector' collection opened with other dimensions or another metric raises CollectionExists.

        Troubleshooting: the checks are the facade's and the core's, made before any write (a batch with a NaN in
        its second entry writes nothing, so len stays 1); the backend's part is get_collection(), which must return
        the stored dim and metric, so that a VectorDB with other dimensions or another metric over the same
        collection raises CollectionExists instead of writing into it.
        """
        with pytest.raises(UnsupportedMetric) as info:
            VectorDB(dimensions=3, distance_metric="Manhattan", store=store)
        assert isinstance(info.value, vs.InvalidInput) and isinstance(info.value, vs.NotSupported)
        assert "Manhattan" in str(info.value)
        for bad in ("cosine", "Hamming", None):
            with pytest.raises(vs.InvalidInput):
                VectorDB(dimensions=3, distance_metric=bad, store=store)  # type: ignore[arg-type]
        for dims in (0, -1, 2.5, True, 20000):
            with pytest.raises(vs.InvalidInput):
                VectorDB(dimensions=dims, store=store)  # type: ignore[arg-type]
        with pytest.raises(vs.InvalidInput):
            VectorDB(dimensions=3, store=store, hnsw_config={"m": 1})
        db = VectorDB(dimensions=3, store=store)
        db.insert({"id": "x", "vector": [1, 0, 0]})
        for k in (0, -1):
            with pytest.raises(vs.InvalidInput):
                db.search({"vector": [1, 0, 0], "k": k})
        bad_queries: list[Any] = [{"vector": [1, 0]}, {"k": 1}, {"vector": [1, 0, 0], "kk": 1}, [1, 0, 0],
                                  {"vector": [1, 0, 0], "filter": {"a": [1]}},
                                  {"vector": [1, 0, 0], "filter": {"a.b": 1}},
                                  {"vector": [1, 0, 0], "filter": "genre=drama"}]
        for query in bad_queries:
            with pytest.raises(vs.InvalidInput):
                db.search(query)
        with pytest.raises(vs.DimensionMismatch):
            db.search({"vector": [1, 0], "k": 1})
        bad_entries: list[Any] = [[{"id": "y", "vector": [1, 0]}], [{"id": "y", "vector": None}],
                                  [{"id": 5, "vector": [1, 0, 0]}],
                                  [{"id": "y", "vector": [1, 0, 0], "metadata": "{}"}],
                                  [{"id": "y", "vector": [1, 0, 0], "extra": 1}],
                                  [{"id": "y", "vector": [1, 0, 0]}, {"id": "z", "vector": [float("nan"), 0, 0]}]]
        for entries in bad_entries:
            with pytest.raises(vs.InvalidInput):
                db.insert_batch(entries)
        assert db.len() == 1
        with pytest.raises(vs.CollectionExists):
            VectorDB(dimensions=4, store=store).len()  # same collection, other dimensions
        with pytest.raises(vs.CollectionExists):
            VectorDB(dimensions=3, distance_metric="Euclidean", store=store).len()

    def test_url_constructor_and_persistence(self, store: vs.Store, store_url: str) -> None:
        """VectorDB(url=...) opens its own store (closed by close()); entries survive close and reopen on a
        persistent backend.

        Troubleshooting: VectorDB(url=...) opens a second store on the URL while the fixture's store is still open,
        so a persistent backend must allow two stores on one database (SQLite: WAL and a busy timeout; PostgreSQL: a
        pool of its own), and aclose() must release every connection; data must be committed before close, so the
        reopened VectorDB finds both entries, the definition of 'rv_url' and the exact vector. The DotProduct score
        is -dot: exactly -3.0 here.
        """
        with VectorDB(dimensions=3, distance_metric="DotProduct", url=store_url, collection="rv_url") as db:
            db.insert_batch([{"id": "a", "vector": [1, 2, 3], "metadata": {"n": 1}}, {"id": "b", "vector": [3, 2, 1]}])
            assert db.len() == 2
            assert [r.id for r in db.search({"vector": [0, 0, 1], "k": 1})] == ["a"]
            assert db.search({"vector": [0, 0, 1], "k": 1})[0].score == -3.0
        assert db.store.closed
        if not store.capabilities.persistent:
            return
        with VectorDB(dimensions=3, distance_metric="DotProduct", url=store_url, collection="rv_url") as again:
            assert again.len() == 2
            got = again.get("a")
            assert got is not None and got.metadata == {"n": 1} and got.vector.tolist() == [1, 2, 3]

    def test_async_vectordb(self, store: vs.Store) -> None:
        """AsyncVectorDB over the async store: insert returns the id, insert_batch adds an entry, a filtered search
        returns only the matching entry (1 hit for k=2), len counts 2, delete reports True and is_empty False.

        Troubleshooting: AsyncVectorDB awaits the same backend calls as VectorDB (which runs them through
        store.run), so fix test_insert_get_delete_len and test_filter_applies_before_top_k first; a failure only
        here is in vectorstore.ruvector.AsyncVectorDB, not the backend.
        """

        async def scenario() -> tuple[Any, ...]:
            db = AsyncVectorDB(dimensions=2, store=store.async_store, collection="rv_async")
            first = await db.insert({"id": "p", "vector": [1, 0], "metadata": {"g": "x"}})
            await db.insert_batch([{"id": "q", "vector": [0, 1], "metadata": {"g": "y"}}])
            hits = await db.search({"vector": [0.1, 1], "k": 2, "filter": {"g": "x"}})
            return first, await db.len(), [h.id for h in hits], await db.delete("p"), await db.is_empty()

        assert store.run(scenario()) == ("p", 2, ["p"], True, False)
