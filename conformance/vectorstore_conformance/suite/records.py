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
        """upsert returns the ids; get returns the same vectors (float32, bit-exact), fields and metadata.

        Troubleshooting: decode vectors with np.frombuffer(blob, dtype=np.float32) (or the driver's binary float32
        form), never through float64 or decimal text, and return a float32 ndarray, not a list; decode fields to
        their Python types and parse metadata from JSON; every record of the batch must be stored (a batched write
        must not keep only some rows).
        """
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
        """Upserting an existing id replaces vector, fields (an omitted field becomes NULL) and metadata (not
        merged), and leaves one record.

        Troubleshooting: write every column on an upsert: ON CONFLICT (id) DO UPDATE SET the vector, every field
        column and the metadata to the new row's values (excluded.*), NULL for the fields the record omits; never
        keep an omitted field's old value (COALESCE) or merge metadata (jsonb ||, json_patch). The id must be the
        primary key, so a replace cannot add a second row.
        """
        col = store.create_collection("r", dim=4, fields={"a": "int", "b": "text"})
        col.upsert([{"id": "x", "vector": _vec(1), "fields": {"a": 1, "b": "one"}, "metadata": {"old": 1}}])
        col.upsert([{"id": "x", "vector": _vec(2), "fields": {"a": 2}, "metadata": {"new": 2}}])
        (rec,) = col.get(["x"])
        assert rec.vector.tolist() == _vec(2)
        assert rec.fields == {"a": 2, "b": None}
        assert rec.metadata == {"new": 2}
        assert col.count() == 1

    def test_upsert_is_idempotent(self, store: vs.Store) -> None:
        """The same upsert twice returns the same ids and leaves the same state: the same records
        with the same vectors, fields and metadata, found by the same searches.

        Troubleshooting: an upsert of an existing id must replace the row in place (no second row, no
        merge of old and new fields or metadata).
        """
        col = store.create_collection("r", dim=4, fields={"n": "int", "tag": "text"})
        batch = [{"id": f"k{i}", "vector": _vec(i), "fields": {"n": i, "tag": "even" if i % 2 == 0 else None},
                  "metadata": {"i": i, "nested": {"list": [i, None]}}} for i in range(10)]

        def state() -> list[tuple[object, ...]]:
            return [(r.id, r.vector.tobytes(), dict(r.fields), r.metadata) for r in col.scan(batch_size=3)]

        first = col.upsert(batch)
        once = state()
        hits = [(h.id, h.distance) for h in col.search(_vec(3), k=10)]
        assert col.upsert(batch) == first == [f"k{i}" for i in range(10)]
        assert state() == once and len(once) == 10
        assert [(h.id, h.distance) for h in col.search(_vec(3), k=10)] == hits
        assert col.count({"tag": "even"}) == 5

    def test_insert_fails_on_an_existing_id_and_writes_nothing(self, store: vs.Store) -> None:
        """insert raises DuplicateId naming the existing ids, and writes none of the batch.

        Troubleshooting: look for the batch's ids before writing (or INSERT ... ON CONFLICT DO NOTHING RETURNING id
        and compare), and on a clash raise DuplicateId(ids=[the existing ids, in batch order]) and roll back the
        whole batch, so 'new1' is not left written; map the server's unique violation to DuplicateId, never let a
        driver error through, and leave the existing record unchanged.
        """
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
        """get returns found records in the order asked, each once; missing ids are left out.

        Troubleshooting: WHERE id IN (...) returns rows in any order: index the rows by id and emit them in the
        order of the ids passed, skipping ids without a row (the core removes repeated ids before calling the
        backend, and answers get([]) itself).
        """
        col = store.create_collection("r", dim=4)
        col.upsert([{"id": x, "vector": _vec(i)} for i, x in enumerate("abcde")])
        assert [r.id for r in col.get(["d", "missing", "a", "d", "c"])] == ["d", "a", "c"]
        assert col.get([]) == []

    def test_generated_ids(self, store: vs.Store) -> None:
        """Records without an id get a unique, non-empty generated text id, returned by upsert; all 20 are stored.

        Troubleshooting: the core generates the ids (UUID4 text) before the backend is called, so 20 distinct ids
        reach upsert; a count below 20 means the backend's write lost records of the batch (a multi-row INSERT or
        executemany that keeps only some rows).
        """
        col = store.create_collection("r", dim=4)
        ids = col.upsert([{"vector": _vec(i)} for i in range(20)])
        assert len(set(ids)) == 20 and all(isinstance(i, str) and i for i in ids)
        assert col.count() == 20

    def test_int_ids(self, store: vs.Store) -> None:
        """An int-id collection keeps ids as Python ints (64-bit: -3, 0 and 2**63 - 1 included), scans them in
        numeric order, and refuses a text id ('10') with InvalidRecord.

        Troubleshooting: store int ids in a 64-bit integer column (SQLite INTEGER, PostgreSQL bigint), not text, so
        ORDER BY id and page()'s id > after are numeric ('10' would sort before '2'); return them as Python int
        (convert NumPy or Decimal values) so that type(id) is int. The text id is refused by the core.
        """
        col = store.create_collection("r", dim=4, id_type="int")
        ids = [10, 2, -3, 2**63 - 1, 0]
        col.upsert([{"id": x, "vector": _vec(i)} for i, x in enumerate(ids)])
        assert [r.id for r in col.scan(batch_size=2)] == sorted(ids)
        assert all(type(r.id) is int for r in col.get(ids))
        with pytest.raises(vs.InvalidRecord):
            col.upsert([{"id": "10", "vector": _vec(0)}])

    def test_text_collection_rejects_int_ids(self, store: vs.Store) -> None:
        """A text-id collection refuses int ids with a message that says so.

        Troubleshooting: the core (vectorstore.records.check_id) refuses the id before the backend is called, so a
        backend's code cannot cause this failure; another error type or message means the backend was reached with
        the record unchecked: install vectorstore and vectorstore_conformance from the same release, and make sure
        the store under test is opened through vectorstore (the store_url fixture).
        """
        col = store.create_collection("r", dim=4)
        with pytest.raises(vs.InvalidRecord, match="text ids"):
            col.upsert([{"id": 1, "vector": _vec(0)}])

    def test_delete_by_ids(self, store: vs.Store) -> None:
        """delete(ids) removes those records and returns how many existed.

        Troubleshooting: return how many rows the DELETE actually removed (the driver's row count, or RETURNING),
        not len(ids): ids without a record ('zz', or 'a' the second time) count zero. Send the ids as one parameter
        (an array or a JSON list) in one statement.
        """
        col = store.create_collection("r", dim=4)
        col.upsert([{"id": x, "vector": _vec(i)} for i, x in enumerate("abcd")])
        assert col.delete(["a", "c", "zz"]) == 2
        assert sorted(str(r.id) for r in col.scan()) == ["b", "d"]
        assert col.delete(["a"]) == 0

    def test_delete_by_filter(self, store: vs.Store) -> None:
        """delete(where=...) removes the matching records only.

        Troubleshooting: compile the filter exactly as count() and search() do (vectorstore.sqlfilter.compile_filter
        with the backend's dialect) into DELETE ... WHERE <filter> with its parameters, and return the rows removed;
        3 deleted but a wrong count afterwards means count() and delete() compile filters differently.
        """
        col = store.create_collection("r", dim=4, fields={"n": "int"})
        col.upsert([{"id": f"k{i}", "vector": _vec(i), "fields": {"n": i}} for i in range(10)])
        assert col.delete(where={"n": {"$gte": 7}}) == 3
        assert col.count() == 7
        assert col.count({"n": {"$gte": 7}}) == 0

    def test_delete_never_deletes_everything_by_accident(self, store: vs.Store) -> None:
        """delete() without arguments and delete(ids, where={}) raise InvalidInput, delete(where={}) raises
        InvalidFilter, all deleting nothing; delete(all=True) empties the collection and returns 3.

        Troubleshooting: the refusals are the core's. The backend sees only delete(spec, None, MatchAll()) for
        all=True and must delete every record of the collection and return how many (compile MatchAll to 1=1 or drop
        the WHERE, and count the rows removed: a TRUNCATE reports no count).
        """
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
        """count() counts all records, count(where) the matching ones.

        Troubleshooting: count() reaches the backend as count(spec, MatchAll()): count every row; count(where)
        compiles the filter as search and delete do. A bool field must compare with its stored form (SQLite stores
        0 / 1: bind 1 for True, not the string 'True').
        """
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

    def test_allocated_ids_never_collide_with_the_batchs_own_ids(self, store: vs.Store) -> None:
        """A batch mixing explicit ids with records that need one gets ids above its own explicit
        ones: no record of the batch overwrites another (upsert and insert).

        Troubleshooting: the core passes the batch's largest explicit id as ``after`` to
        allocate_ids; a backend must allocate above ``after`` as well as above its stored ids.
        """
        col = store.create_collection("mixed", dim=4, id_type="int")
        ids = col.upsert([{"id": 1, "vector": _vec(0)}, {"vector": _vec(1)}, {"id": 7, "vector": _vec(2)},
                          {"vector": _vec(3)}])
        assert ids == [1, 8, 7, 9] and col.count() == 4
        assert col.insert([{"vector": _vec(4)}, {"id": 20, "vector": _vec(5)}]) == [21, 20]
        assert sorted(cast(int, r.id) for r in col.scan()) == [1, 7, 8, 9, 20, 21]

    def test_allocated_ids_are_unique_under_concurrency(self, store: vs.Store) -> None:
        """16 concurrent inserts of 5 records without ids (8 threads) receive 80 distinct ids, and all 80 records
        are stored.

        Troubleshooting: allocate_ids must read and advance the sequence atomically: in one statement (PostgreSQL:
        INSERT ... ON CONFLICT (name) DO UPDATE ... RETURNING, whose row lock serialises allocators) or under the
        backend's write lock (SQLite: BEGIN IMMEDIATE on the one writer), never a SELECT max(...) followed by a
        separate write. The core runs allocate_ids and the insert in one backend transaction, so a clash shows up as
        DuplicateId or a count below 80.
        """
        from concurrent.futures import ThreadPoolExecutor

        col = store.create_collection("auto", dim=4, id_type="int")
        with ThreadPoolExecutor(max_workers=8) as pool:
            batches = list(pool.map(lambda i: col.insert([{"vector": _vec(i)} for _ in range(5)]), range(16)))
        ids = [rid for batch in batches for rid in batch]
        assert len(set(ids)) == 80 and col.count() == 80

    def test_id_allocation_is_for_int_collections_and_validated(self, store: vs.Store) -> None:
        """allocate_ids on a text-id collection raises InvalidInput (its message says 'text ids'), and so do n = -1,
        1.5 or True and after = -3 on an int-id collection.

        Troubleshooting: the core (AsyncCollection.allocate_ids) validates before calling the backend, which only
        ever gets an int-id spec, 0 <= n <= 1,000,000 and 0 <= after < 2**63 - 1; a failure means the backend was
        reached with the call unchecked: install vectorstore and vectorstore_conformance from the same release, and
        make sure the store under test is opened through vectorstore (the store_url fixture).
        """
        text = store.create_collection("txt", dim=4)
        with pytest.raises(vs.InvalidInput, match="text ids"):
            text.allocate_ids(1)
        ints = store.create_collection("ints", dim=4, id_type="int")
        for bad in ({"n": -1}, {"n": 1.5}, {"n": 1, "after": -3}, {"n": True}):
            with pytest.raises(vs.InvalidInput):
                ints.allocate_ids(**bad)

    def test_dropping_a_collection_resets_its_ids(self, store: vs.Store) -> None:
        """A re-created collection starts its ids from 1 again.

        Troubleshooting: drop_collection must delete the collection's id-sequence row (SQLite: its row in the
        sequences table; PostgreSQL: vs_sequences) together with the table, in the same transaction; otherwise the
        re-created collection goes on from 4.
        """
        col = store.create_collection("auto", dim=4, id_type="int")
        col.insert([{"vector": _vec(i)} for i in range(3)])
        store.drop_collection("auto")
        col = store.create_collection("auto", dim=4, id_type="int")
        assert col.insert([{"vector": _vec(0)}]) == [1]

    def test_filtered_scan(self, store: vs.Store) -> None:
        """page / scan with where= return only matching records, still ordered by id and resumable with after=;
        {'tag': None} selects the records whose tag is NULL; an unknown field raises InvalidFilter.

        Troubleshooting: page() must AND the condition id > after with the compiled filter (already parenthesised),
        bind the after value and the filter's parameters in the order their placeholders appear, then ORDER BY id
        LIMIT limit; a field missing from a record must be stored as NULL so that {'tag': None} (IS NULL) finds it.
        """
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
        """One insert of 3,000 records (ids allocated), every third without a vector, stores them all: those without
        read back with vector None, the others bit-exact, and search never returns a record without a vector. A
        batch this large may take a backend's bulk path (PostgreSQL: COPY).

        Troubleshooting: RecordBatch.vectors holds a zero row for each record whose present flag is False: the bulk
        path must check batch.has_vector(i) / batch.present and write NULL, not the zero row (which reads back as a
        zero vector and can come back as a search hit), and leave such rows out of the vector index.
        """
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
