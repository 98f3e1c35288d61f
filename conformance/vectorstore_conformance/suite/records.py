"""Record semantics: upsert, insert, get, delete, count, page and scan."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest

import vectorstore as vs


def _vec(i: int, dim: int = 4) -> list[float]:
    return [float(i + 1), float(i % 3), 1.0, float(-i)][:dim]


class RecordConformance:
    def test_upsert_then_get(self, store: vs.Store) -> None:
        """upsert returns the ids; get returns the same vectors (float32, bit-exact), fields and metadata."""
        col = store.create_collection("r", dim=4, fields={"n": "int"})
        ids = col.upsert([{"id": f"id{i}", "vector": _vec(i), "fields": {"n": i}, "metadata": {"i": i}}
                          for i in range(5)])
        assert ids == [f"id{i}" for i in range(5)]
        got = col.get(ids)
        assert [r.id for r in got] == ids
        for i, r in enumerate(got):
            assert isinstance(r.vector, np.ndarray) and r.vector.dtype == np.float32
            assert r.vector.tobytes() == np.asarray(_vec(i), dtype=np.float32).tobytes()
            assert r.fields == {"n": i} and r.metadata == {"i": i}

    def test_vectors_are_stored_bit_exact(self, store: vs.Store) -> None:
        """Every float32 survives: extremes, subnormals, negative zero's sign, values that are not
        exact decimals.

        Troubleshooting: send vectors as binary float32 (or a text form that round-trips float32 exactly).
        """
        values = np.array([3.4028235e38, -3.4028235e38, 1.1754944e-38, 1.4e-45, -0.0, 0.1, 1 / 3, -2.5e-7],
                          dtype=np.float32)
        col = store.create_collection("bits", dim=len(values), metric="l2")
        col.upsert([{"id": "x", "vector": values}])
        got = col.get(["x"])[0].vector
        assert got.tobytes() == values.tobytes()

    def test_upsert_replaces_the_whole_record(self, store: vs.Store) -> None:
        """Upserting an existing id replaces vector, fields (omitted fields become NULL) and metadata."""
        col = store.create_collection("r", dim=4, fields={"a": "int", "b": "text"})
        col.upsert([{"id": "x", "vector": _vec(1), "fields": {"a": 1, "b": "one"}, "metadata": {"old": 1}}])
        col.upsert([{"id": "x", "vector": _vec(2), "fields": {"a": 2}, "metadata": {"new": 2}}])
        (rec,) = col.get(["x"])
        assert rec.vector.tolist() == _vec(2)
        assert rec.fields == {"a": 2, "b": None}
        assert rec.metadata == {"new": 2}
        assert col.count() == 1

    def test_upsert_is_idempotent(self, store: vs.Store) -> None:
        """The same upsert twice leaves the same state."""
        col = store.create_collection("r", dim=4)
        batch = [{"id": f"k{i}", "vector": _vec(i)} for i in range(10)]
        col.upsert(batch)
        col.upsert(batch)
        assert col.count() == 10

    def test_insert_fails_on_an_existing_id_and_writes_nothing(self, store: vs.Store) -> None:
        """insert raises DuplicateId naming the existing ids, and writes none of the batch."""
        col = store.create_collection("r", dim=4)
        col.insert([{"id": "old", "vector": _vec(0)}])
        with pytest.raises(vs.DuplicateId) as info:
            col.insert([{"id": "new1", "vector": _vec(1)}, {"id": "old", "vector": _vec(2)},
                        {"id": "new2", "vector": _vec(3)}])
        assert info.value.ids == ["old"]
        assert col.count() == 1
        assert col.get(["new1", "new2"]) == []
        assert col.get(["old"])[0].vector.tolist() == _vec(0)

    def test_get_keeps_the_order_asked_and_skips_missing(self, store: vs.Store) -> None:
        """get returns found records in the order asked, each once; missing ids are left out."""
        col = store.create_collection("r", dim=4)
        col.upsert([{"id": x, "vector": _vec(i)} for i, x in enumerate("abcde")])
        assert [r.id for r in col.get(["d", "missing", "a", "d", "c"])] == ["d", "a", "c"]
        assert col.get([]) == []

    def test_generated_ids(self, store: vs.Store) -> None:
        """Records without an id get a unique generated text id, returned by upsert."""
        col = store.create_collection("r", dim=4)
        ids = col.upsert([{"vector": _vec(i)} for i in range(20)])
        assert len(set(ids)) == 20 and all(isinstance(i, str) and i for i in ids)
        assert col.count() == 20

    def test_int_ids(self, store: vs.Store) -> None:
        """Collections with int ids keep ints (64-bit) and order them numerically."""
        col = store.create_collection("r", dim=4, id_type="int")
        ids = [10, 2, -3, 2**63 - 1, 0]
        col.upsert([{"id": x, "vector": _vec(i)} for i, x in enumerate(ids)])
        assert [r.id for r in col.scan(batch_size=2)] == sorted(ids)
        assert all(type(r.id) is int for r in col.get(ids))
        with pytest.raises(vs.InvalidRecord):
            col.upsert([{"id": "10", "vector": _vec(0)}])

    def test_text_collection_rejects_int_ids(self, store: vs.Store) -> None:
        """A text-id collection refuses int ids with a message that says so."""
        col = store.create_collection("r", dim=4)
        with pytest.raises(vs.InvalidRecord, match="text ids"):
            col.upsert([{"id": 1, "vector": _vec(0)}])

    def test_delete_by_ids(self, store: vs.Store) -> None:
        """delete(ids) removes those records and returns how many existed."""
        col = store.create_collection("r", dim=4)
        col.upsert([{"id": x, "vector": _vec(i)} for i, x in enumerate("abcd")])
        assert col.delete(["a", "c", "zz"]) == 2
        assert sorted(str(r.id) for r in col.scan()) == ["b", "d"]
        assert col.delete(["a"]) == 0

    def test_delete_by_filter(self, store: vs.Store) -> None:
        """delete(where=...) removes the matching records only."""
        col = store.create_collection("r", dim=4, fields={"n": "int"})
        col.upsert([{"id": f"k{i}", "vector": _vec(i), "fields": {"n": i}} for i in range(10)])
        assert col.delete(where={"n": {"$gte": 7}}) == 3
        assert col.count() == 7
        assert col.count({"n": {"$gte": 7}}) == 0

    def test_delete_never_deletes_everything_by_accident(self, store: vs.Store) -> None:
        """delete() and delete(where={}) raise; delete(all=True) empties the collection."""
        col = store.create_collection("r", dim=4)
        col.upsert([{"id": f"k{i}", "vector": _vec(i)} for i in range(3)])
        with pytest.raises(vs.InvalidInput):
            col.delete()
        with pytest.raises(vs.InvalidFilter):
            col.delete(where={})
        with pytest.raises(vs.InvalidInput):
            col.delete(["k0"], where={})
        assert col.count() == 3
        assert col.delete(all=True) == 3
        assert col.count() == 0

    def test_page_and_scan_are_ordered_and_resumable(self, store: vs.Store) -> None:
        """page/scan return records ordered by id (text by code point: 'B' < 'a' < 'é'); passing the
        last id seen as ``after`` resumes exactly where a scan stopped.

        Troubleshooting: on PostgreSQL, the id column needs COLLATE "C".
        """
        col = store.create_collection("r", dim=4)
        ids = ["é", "a", "B", "a1", "Z", "aa", "0", "~", "ä"]
        col.upsert([{"id": x, "vector": _vec(i)} for i, x in enumerate(ids)])
        ordered = sorted(ids)
        assert [r.id for r in col.scan(batch_size=4)] == ordered
        first = col.page(limit=3)
        assert [r.id for r in first] == ordered[:3]
        rest = [r.id for r in col.scan(batch_size=2, after=first[-1].id)]
        assert rest == ordered[3:]
        assert col.page(after=ordered[-1]) == []

    def test_count(self, store: vs.Store) -> None:
        """count() counts all records, count(where) the matching ones."""
        col = store.create_collection("r", dim=4, fields={"even": "bool"})
        assert col.count() == 0
        col.upsert([{"id": f"k{i}", "vector": _vec(i), "fields": {"even": i % 2 == 0}} for i in range(9)])
        assert col.count() == 9
        assert col.count({"even": True}) == 5

    def test_int_ids_are_allocated_and_never_reused(self, store: vs.Store) -> None:
        """Records without an id in an int-id collection get consecutive ids above every existing and
        every earlier allocated id; a deleted id is never handed out again (SQLite AUTOINCREMENT
        semantics, which AgentDB data relies on).

        Troubleshooting: keep the highest allocated id per collection in a table updated inside the
        write's transaction; take max(sequence, max(id), after) + 1.
        """
        col = store.create_collection("auto", dim=4, id_type="int")
        assert col.insert([{"vector": _vec(i)} for i in range(3)]) == [1, 2, 3]
        assert col.delete([3]) == 1
        assert col.upsert([{"vector": _vec(4)}]) == [4]
        col.upsert([{"id": 100, "vector": _vec(5)}])
        assert col.insert([{"vector": _vec(6)}, {"id": 50, "vector": _vec(7)}, {"vector": _vec(8)}]) == [101, 50, 102]
        assert col.allocate_ids(2) == [103, 104]
        assert col.allocate_ids(0, after=500) == []
        assert col.insert([{"vector": _vec(9)}]) == [501]
        assert col.allocate_ids(1, after=10) == [502]
        assert sorted(cast(int, r.id) for r in col.scan()) == [1, 2, 4, 50, 100, 101, 102, 501]

    def test_allocated_ids_are_unique_under_concurrency(self, store: vs.Store) -> None:
        """Concurrent inserts without ids never receive the same id."""
        from concurrent.futures import ThreadPoolExecutor

        col = store.create_collection("auto", dim=4, id_type="int")
        with ThreadPoolExecutor(max_workers=8) as pool:
            batches = list(pool.map(lambda i: col.insert([{"vector": _vec(i)} for _ in range(5)]), range(16)))
        ids = [rid for batch in batches for rid in batch]
        assert len(set(ids)) == 80 and col.count() == 80

    def test_id_allocation_is_for_int_collections_and_validated(self, store: vs.Store) -> None:
        """allocate_ids on a text-id collection, or with a bad n / after, raises InvalidInput."""
        text = store.create_collection("txt", dim=4)
        with pytest.raises(vs.InvalidInput, match="text ids"):
            text.allocate_ids(1)
        ints = store.create_collection("ints", dim=4, id_type="int")
        for bad in ({"n": -1}, {"n": 1.5}, {"n": 1, "after": -3}, {"n": True}):
            with pytest.raises(vs.InvalidInput):
                ints.allocate_ids(**bad)

    def test_dropping_a_collection_resets_its_ids(self, store: vs.Store) -> None:
        """A re-created collection starts its ids from 1 again."""
        col = store.create_collection("auto", dim=4, id_type="int")
        col.insert([{"vector": _vec(i)} for i in range(3)])
        store.drop_collection("auto")
        col = store.create_collection("auto", dim=4, id_type="int")
        assert col.insert([{"vector": _vec(0)}]) == [1]

    def test_filtered_scan(self, store: vs.Store) -> None:
        """page/scan with where= return only matching records, still ordered by id and resumable."""
        col = store.create_collection("fs", dim=4, fields={"n": "int", "tag": "text"})
        col.upsert([{"id": f"k{i:02d}", "vector": _vec(i), "fields": {"n": i, "tag": "odd" if i % 2 else None}}
                    for i in range(20)])
        where = {"n": {"$gte": 5}, "tag": "odd"}
        assert [r.id for r in col.scan(batch_size=3, where=where)] == [f"k{i:02d}" for i in range(5, 20, 2)]
        first = col.page(limit=2, where=where)
        assert [r.id for r in first] == ["k05", "k07"]
        assert [r.id for r in col.page(after=first[-1].id, limit=2, where=where)] == ["k09", "k11"]
        assert [r.id for r in col.scan(where={"tag": None})] == [f"k{i:02d}" for i in range(0, 20, 2)]
        with pytest.raises(vs.InvalidFilter):
            col.page(where={"nope": 1})

    def test_records_without_vectors(self, store: vs.Store) -> None:
        """A record may have no vector (AgentDB allows rows without an embedding): it is stored, read
        back with vector None, filtered, counted, scanned and deleted like any other, but is never a
        search hit; upsert can add or remove its vector later.

        Troubleshooting: store NULL in the vector column and leave the row out of vector indexes and
        search scans.
        """
        col = store.create_collection("novec", dim=3, fields={"n": "int"})
        col.upsert([{"id": "with", "vector": [1, 0, 0], "fields": {"n": 1}},
                    {"id": "without", "vector": None, "fields": {"n": 2}, "metadata": {"m": 1}},
                    vs.Record("also", None, {"n": 3})])
        got = {r.id: r for r in col.get(["with", "without", "also"])}
        assert got["without"].vector is None and got["also"].vector is None
        assert got["without"].fields == {"n": 2} and got["without"].metadata == {"m": 1}
        assert got["with"].vector.tolist() == [1.0, 0.0, 0.0]
        assert col.count() == 3 and col.count({"n": {"$gte": 2}}) == 2
        assert [h.id for h in col.search([1, 0, 0], k=10)] == ["with"]
        assert [h.id for h in col.search([1, 0, 0], k=10, where={"n": {"$gte": 2}})] == []
        assert [r.id for r in col.scan(where={"n": 2})] == ["without"]
        col.upsert([{"id": "without", "vector": [0, 1, 0], "fields": {"n": 2}},
                    {"id": "with", "vector": None, "fields": {"n": 1}}])
        assert [h.id for h in col.search([0, 1, 0], k=10)] == ["without"]
        assert col.get(["with"])[0].vector is None
        assert col.delete(where={"n": 3}) == 1
        with pytest.raises(vs.InvalidRecord, match="'vector': None"):
            col.upsert([{"id": "x", "fields": {"n": 9}}])

    def test_many_records_without_vectors_in_a_bulk_write(self, store: vs.Store) -> None:
        """Bulk writes (which may take a different path, e.g. COPY) handle missing vectors too."""
        col = store.create_collection("novec_bulk", dim=8, id_type="int")
        rng = np.random.default_rng(3)
        data = rng.normal(size=(3000, 8)).astype(np.float32)
        ids = col.insert([{"vector": data[i] if i % 3 else None} for i in range(3000)])
        assert len(ids) == 3000 and col.count() == 3000
        recs = col.get(ids[:6])
        assert [r.vector is None for r in recs] == [True, False, False, True, False, False]
        assert recs[1].vector.tobytes() == data[1].tobytes()
        hits = col.search(data[4], k=5)
        assert hits[0].id == ids[4] and all(int(h.id) % 3 != 1 for h in hits)
