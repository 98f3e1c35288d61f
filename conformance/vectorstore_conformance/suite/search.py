"""Search: scores, ordering, ties, thresholds, k, filtered search."""

from __future__ import annotations

import urllib.parse
from typing import Any

import numpy as np
import pytest

import vectorstore as vs
from vectorstore.filters import matches, parse_filter
from vectorstore_conformance.helpers import (
    assert_score,
    clustered,
    expected_order,
    ids_of,
    load_contract,
    records,
    reference_distances,
)

METRICS = ["cosine", "l2", "inner_product"]
DISTANCES = load_contract("distances.json")


def with_options(url: str, **options: object) -> str:
    """``url`` with these query options set (replacing any of the same name, keeping the others and the
    rest of the URL as it is)."""
    base, _, query = url.partition("?")
    kept = [(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k not in options]
    return f"{base}?{urllib.parse.urlencode(kept + [(k, str(v)) for k, v in options.items()])}"


class SearchConformance:
    @pytest.mark.parametrize("metric", METRICS)
    @pytest.mark.parametrize("case", DISTANCES["cases"], ids=[c["name"] for c in DISTANCES["cases"]])
    def test_distance_contract(self, store: vs.Store, metric: str, case: dict) -> None:  # type: ignore[type-arg]
        """Distances and similarities equal contracts/distances.json within its tolerance.

        Troubleshooting: cosine distance = 1 - cos, l2 = Euclidean (not squared),
        inner_product distance = -dot; similarity = metric.similarity(distance).
        """
        dim = len(case["query"])
        col = store.create_collection("d", dim=dim, metric=metric)
        ids = [f"r{i}" for i in range(len(case["records"]))]
        col.upsert([{"id": rid, "vector": v} for rid, v in zip(ids, case["records"], strict=True)])
        hits = {h.id: h for h in col.search(case["query"], k=len(ids))}
        assert set(hits) == set(ids)
        for rid, vector, want in zip(ids, case["records"], case["expect"][metric], strict=True):
            assert_score(metric, hits[rid].distance, want["distance"], case["query"], vector, f"{rid} distance")
            assert_score(metric, hits[rid].similarity, want["similarity"], case["query"], vector,
                         f"{rid} similarity")

    @pytest.mark.parametrize("name", ["c", "t", "k", "d", "distance", "select"])
    def test_collection_names_that_are_sql_words_or_aliases(self, store: vs.Store, name: str) -> None:
        """Search works in collections named like the aliases and keywords a backend's SQL may use.

        Troubleshooting: quote identifiers, and name your own CTEs and aliases so they cannot
        collide with a collection's table (a reserved prefix such as ``vs_``)."""
        col = store.create_collection(name, dim=3, metric="l2", fields={"n": "int"})
        col.upsert([{"id": f"r{i}", "vector": [1.0, i, 0.5], "fields": {"n": i}} for i in range(20)])
        assert ids_of(col.search([1.0, 3.0, 0.5], k=2)) == ["r3", "r2"]
        assert ids_of(col.search([1.0, 3.0, 0.5], k=2, where={"n": {"$gte": 4}})) == ["r4", "r5"]

    @pytest.mark.parametrize("metric", METRICS)
    def test_scores_match_numpy_reference(self, store: vs.Store, metric: str) -> None:
        """On 300 clustered 24-d vectors, every hit's distance equals the float64 NumPy reference
        (1e-6, scaled) and the ranking equals the exact ranking (recall 1.0 for exact backends,
        >= 0.9 at k=10 for approximate ones).

        Troubleshooting: report distances computed in float64 from the stored float32 vectors
        (vectorstore.scoring.exact_distances); an index or server that scores in float32 (pgvector) must re-rank its
        candidates in float64 before returning them. l2 is the Euclidean distance, not its square; inner_product is
        -dot; cosine is 1 - cos. An approximate backend under 9 of 10 needs a larger default candidate list
        (ef_search).
        """
        data = clustered(300, 24, seed=1)
        ids = [f"v{i:03d}" for i in range(len(data))]
        col = store.create_collection("ref", dim=24, metric=metric)
        col.upsert(records(ids, data))
        queries = clustered(5, 24, seed=2)
        by_id: dict[Any, Any] = dict(zip(ids, data, strict=True))
        for q in queries:
            hits = col.search(q, k=10)
            assert len(hits) == 10
            truth = expected_order(metric, ids, data, q)[:10]
            if store.capabilities.exact_search:
                assert ids_of(hits) == truth
            else:
                assert len(set(ids_of(hits)) & set(truth)) >= 9
            ref: dict[Any, float] = dict(zip(ids, reference_distances(metric, data, q), strict=True))
            for h in hits:
                assert_score(metric, h.distance, float(ref[h.id]), q, by_id[h.id], f"{h.id} distance")
                assert_score(metric, h.similarity, vs.Metric.parse(metric).similarity(float(ref[h.id])), q,
                             by_id[h.id], f"{h.id} similarity")
            assert [h.distance for h in hits] == sorted(h.distance for h in hits)

    @pytest.mark.parametrize("metric", METRICS)
    def test_ties_are_broken_by_id(self, store: vs.Store, metric: str) -> None:
        """Records at equal distance come in id order, also where k cuts through the tie.

        Troubleshooting: ORDER BY distance, id — and an ANN shortcut must not pick tied rows by
        insertion order.
        """
        col = store.create_collection("ties", dim=3, metric=metric)
        same = [0.6, 0.8, 0.0]
        scrambled = ["t5", "t1", "t9", "t3", "t7", "t0"]
        col.upsert([{"id": rid, "vector": same} for rid in scrambled]
                   + [{"id": "far", "vector": [-0.6, -0.8, 0.1]}])
        hits = col.search([0.6, 0.8, 0.0], k=4)
        assert ids_of(hits) == ["t0", "t1", "t3", "t5"]

    def test_k_larger_than_the_collection(self, store: vs.Store) -> None:
        """k above the number of records returns every record, nearest first.

        Troubleshooting: a LIMIT k larger than the collection simply returns every row: do not raise, pad, or ask an
        index for more neighbours than it holds (clamp k for an HNSW / vec0 query, or answer with an exact scan);
        the hits stay ordered by distance, then id.
        """
        col = store.create_collection("small", dim=2)
        col.upsert([{"id": "a", "vector": [1, 0]}, {"id": "b", "vector": [0, 1]}, {"id": "c", "vector": [1, 1]}])
        assert ids_of(col.search([1, 0.1], k=100)) == ["a", "c", "b"]

    def test_empty_collection(self, store: vs.Store) -> None:
        """Searching an empty collection returns no hits.

        Troubleshooting: return one empty hit list per query row ([[]] for one query), not []: the core takes the
        first list; and guard code that stacks vectors or queries an index when there are no rows (np.stack of
        nothing raises).
        """
        col = store.create_collection("empty", dim=2)
        assert col.search([1, 0], k=5) == []

    @pytest.mark.parametrize("metric", METRICS)
    def test_threshold_is_a_minimum_similarity(self, store: vs.Store, metric: str) -> None:
        """Under each metric, with the 10th hit's similarity as threshold, search returns exactly the hits of the
        search without threshold whose similarity is >= it, in the same order (at least 10); a threshold above the
        best similarity returns nothing.

        Troubleshooting: the core turns threshold into max_distance (Metric.max_distance): keep the hits whose
        distance <= max_distance, inclusive, compared on the same float64 distance the hit reports; filtering on a
        float32 distance in SQL, or with <, drops the boundary hit. Rank first, apply the bound, then take up to k.
        """
        data = clustered(100, 8, seed=3)
        ids = [f"p{i:03d}" for i in range(100)]
        col = store.create_collection("th", dim=8, metric=metric)
        col.upsert(records(ids, data))
        q = data[0]
        all_hits = col.search(q, k=100)
        cut = all_hits[9].similarity
        got = col.search(q, k=100, threshold=cut)
        assert all(h.similarity >= cut - 1e-9 for h in got)
        assert ids_of(got) == [h.id for h in all_hits if h.similarity >= cut]
        assert len(got) >= 10
        assert col.search(q, k=5, threshold=all_hits[0].similarity + 1.0) == []

    def test_search_many_equals_single_searches(self, store: vs.Store) -> None:
        """search_many returns, per query in order, what search returns.

        Troubleshooting: the backend's search receives a matrix of queries: return one hit list per row, in row
        order, each with the same filter, k and ordering as a single search; a pipelined or batched implementation
        must map results back to their query's index (not the order replies arrive in), and must not share one ORDER
        BY / LIMIT across queries.
        """
        data = clustered(120, 6, seed=4)
        ids = [f"m{i:03d}" for i in range(120)]
        col = store.create_collection("many", dim=6, fields={"n": "int"})
        col.upsert(records(ids, data, [{"n": i} for i in range(120)]))
        queries = clustered(4, 6, seed=5)
        many = col.search_many(queries, k=7, where={"n": {"$lt": 60}})
        assert len(many) == 4
        for q, hits in zip(queries, many, strict=True):
            assert ids_of(hits) == ids_of(col.search(q, k=7, where={"n": {"$lt": 60}}))

    def test_hits_carry_fields_metadata_and_optionally_the_vector(self, store: vs.Store) -> None:
        """Hits carry fields and metadata; the vector only with include_vector=True.

        Troubleshooting: fill Hit.fields and Hit.metadata decoded as get() decodes them; set Hit.vector only when
        include_vector is True (None otherwise, which also spares reading the column), and then as the stored
        float32 ndarray (np.frombuffer(..., dtype=np.float32)), not float64 or a list.
        """
        col = store.create_collection("inc", dim=2, fields={"g": "text"})
        col.upsert([{"id": "a", "vector": [1, 0], "fields": {"g": "x"}, "metadata": {"m": 1}}])
        (hit,) = col.search([1, 0], k=1)
        assert hit.fields == {"g": "x"} and hit.metadata == {"m": 1} and hit.vector is None
        (hit,) = col.search([1, 0], k=1, include_vector=True)
        assert hit.vector.dtype == np.float32 and hit.vector.tolist() == [1.0, 0.0]

    @pytest.mark.parametrize("share", [0.5, 0.1, 0.01])
    def test_filtered_search_returns_k_hits(self, store: vs.Store, share: float) -> None:
        """When at least k records match the filter, k hits come back — even when the matching
        records are all far from the query (the nearest-first-then-filter pitfall).

        Troubleshooting: sqlite-vec KNN then WHERE, or HNSW with a post-filter, returns fewer. Filter
        first (exact scan) or use iterative index scans with an exact fallback.
        """
        n, dim = 3000, 16
        rng = np.random.default_rng(6)
        data = rng.normal(size=(n, dim)).astype(np.float32)
        matching = int(n * share)
        # The matching records are the ones farthest from the query.
        query = data[0]
        order = np.argsort(-reference_distances("cosine", data, query))
        flags = np.zeros(n, dtype=bool)
        flags[order[:matching]] = True
        ids = [f"f{i:04d}" for i in range(n)]
        col = store.create_collection("filt", dim=dim, fields={"keep": "bool"})
        col.upsert(records(ids, data, [{"keep": bool(f)} for f in flags]))
        hits = col.search(query, k=10, where={"keep": True})
        assert len(hits) == 10
        assert all(h.fields["keep"] is True for h in hits)
        truth = [i for i in expected_order("cosine", ids, data, query) if flags[ids.index(i)]][:10]
        if store.capabilities.exact_search:
            assert ids_of(hits) == truth
        else:
            assert len(set(ids_of(hits)) & set(truth)) >= 9

    def test_filtered_search_matches_the_reference(self, store: vs.Store) -> None:
        """Filtered search equals brute force over the records the reference evaluator selects, for five filters
        over 400 records (every 11th without fields): a range; $in with a range; $or of $overlap and $ne; $not of
        $contains; $exists false. Exact backends return the reference top 15, approximate ones as many hits with at
        least 90% of them in it.

        Troubleshooting: follow the NULL rules of vectorstore.filters: a missing field is NULL; $ne matches NULL (IS
        DISTINCT FROM); $not is the exact complement, so its operand must be two-valued (never NULL); $overlap and
        $contains never match a NULL array; $exists false is IS NULL. Compile with
        vectorstore.sqlfilter.compile_filter and filter before choosing the k nearest.
        """
        n, dim = 400, 8
        data = clustered(n, dim, seed=7)
        rng = np.random.default_rng(8)
        fields = [{"year": int(rng.integers(1950, 2025)), "genre": str(rng.choice(["a", "b", "c"])),
                   "tags": [int(t) for t in rng.choice(10, size=int(rng.integers(0, 4)), replace=False)]}
                  if i % 11 else {} for i in range(n)]
        ids = [f"q{i:03d}" for i in range(n)]
        col = store.create_collection("fr", dim=dim, fields={"year": "int", "genre": "text", "tags": "int[]"})
        col.upsert(records(ids, data, fields))
        filters: list[dict[str, Any]] = [
                   {"year": {"$gte": 2000}}, {"genre": {"$in": ["a", "c"]}, "year": {"$lt": 1990}},
                   {"$or": [{"tags": {"$overlap": [1, 2]}}, {"genre": {"$ne": "a"}}]},
                   {"$not": {"tags": {"$contains": [3]}}}, {"year": {"$exists": False}}]
        q = data[5]
        for where in filters:
            node = parse_filter(where, col.spec)
            keep = [i for i in range(n) if matches(node, {k: fields[i].get(k) for k in col.spec.fields})]
            truth = expected_order("cosine", [ids[i] for i in keep], data[keep], q)[:15]
            hits = col.search(q, k=15, where=where)
            if store.capabilities.exact_search:
                assert ids_of(hits) == truth, where
            else:
                assert len(hits) == len(truth), where
                assert len(set(ids_of(hits)) & set(truth)) >= int(0.9 * len(truth)), where

    @pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", 10_001])
    def test_invalid_k(self, store: vs.Store, k: object) -> None:
        """k of 0, -1, 1.5, True, '3' or 10,001 raises InvalidInput ('k must be ...').

        Troubleshooting: checked by the core (vectorstore.store._check_k) before the backend is called, so the
        backend may rely on 1 <= k <= 10,000; another outcome means the backend was reached with k unchecked:
        install vectorstore and vectorstore_conformance from the same release, and make sure the store under test is
        opened through vectorstore (the store_url fixture).
        """
        col = store.create_collection("k", dim=2)
        with pytest.raises(vs.InvalidInput, match="k must be"):
            col.search([1, 0], k=k)  # type: ignore[arg-type]

    def test_invalid_query_vectors(self, store: vs.Store) -> None:
        """A query vector of the wrong dimension raises DimensionMismatch, one with NaN or all zeros under cosine
        InvalidVector; a NaN threshold and ef_search=0 raise InvalidInput.

        Troubleshooting: these are the core's checks (coerce_vector and AsyncCollection._search in
        vectorstore.store), made before the backend is called, so the backend may rely on a finite float32 query of
        the collection's dimension and 1 <= ef_search <= 10,000; another outcome means the backend was reached with
        the query unchecked: install vectorstore and vectorstore_conformance from the same release, and make sure
        the store under test is opened through vectorstore (the store_url fixture).
        """
        col = store.create_collection("qv", dim=3)
        with pytest.raises(vs.DimensionMismatch):
            col.search([1, 0])
        with pytest.raises(vs.InvalidVector):
            col.search([1, float("nan"), 0])
        with pytest.raises(vs.InvalidVector):
            col.search([0, 0, 0])  # zero vector under cosine
        with pytest.raises(vs.InvalidInput):
            col.search([1, 0, 0], threshold=float("nan"))
        with pytest.raises(vs.InvalidInput):
            col.search([1, 0, 0], ef_search=0)

    def test_ef_search_is_accepted_everywhere(self, store: vs.Store, store_url: str) -> None:
        """Every backend accepts ef_search both per query and as the store option: on 50 records (4-d, cosine), for
        four queries, search(k=5, ef_search=500) returns exactly the exact top 5 (the NumPy reference ranking, ties
        by id), and search(k=5, ef_search=1) still returns 5 hits. A second store opened with the URL options
        ?ef_search=500&exact_search_below=0 (the common options of vectorstore.config.COMMON_OPTIONS: the approximate
        path at any size, where the backend has one, with 500 candidates) opens, and on a collection of the same
        records there a search without ef_search, and one with ef_search=500, return the exact top 5; ef_search=1
        still returns 5 hits. Whether a smaller ef_search lowers an approximate backend's recall is not checked.

        Troubleshooting: accept the ef_search argument of search() on every backend: an exact one ignores it; an
        approximate one applies it to this search only (PostgreSQL: set_config('hnsw.ef_search', value, true) inside
        the search's transaction, clamped to the extension's limit, 1,000 for pgvector) and never returns fewer than
        k hits because of it (search at least k candidates). The URL options are bound by the core for every
        backend (BackendSpec.bind_options adds COMMON_OPTIONS): a ConfigError naming ef_search or exact_search_below
        means the backend's option list or its own parsing refuses them (accept 1..1000 at least for ef_search). A
        wrong top 5 with ef_search=500 on 50 records means the approximate path loses records even when it may look
        at all of them (an HNSW graph with unreachable nodes, or candidates cut before the exact re-rank).
        """
        data = clustered(50, 4, seed=9)
        ids = [f"e{i:02d}" for i in range(50)]
        queries = clustered(4, 4, seed=10)
        truths = [expected_order("cosine", ids, data, q)[:5] for q in queries]
        col = store.create_collection("ef", dim=4)
        col.upsert(records(ids, data))
        for q, truth in zip(queries, truths, strict=True):
            assert ids_of(col.search(q, k=5, ef_search=500)) == truth
            assert len(col.search(q, k=5, ef_search=1)) == 5
        tuned = vs.connect(with_options(store_url, ef_search=500, exact_search_below=0))
        try:
            tuned_col = tuned.create_collection("ef_tuned", dim=4)
            tuned_col.upsert(records(ids, data))
            for q, truth in zip(queries, truths, strict=True):
                assert ids_of(tuned_col.search(q, k=5)) == truth
                assert ids_of(tuned_col.search(q, k=5, ef_search=500)) == truth
                assert len(tuned_col.search(q, k=5, ef_search=1)) == 5
        finally:
            tuned.close()
