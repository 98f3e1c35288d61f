"""The SQLite backend's approximate search of large collections (quantized codes, exact re-rank),
on real database files. ``exact_search_below`` is lowered so small collections take that path."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vectorstore as vs
from fixtures.sqlite_files import backend_of, raw, url
from vectorstore.bench.datasets import clustered
from vectorstore_sqlite.quantized import (
    Codes,
    Rotation,
    allowed_slots,
    encode,
    matching_keys_sql,
    rotation,
    shortlist,
    sign_bits,
)


def load(col: vs.Collection, vectors: np.ndarray[Any, Any], start: int = 1) -> None:
    col.upsert([{"id": start + i, "vector": v, "fields": {"bucket": (start + i) % 100}} for i, v in enumerate(vectors)])


@pytest.fixture
def data() -> Any:
    return clustered(6000, 96, queries=60, seed=5, clusters=12)


def test_recall_and_exact_distances(tmp_path: Path, data: Any) -> None:
    with vs.connect(url(tmp_path / "q.db", exact_search_below=0)) as store:
        col = store.create_collection("c", dim=data.dim, id_type="int", fields={"bucket": "int"})
        load(col, data.vectors)
        truth = data.exact_neighbours(10)
        found = [[h.id - 1 for h in col.search(q, k=10)] for q in data.queries]
        assert backend_of(store).search_passes["quantized"] == len(data.queries)
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        assert recall >= 0.99
        # Distances are exact (float64 from the stored vectors), as on the exact path.
        hits = col.search(data.queries[0], k=5, include_vector=True)
        q = data.queries[0].astype(np.float64)
        for h in hits:
            v = data.vectors[h.id - 1].astype(np.float64)
            assert h.distance == pytest.approx(1 - v @ q / (np.linalg.norm(v) * np.linalg.norm(q)), abs=1e-12)
            assert np.array_equal(h.vector, data.vectors[h.id - 1])


def test_below_the_threshold_search_stays_exact(tmp_path: Path, data: Any) -> None:
    with vs.connect(url(tmp_path / "q.db", exact_search_below=len(data.vectors) + 1)) as store:
        col = store.create_collection("c", dim=data.dim, id_type="int", fields={"bucket": "int"})
        load(col, data.vectors)
        col.search(data.queries[0], k=10)
        assert backend_of(store).search_passes["quantized"] == 0


def test_writes_from_another_store_are_seen(tmp_path: Path, data: Any) -> None:
    """Each store keeps codes in memory and catches up on what any connection committed."""
    path = tmp_path / "q.db"
    with vs.connect(url(path, exact_search_below=0)) as a, vs.connect(url(path, exact_search_below=0)) as b:
        col_a = a.create_collection("c", dim=data.dim, id_type="int", fields={"bucket": "int"})
        load(col_a, data.vectors[:3000])
        col_b = b.collection("c")
        query = data.queries[0]
        assert col_b.search(query, k=1)[0].distance > 0  # b has loaded the codes
        col_a.upsert([{"id": 999_999, "vector": query, "fields": {"bucket": 1}}])  # new record
        assert col_b.search(query, k=1)[0].id == 999_999
        target = col_b.search(query, k=3)[2].id
        col_a.upsert([{"id": target, "vector": query * 2, "fields": {"bucket": 1}}])  # moved vector
        assert {h.id for h in col_b.search(query, k=2)} == {999_999, target}
        col_a.delete([999_999])  # deleted record: a tombstone
        col_a.upsert([{"id": target, "vector": None, "fields": {"bucket": 1}}])  # vector removed
        ids = [h.id for h in col_b.search(query, k=20)]
        assert 999_999 not in ids and target not in ids
        assert backend_of(b).search_passes["quantized"] == 5
        # The code table holds exactly one live row per record with a vector.
        conn = raw(path)
        live = conn.execute('SELECT count(*) FROM "c__codes" WHERE bits IS NOT NULL').fetchone()[0]
        assert live == conn.execute('SELECT count(*) FROM "c" WHERE _vector IS NOT NULL').fetchone()[0] == 2999
        conn.close()


def test_codes_persist_and_a_recreated_collection_starts_afresh(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "q.db"
    with vs.connect(url(path, exact_search_below=0)) as store:
        col = store.create_collection("c", dim=data.dim, id_type="int", fields={"bucket": "int"})
        load(col, data.vectors[:2000])
        before = [h.id for h in col.search(data.queries[1], k=10)]
    with vs.connect(url(path, exact_search_below=0)) as store:
        col = store.collection("c")
        assert [h.id for h in col.search(data.queries[1], k=10)] == before
        store.drop_collection("c")
        col = store.create_collection("c", dim=data.dim, id_type="int", fields={"bucket": "int"})
        load(col, data.vectors[3000:3100], start=50_001)
        hits = col.search(data.queries[1], k=10)
        assert all(h.id > 50_000 for h in hits) and len(hits) == 10


def test_search_inside_a_transaction_sees_its_own_writes(tmp_path: Path, data: Any) -> None:
    with vs.connect(url(tmp_path / "q.db", exact_search_below=0)) as store:
        col = store.create_collection("c", dim=data.dim, id_type="int", fields={"bucket": "int"})
        load(col, data.vectors[:1000])
        query = data.queries[2]
        with store.transaction():
            col.upsert([{"id": 777_777, "vector": query, "fields": {"bucket": 1}}])
            assert col.search(query, k=1)[0].id == 777_777
            with pytest.raises(RuntimeError), store.transaction():
                col.upsert([{"id": 888_888, "vector": query, "fields": {"bucket": 1}}])
                raise RuntimeError("roll back")
        assert next(h.id for h in col.search(query, k=2)) == 777_777
        assert 888_888 not in [h.id for h in col.search(query, k=20)]


def test_files_from_before_the_codes_are_backfilled(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "q.db"
    with vs.connect(url(path)) as store:
        col = store.create_collection("c", dim=data.dim, id_type="int", fields={"bucket": "int"})
        load(col, data.vectors[:1500])
    # Make the file look like one written before migration 4.
    conn = raw(path)
    conn.execute('DROP TABLE "c__codes"')
    conn.execute('DROP TABLE "vs_generations"')
    conn.execute('DROP TRIGGER "c__cd"')
    conn.execute('DROP TRIGGER "c__cn"')
    conn.execute('DROP INDEX "c__cover"')
    conn.execute('CREATE INDEX "c__norm" ON "c" (_norm)')
    conn.execute('DELETE FROM "vs_schema_version" WHERE version >= 4')
    conn.close()
    with vs.connect(url(path, exact_search_below=0)) as store:
        col = store.collection("c")
        truth = data.exact_neighbours(10, rows=np.arange(data.n) < 1500)
        found = [h.id - 1 for h in col.search(data.queries[3], k=10)]
        assert backend_of(store).search_passes["quantized"] == 1
        assert len(set(found) & set(truth[3].tolist())) >= 9
        col.delete([found[0] + 1])  # the re-created triggers work
        assert found[0] + 1 not in [h.id for h in col.search(data.queries[3], k=10)]
    conn = raw(path)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'c'")}
    assert "c__cover" in indexes and "c__norm" not in indexes  # migrations 4 and 5
    assert conn.execute('SELECT complete FROM "vs_generations" WHERE name = ?', ["c"]).fetchone() == (1,)
    assert conn.execute('SELECT count(*) FROM "c__codes" WHERE bits IS NOT NULL').fetchone() == (1499,)
    conn.close()


def test_l2_collections_and_thresholds(tmp_path: Path, data: Any) -> None:
    vectors = data.vectors * 3.0
    with vs.connect(url(tmp_path / "q.db", exact_search_below=0)) as store:
        col = store.create_collection("c", dim=data.dim, metric="l2", id_type="int", fields={"bucket": "int"})
        load(col, vectors[:3000])
        query = data.queries[4] * 3.0
        exact = np.sqrt(((vectors[:3000].astype(np.float64) - query) ** 2).sum(axis=1))
        order = np.argsort(exact)[:10]
        hits = col.search(query, k=10)
        assert len({h.id - 1 for h in hits} & set(order.tolist())) >= 9
        assert hits[0].distance == pytest.approx(exact[order[0]], rel=1e-12)
        cut = col.search(query, k=10, threshold=hits[2].similarity)
        assert [h.id for h in cut] == [h.id for h in hits[:3]]


def test_codes_approximate_the_vectors() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 33)).astype(np.float32)
    x[3] = 0.0
    from vectorstore.schema import Metric

    bits, i8, scale = encode(Metric.L2, x)
    assert bits.shape == (50, 5)
    assert np.all(np.abs(i8.astype(np.float32) * scale[:, None] - x) <= scale[:, None] / 2 + 1e-6)
    assert scale[3] == 0 and not i8[3].any()
    unpacked = np.unpackbits(bits, axis=1, bitorder="little")[:, :33]
    assert np.array_equal(unpacked.astype(bool), rotation(33)(x) > 0)
    assert rotation(33).width == 256


def test_rotated_sign_bits_follow_simhash() -> None:
    """Sign bits are taken after a fixed rotation, so a bit differs between two vectors with
    probability angle / pi (SimHash), whatever the data's axes: checked on random pairs and on
    pairs dominated by one coordinate (unrotated, those would share nearly every bit)."""
    import math

    rng = np.random.default_rng(2)
    for dim in (8, 33, 128, 384, 768):
        for axis_aligned in (False, True):
            base = rng.normal(size=(400, dim))
            if axis_aligned:
                base[:, 0] += 30.0 * np.sign(base[:, 0])
            size = np.linalg.norm(base, axis=1, keepdims=True) / np.sqrt(dim)
            other = base + rng.normal(size=(400, dim)) * (0.2 + rng.random((400, 1))) * size
            a, b = base.astype(np.float32), other.astype(np.float32)
            angle = np.arccos(np.clip(np.sum(a.astype(np.float64) * b, axis=1)
                                      / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)), -1, 1))
            expected = float(np.mean(dim * angle / math.pi))

            def bias(bits_a: np.ndarray[Any, Any], bits_b: np.ndarray[Any, Any], expected: float = expected,
                     dim: int = dim) -> float:
                differ = np.unpackbits(bits_a ^ bits_b, axis=1, bitorder="little")[:, :dim].sum(axis=1)
                return (float(np.mean(differ)) - expected) / max(1.0, expected)

            # Averaged over 400 pairs, rotated bits differ as often as SimHash says (within 15 %).
            assert abs(bias(sign_bits(a), sign_bits(b))) < 0.15, (dim, axis_aligned)
            if axis_aligned:  # the coordinates' own signs would make near pairs look far apart
                unrotated = bias(np.packbits(a > 0, axis=1, bitorder="little"),
                                 np.packbits(b > 0, axis=1, bitorder="little"))
                assert unrotated > 0.25, (dim, unrotated)
    assert rotation(384) is rotation(384)
    # Fixed: the same signs in every process and on every platform (the codes persist in files).
    assert rotation(16).signs[:, :8].tolist() == Rotation(16).signs[:, :8].tolist()


@pytest.mark.parametrize("percent", [50, 10, 1])
def test_filtered_searches_use_the_codes_and_return_k_hits(tmp_path: Path, data: Any, percent: int) -> None:
    path = tmp_path / "q.db"
    with vs.connect(url(path, exact_search_below=0)) as store:
        col = store.create_collection("c", dim=data.dim, id_type="int", fields={"bucket": "int"})
        col.upsert([{"id": i + 1, "vector": v, "fields": {"bucket": i % 100}, "metadata": {"odd": i % 2 == 1}}
                    for i, v in enumerate(data.vectors)])
        keep = np.arange(data.n) % 100 < percent
        truth = data.exact_neighbours(10, rows=keep)
        found = [[h.id - 1 for h in col.search(q, k=10, where={"bucket": {"$lt": percent}})] for q in data.queries]
        assert all(len(f) == 10 and all(keep[i] for i in f) for f in found)
        assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]) >= 0.99
        assert backend_of(store).search_passes["quantized"] == len(data.queries)
        # A metadata filter is not in the covering index: the key query reads the rows, same answer.
        odd = np.arange(data.n) % 2 == 1
        hits = col.search(data.queries[0], k=10, where={"metadata.odd": True})
        assert [h.id - 1 for h in hits] == data.exact_neighbours(10, rows=odd)[0].tolist()
    conn = raw(path)
    plan = conn.execute("EXPLAIN QUERY PLAN " + matching_keys_sql("c", '"bucket" < ?'), [10]).fetchall()
    conn.close()
    assert "COVERING INDEX" in str(plan) and "c__cover" in str(plan)


def test_filters_matching_few_or_no_records(tmp_path: Path, data: Any) -> None:
    """The filter's keys come back as one JSON array: none, fewer than k, or keys of records
    without a vector (never candidates) all give the right answer."""
    with vs.connect(url(tmp_path / "q.db", exact_search_below=0)) as store:
        col = store.create_collection("c", dim=data.dim, id_type="int", fields={"bucket": "int"})
        load(col, data.vectors)
        col.upsert([{"id": 90_001, "vector": None, "fields": {"bucket": 1000}},
                    {"id": 90_002, "vector": data.vectors[0], "fields": {"bucket": 1000}}])
        assert col.search(data.queries[0], k=10, where={"bucket": {"$gt": 5000}}) == []
        hits = col.search(data.queries[0], k=10, where={"bucket": 1000})
        assert [h.id for h in hits] == [90_002]
        # Three records match: all three come back, nearest first.
        col.upsert([{"id": 90_010 + i, "vector": data.vectors[i], "fields": {"bucket": 2000}} for i in (6, 69, 699)])
        hits = col.search(data.queries[1], k=10, where={"bucket": 2000})
        near = data.exact_neighbours(3, rows=np.isin(np.arange(data.n), [6, 69, 699]))[1]
        assert [h.id for h in hits] == [90_010 + i for i in near.tolist()]
        assert backend_of(store).search_passes["quantized"] == 3


def test_shortlist_ignores_slots_added_after_the_filter_ran() -> None:
    """A concurrent refresh may add slots between the filter's evaluation and a query's stage 1:
    they are not among the filter's matches (and must not break the mask's shape)."""
    from vectorstore.schema import Metric

    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 16)).astype(np.float32)
    codes = Codes(16)
    bits, i8, scale = encode(Metric.L2, x)
    codes.apply([(i + 1, bits[i].tobytes(), i8[i].tobytes(), float(scale[i])) for i in range(30)])
    allowed = allowed_slots(codes, np.array([2, 4, 6, 99], dtype=np.int64))
    assert np.flatnonzero(allowed).tolist() == [1, 3, 5]
    codes.apply([(i + 1, bits[i].tobytes(), i8[i].tobytes(), float(scale[i])) for i in range(30, 40)])
    keys = shortlist(codes, Metric.L2, x[35], k=10, ef=1, allowed=allowed)
    assert sorted(keys.tolist()) == [2, 4, 6]


def test_shortlist_keeps_to_its_own_thread() -> None:
    """Stage 2 scores a few thousand int8 codes. A BLAS matrix-vector product of that size runs on
    OpenBLAS's thread pool, whose threads then spin waiting for more work: they took the second
    core from concurrent searches (SQLite's reads, another query's stage 1), measured as ~1.7
    cores busy for one client and no gain from a second. The product runs in the calling thread."""
    from vectorstore.schema import Metric

    rng = np.random.default_rng(4)
    n, dim = 60_000, 384
    codes = Codes(dim)
    bits, i8, scale = encode(Metric.COSINE, rng.normal(size=(n, dim)).astype(np.float32))
    codes.apply([(i + 1, bits[i].tobytes(), i8[i].tobytes(), float(scale[i])) for i in range(n)])
    queries = rng.normal(size=(30, dim)).astype(np.float32)
    shortlist(codes, Metric.COSINE, queries[0], 10, 40)
    process, thread = time.process_time(), time.thread_time()
    for q in queries:
        shortlist(codes, Metric.COSINE, q, 10, 40)
    own = time.thread_time() - thread
    others = time.process_time() - process - own
    # CPU time, not wall time: other processes on the machine do not move either number.
    assert others < 0.25 * own, f"other threads of this process used {others:.3f} s of CPU against {own:.3f} s"


def test_the_hamming_cut_bounds_the_chance_of_a_miss() -> None:
    """Stage 1 widens its cut to the least Hamming distance c with P(Bin(bits, angle/pi) > c) <= miss
    (Chernoff's bound): checked against the exact binomial tail, and monotone in the angle."""
    import math

    from vectorstore_sqlite.quantized import _hamming_cut

    for bits in (32, 64, 384, 768):
        previous = -1
        for angle in np.linspace(0.05, 1.5, 12):
            cut = _hamming_cut(bits, float(angle), 1e-3)
            p = angle / math.pi
            tail = sum(math.comb(bits, j) * p**j * (1 - p) ** (bits - j) for j in range(cut + 1, bits + 1))
            assert tail <= 1e-3, (bits, angle, cut, tail)
            assert cut >= previous
            previous = cut
    assert _hamming_cut(64, 0.0, 1e-3) == 0
    assert _hamming_cut(64, math.pi, 1e-3) == 64


def _hard_collections() -> dict[str, tuple[Any, np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    """Data on which a fixed first cut of 2,000 candidates out of 8,000 misses true neighbours:
    low-dimensional noise, a few dominant coordinates, a large common offset, and queries far
    from every record."""
    from vectorstore.schema import Metric

    rng = np.random.default_rng(11)
    n, out = 8000, {}
    out["gaussian 32-d"] = (Metric.COSINE, rng.normal(size=(n, 32)), rng.normal(size=(20, 32)))
    scale = np.ones(128)
    scale[:3] = 25.0
    out["dominant coordinates"] = (Metric.COSINE, rng.normal(size=(n, 128)) * scale, rng.normal(size=(20, 128)) * scale)
    mean = rng.normal(size=128) * 3
    out["common offset"] = (Metric.COSINE, mean + rng.normal(size=(n, 128)), mean + rng.normal(size=(20, 128)))
    centers, far = rng.normal(size=(4, 128)), rng.normal(size=(4, 128))
    data = centers[rng.integers(0, 4, n)] + 0.35 * rng.normal(size=(n, 128))
    queries = far[rng.integers(0, 4, 20)] + 0.35 * rng.normal(size=(20, 128))
    out["l2, queries far from the data"] = (Metric.L2, data * rng.lognormal(0, 0.5, (n, 1)), queries)
    return {name: (m, x.astype(np.float32), q.astype(np.float32)) for name, (m, x, q) in out.items()}


@pytest.mark.parametrize("name", list(_hard_collections()))
def test_stage_one_widens_until_no_true_neighbour_is_left_out(name: str) -> None:
    """On data where the bits separate neighbours poorly, the shortlist still holds every true
    top-10 record (stage 1 widens its cut, up to every record); so exact re-scoring of the
    shortlist finds them all."""
    from vectorstore.scoring import exact_distances

    metric, x, queries = _hard_collections()[name]
    codes = Codes(x.shape[1])
    bits, i8, scale = encode(metric, x)
    codes.apply([(i, bits[i].tobytes(), i8[i].tobytes(), float(scale[i])) for i in range(len(x))])
    missed = 0
    for q in queries:
        keys = shortlist(codes, metric, q, k=10, ef=40)
        truth = np.argsort(exact_distances(metric, x, q), kind="stable")[:10]
        missed += len(set(truth.tolist()) - set(keys.tolist()))
    assert missed <= 2, f"{missed} of {10 * len(queries)} true neighbours left out of the shortlist"


def test_a_query_rotated_alone_gets_the_bits_it_would_get_in_a_batch() -> None:
    """Stored codes are rotated in batches (a BLAS product) and queries one at a time (einsum in
    the calling thread): the sign bits agree, so a record's own vector is at Hamming distance 0."""
    rng = np.random.default_rng(8)
    for dim in (16, 384, 768):
        x = rng.normal(size=(200, dim)).astype(np.float32)
        together = sign_bits(x)
        alone = np.concatenate([sign_bits(x[i:i + 1]) for i in range(len(x))])
        assert np.array_equal(together, alone), dim
