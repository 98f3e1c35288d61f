"""Bad input: a typed error, and nothing written."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest

import vectorstore as vs

GOOD = {"id": "good", "vector": [1.0, 2.0, 3.0], "fields": {"n": 1, "t": "x"}}

BAD_RECORDS: list[tuple[str, Any, type[Exception]]] = [
    ("wrong dimension", {"id": "bad", "vector": [1.0, 2.0]}, vs.DimensionMismatch),
    ("too many dimensions", {"id": "bad", "vector": [1.0, 2.0, 3.0, 4.0]}, vs.DimensionMismatch),
    ("NaN", {"id": "bad", "vector": [1.0, float("nan"), 3.0]}, vs.InvalidVector),
    ("infinity", {"id": "bad", "vector": [1.0, float("inf"), 3.0]}, vs.InvalidVector),
    ("overflows float32", {"id": "bad", "vector": [1.0, 1e39, 3.0]}, vs.InvalidVector),
    ("empty vector", {"id": "bad", "vector": []}, vs.InvalidVector),
    ("strings in vector", {"id": "bad", "vector": ["1", "2", "3"]}, vs.InvalidVector),
    ("None in vector", {"id": "bad", "vector": [1.0, None, 3.0]}, vs.InvalidVector),
    ("bools in vector", {"id": "bad", "vector": [True, False, True]}, vs.InvalidVector),
    ("nested vector", {"id": "bad", "vector": [[1.0, 2.0, 3.0]]}, vs.InvalidVector),
    ("vector is a string", {"id": "bad", "vector": "1,2,3"}, vs.InvalidVector),
    ("no vector", {"id": "bad"}, vs.InvalidRecord),
    ("zero vector under cosine", {"id": "bad", "vector": [0.0, 0.0, 0.0]}, vs.InvalidVector),
    ("unknown field", {"id": "bad", "vector": [1, 2, 3], "fields": {"nope": 1}}, vs.InvalidRecord),
    ("wrong field type", {"id": "bad", "vector": [1, 2, 3], "fields": {"n": "one"}}, vs.InvalidRecord),
    ("bool for int field", {"id": "bad", "vector": [1, 2, 3], "fields": {"n": True}}, vs.InvalidRecord),
    ("int overflow", {"id": "bad", "vector": [1, 2, 3], "fields": {"n": 2**64}}, vs.InvalidRecord),
    ("NUL in text", {"id": "bad", "vector": [1, 2, 3], "fields": {"t": "a\x00b"}}, vs.InvalidRecord),
    ("lone surrogate", {"id": "bad", "vector": [1, 2, 3], "fields": {"t": "a\ud800"}}, vs.InvalidRecord),
    ("metadata not a dict", {"id": "bad", "vector": [1, 2, 3], "metadata": [1]}, vs.InvalidRecord),
    ("metadata with NaN", {"id": "bad", "vector": [1, 2, 3], "metadata": {"x": float("nan")}}, vs.InvalidRecord),
    ("metadata with a set", {"id": "bad", "vector": [1, 2, 3], "metadata": {"x": {1, 2}}}, vs.InvalidRecord),
    ("metadata int key", {"id": "bad", "vector": [1, 2, 3], "metadata": {1: "x"}}, vs.InvalidRecord),
    ("metadata NUL", {"id": "bad", "vector": [1, 2, 3], "metadata": {"x": "\x00"}}, vs.InvalidRecord),
    ("int id in text collection", {"id": 5, "vector": [1, 2, 3]}, vs.InvalidRecord),
    ("empty id", {"id": "", "vector": [1, 2, 3]}, vs.InvalidRecord),
    ("unknown record key", {"id": "bad", "vector": [1, 2, 3], "meta": {}}, vs.InvalidRecord),
    ("not a record", 42, vs.InvalidRecord),
]


class BadInputConformance:
    @pytest.mark.parametrize(("record", "error"), [(r, e) for _, r, e in BAD_RECORDS],
                             ids=[name for name, _, _ in BAD_RECORDS])
    @pytest.mark.parametrize("method", ["upsert", "insert"])
    def test_bad_record_writes_nothing(self, store: vs.Store, record: Any, error: type[Exception],
                                       method: str) -> None:
        """One bad record in the middle of a batch raises a typed error and none of the batch is written.

        Troubleshooting: these checks live in the core (vectorstore.records); a backend fails here only
        if it writes before the core has validated the batch, or changes the error type.
        """
        col = store.create_collection("bad", dim=3, fields={"n": "int", "t": "text"})
        before = {"id": "first", "vector": [3.0, 2.0, 1.0]}
        with pytest.raises(error):
            getattr(col, method)([before, record, GOOD])
        assert col.count() == 0

    def test_duplicate_ids_in_one_batch(self, store: vs.Store) -> None:
        """An id given twice in one upsert batch raises DuplicateId whose message names it, and nothing of the batch
        is written.

        Troubleshooting: the repeat is found by the core (vectorstore.records, for the streamed WritesInParts path
        too) before the backend is called, so a backend's writes cannot cause this failure; a driver error (a unique
        violation) in place of DuplicateId means the backend was reached with the batch unchecked: install
        vectorstore and vectorstore_conformance from the same release, and make sure the store under test is opened
        through vectorstore (the store_url fixture).
        """
        col = store.create_collection("bad", dim=3)
        with pytest.raises(vs.DuplicateId, match="dup"):
            col.upsert([{"id": "dup", "vector": [1, 2, 3]}, {"id": "ok", "vector": [1, 2, 3]},
                        {"id": "dup", "vector": [3, 2, 1]}])
        assert col.count() == 0

    def test_a_single_record_is_not_a_batch(self, store: vs.Store) -> None:
        """Passing one record (a dict or a vs.Record) to upsert or insert instead of a list raises InvalidRecord whose
        message says it is a single record and to wrap it in a list; nothing is written.

        Troubleshooting: the core (prepare_batch in vectorstore.records) refuses it before the backend is called;
        any other outcome means the backend was reached with the record unchecked: install vectorstore and
        vectorstore_conformance from the same release, and make sure the store under test is opened through
        vectorstore (the store_url fixture).
        """
        col = store.create_collection("bad", dim=3)
        for single in ({"id": "a", "vector": [1, 2, 3]}, vs.Record("a", [1, 2, 3])):
            for write in (col.upsert, col.insert):
                with pytest.raises(vs.InvalidRecord) as caught:
                    write(cast(Any, single))
                message = str(caught.value)
                assert "single record" in message and "wrap it in a list" in message, message
        assert col.count() == 0

    def test_numpy_inputs_are_accepted(self, store: vs.Store) -> None:
        """NumPy arrays of float16, float32, float64, int32 and int64 are valid vectors and queries: six records stored
        from arrays of those dtypes (one more int32 one being the all-zero vector, valid in an l2 collection) read back
        as float32 arrays of the same values; a 1-D query of each record's dtype finds that record first at distance 0
        (to 1e-6); and a 2-D array of each dtype is a valid query batch for search_many (one hit list per row, in row
        order, each row's own record first), as is a 2-D float32 identity matrix (three lists of k=2 hits).

        Troubleshooting: the core converts every array to float32 before the backend sees it. The backend's part:
        store and return the float32 vector bit-exact, accept the all-zero vector under l2 (only cosine refuses zero
        vectors, so never divide by a vector's norm outside cosine) and return one hit list per row of the query
        matrix, in row order.
        """
        values = {"f16": [1, 2, 3], "f32": [4, 0.5, -2], "f64": [-1, 2.25, 8], "i32": [7, -3, 0], "i64": [0, 5, -6],
                  "zero": [0, 0, 0]}
        dtypes = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64,
                  "zero": np.int32}
        col = store.create_collection("np", dim=3, metric="l2")
        col.upsert([{"id": rid, "vector": np.array(values[rid], dtype=dtypes[rid])} for rid in values])
        assert col.count() == len(values)
        for record in col.get(list(values)):
            assert record.vector.dtype == np.float32
            assert np.array_equal(record.vector, np.array(values[str(record.id)], dtype=np.float32)), record.id
        for rid in values:
            hit = col.search(np.array(values[rid], dtype=dtypes[rid]), k=1)[0]
            assert hit.id == rid and abs(hit.distance) <= 1e-6, (rid, hit)
        rows = ["f16", "i64", "f64"]
        for dtype in (np.float16, np.float32, np.float64, np.int32, np.int64):
            batch = col.search_many(np.array([values[rid] for rid in rows], dtype=dtype), k=2)
            assert [hits[0].id for hits in batch] == rows, dtype
            assert [len(hits) for hits in batch] == [2, 2, 2]
        assert [len(h) for h in col.search_many(np.eye(3, dtype=np.float32), k=2)] == [2, 2, 2]

    def test_injection_attempts_are_stored_literally(self, store: vs.Store) -> None:
        """SQL in ids, field values, metadata keys and filter values is data: the id, field value and metadata key
        and value read back unchanged, an equality filter matches the literal value, the classic "' OR '1'='1"
        string matches nothing, delete by that id removes it, and no collection disappears.

        Troubleshooting: send every value as a bound parameter, ids in IN lists included (one array or JSON list
        parameter), and filter values too; metadata is JSON data (dump_json), never spliced into a JSON path or a
        statement; table names come only from validated collection names, quoted. A syntax error, a count of 1 for
        the OR string or a lost collection means a value reached the SQL text.
        """
        col = store.create_collection("inj", dim=3, fields={"t": "text"})
        evil = "x'); DROP TABLE inj; --"
        col.upsert([{"id": evil, "vector": [1, 2, 3], "fields": {"t": evil}, "metadata": {evil: evil}}])
        (rec,) = col.get([evil])
        assert rec.id == evil and rec.fields == {"t": evil} and rec.metadata == {evil: evil}
        assert col.count({"t": evil}) == 1
        assert col.count({"t": "x' OR '1'='1"}) == 0
        assert col.delete([evil]) == 1
        assert [c.name for c in store.list_collections()] == ["inj"]


def _calls(col: vs.Collection) -> dict[str, Any]:
    return {
        "upsert(None)": lambda: col.upsert(None),  # type: ignore[arg-type]
        "insert(42)": lambda: col.insert(42),  # type: ignore[arg-type]
        "get(None)": lambda: col.get(None),  # type: ignore[arg-type]
        "delete(1.5)": lambda: col.delete(1.5),  # type: ignore[arg-type]
        "search_many(None)": lambda: col.search_many(None),
        "search_many({})": lambda: col.search_many({}),
        "include_vector='yes'": lambda: col.search([1.0, 0.0], include_vector="yes"),  # type: ignore[arg-type]
        "timestamp past year 9999 in UTC": lambda: col.upsert(
            [{"id": 1, "vector": [1.0, 0.0], "fields": {"t": "9999-12-31T23:59:59-05:00"}}]),
        "timestamp before year 1 in UTC": lambda: col.upsert(
            [{"id": 1, "vector": [1.0, 0.0], "fields": {"t": "0001-01-01T00:00:00+05:00"}}]),
        "filter on a timestamp past year 9999": lambda: col.count({"t": {"$lt": "9999-12-31T23:59:59-05:00"}}),
    }


class MalformedCallConformance:
    def test_malformed_arguments_raise_typed_errors_and_write_nothing(self, store: vs.Store) -> None:
        """Arguments of the wrong shape (None or a number where a list belongs, a non-bool flag,
        timestamps that leave the calendar once converted to UTC) raise InvalidInput (or a
        subclass) naming the problem, never a TypeError or OverflowError, and write nothing.

        Troubleshooting: these checks live in the core (vectorstore.store, vectorstore.records); a
        backend fails here only if it is called before the core has validated the call.
        """
        col = store.create_collection("shapes", dim=2, fields={"t": "timestamp"}, id_type="int")
        for name, call in _calls(col).items():
            with pytest.raises(vs.InvalidInput):
                call()
            assert col.count() == 0, name

    def test_field_names_that_are_system_columns_are_refused(self, store: vs.Store) -> None:
        """A new collection may not name a field after a system column of any backend (PostgreSQL's
        xmin, xmax, cmin, cmax, ctid, tableoid; SQLite's rowid, oid): the store could not move.

        Troubleshooting: checked by the core's create_collection before the backend is called; a
        backend fails here only if its create_collection is reached another way.
        """
        for name in ("xmin", "ctid", "tableoid", "rowid", "oid"):
            with pytest.raises(vs.InvalidName, match=name):
                store.create_collection("sys", dim=2, fields={name: "int"})
        assert store.list_collections() == []

    def test_the_id_space_ends_at_2_63_minus_1(self, store: vs.Store) -> None:
        """Allocating ids past 2**63 - 1 raises InvalidInput and moves nothing: the sequence stays where
        it was, and the ids left can still be allocated.

        Troubleshooting: compute the first id (max of the sequence, the largest id, ``after``) + 1 and
        refuse before writing when the last one would pass 2**63 - 1 (vectorstore.spi.check_id_space);
        on PostgreSQL map bigint overflow (22003) to InvalidInput.
        """
        col = store.create_collection("ids", dim=2, id_type="int")
        top = 2**63 - 1
        col.allocate_ids(0, after=top - 3)
        with pytest.raises(vs.InvalidInput, match="id space"):
            col.allocate_ids(5)
        assert col.last_id() == top - 3
        assert col.allocate_ids(3) == [top - 2, top - 1, top]
        with pytest.raises(vs.InvalidInput, match="id space"):
            col.insert([{"vector": [1.0, 0.0]}])
        assert col.count() == 0 and col.last_id() == top
