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
        """An id twice in one batch raises DuplicateId (naming it) and writes nothing."""
        col = store.create_collection("bad", dim=3)
        with pytest.raises(vs.DuplicateId, match="dup"):
            col.upsert([{"id": "dup", "vector": [1, 2, 3]}, {"id": "ok", "vector": [1, 2, 3]},
                        {"id": "dup", "vector": [3, 2, 1]}])
        assert col.count() == 0

    def test_a_single_record_is_not_a_batch(self, store: vs.Store) -> None:
        """Passing one record instead of a list raises InvalidRecord saying to wrap it."""
        col = store.create_collection("bad", dim=3)
        with pytest.raises(vs.InvalidRecord, match="list"):
            col.upsert(cast(Any, {"id": "a", "vector": [1, 2, 3]}))

    def test_numpy_inputs_are_accepted(self, store: vs.Store) -> None:
        """NumPy arrays (any float or int dtype) are valid vectors, and a 2-D array is a valid query batch."""
        col = store.create_collection("np", dim=3, metric="l2")
        col.upsert([{"id": "a", "vector": np.array([1, 2, 3], dtype=np.int64)},
                    {"id": "b", "vector": np.array([1, 2, 4], dtype=np.float64)},
                    {"id": "c", "vector": np.array([0, 0, 0], dtype=np.float16)}])
        assert col.count() == 3
        assert [len(h) for h in col.search_many(np.eye(3, dtype=np.float32), k=2)] == [2, 2, 2]

    def test_injection_attempts_are_stored_literally(self, store: vs.Store) -> None:
        """SQL in ids, field values, metadata keys and filter values is data, stored and matched literally."""
        col = store.create_collection("inj", dim=3, fields={"t": "text"})
        evil = "x'); DROP TABLE inj; --"
        col.upsert([{"id": evil, "vector": [1, 2, 3], "fields": {"t": evil}, "metadata": {evil: evil}}])
        (rec,) = col.get([evil])
        assert rec.id == evil and rec.fields == {"t": evil} and rec.metadata == {evil: evil}
        assert col.count({"t": evil}) == 1
        assert col.count({"t": "x' OR '1'='1"}) == 0
        assert col.delete([evil]) == 1
        assert [c.name for c in store.list_collections()] == ["inj"]
