"""Core validation details not visible through a backend."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import vectorstore as vs
from vectorstore.errors import InvalidRecord
from vectorstore.records import coerce_vectors, prepare_batch
from vectorstore.schema import CollectionSpec, Metric

SPEC = CollectionSpec(name="c", dim=3, fields={"ts": "timestamp", "d": "date", "f": "float", "tags": "text[]"})


def test_batch_is_float32_contiguous_and_fields_complete() -> None:
    batch = prepare_batch(SPEC, [{"id": "a", "vector": [1, 2, 3]}, {"id": "b", "vector": np.arange(3.0)}])
    assert batch.vectors.dtype == np.float32 and batch.vectors.flags.c_contiguous
    assert batch.vectors.shape == (2, 3)
    assert batch.fields[0] == {"ts": None, "d": None, "f": None, "tags": None}


def test_timestamps_are_normalised_to_utc() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    batch = prepare_batch(SPEC, [
        {"id": "a", "vector": [1, 2, 3], "fields": {"ts": dt.datetime(2024, 5, 1, 12, 0, tzinfo=plus2)}},
        {"id": "b", "vector": [1, 2, 3], "fields": {"ts": "2024-05-01T12:00:00"}},
    ])
    assert batch.fields[0]["ts"] == dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
    assert batch.fields[1]["ts"] == dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def test_a_datetime_is_not_a_date() -> None:
    with pytest.raises(vs.InvalidRecord, match="date"):
        prepare_batch(SPEC, [{"id": "a", "vector": [1, 2, 3], "fields": {"d": dt.datetime(2024, 1, 1)}}])


def test_int_is_accepted_for_float_fields_and_becomes_float() -> None:
    batch = prepare_batch(SPEC, [{"id": "a", "vector": [1, 2, 3], "fields": {"f": 7}}])
    assert batch.fields[0]["f"] == 7.0 and isinstance(batch.fields[0]["f"], float)


def test_error_names_the_record_and_field() -> None:
    with pytest.raises(vs.InvalidRecord, match=r"records\[1\] \(id 'b'\): field 'tags'"):
        prepare_batch(SPEC, [{"id": "a", "vector": [1, 2, 3]},
                             {"id": "b", "vector": [1, 2, 3], "fields": {"tags": "x"}}])


def test_vector_error_names_the_record() -> None:
    with pytest.raises(vs.DimensionMismatch, match=r"records\[2\] \(id 'c'\)"):
        prepare_batch(SPEC, [{"id": x, "vector": [1, 2, 3] if x != "c" else [1, 2]} for x in "abcd"])


def test_cosine_rejects_zero_vectors_but_l2_accepts_them() -> None:
    with pytest.raises(vs.InvalidVector, match="zero"):
        coerce_vectors([[0, 0, 0]], 3, Metric.COSINE)
    assert coerce_vectors([[0, 0, 0]], 3, Metric.L2).tolist() == [[0.0, 0.0, 0.0]]


def test_metadata_is_copied_not_aliased() -> None:
    meta = {"a": [1]}
    batch = prepare_batch(SPEC, [{"id": "a", "vector": [1, 2, 3], "metadata": meta}])
    meta["a"].append(2)
    assert batch.metadata[0] == {"a": [1]}


def _nested(depth: int) -> dict[str, object]:
    root: dict[str, object] = {}
    node = root
    for _ in range(depth):
        child: dict[str, object] = {}
        node["k"] = child
        node = child
    return root


@pytest.mark.parametrize("bad", [{1: "a"}, {True: 1}, {"a": float("nan")}, {"a": "x\x00y"}, {"a": 2**70},
                                 {"a": -(2**63) - 1}, {"a": "\ud800"}, {"a": object()}, {"a": {"b": [1.5, 2**64]}},
                                 _nested(70)],
                         ids=["int-key", "bool-key", "nan", "nul", "big-int", "small-int", "surrogate", "object",
                              "nested-big-int", "too-deep"])
def test_metadata_fast_path_rejects_what_the_precise_check_rejects(bad: dict[object, object]) -> None:
    from vectorstore.records import coerce_metadata_text

    with pytest.raises(InvalidRecord):
        coerce_metadata_text(bad, "records[0]")


def test_metadata_text_is_canonical_and_kept_for_the_backends() -> None:
    from vectorstore.records import coerce_metadata_text

    value, text = coerce_metadata_text({"b": (1, 2), "a": 9223372036854775807, "c": "\\u0000 é"}, "r")
    assert value == {"a": 9223372036854775807, "b": [1, 2], "c": "\\u0000 é"}
    assert text == '{"a":9223372036854775807,"b":[1,2],"c":"\\\\u0000 é"}'
    spec = CollectionSpec(name="c", dim=2)
    batch = prepare_batch(spec, [{"id": "x", "vector": [1, 0], "metadata": {"z": 1, "a": [True]}}])
    assert batch.metadata_json() == ['{"a":[true],"z":1}'] and batch.metadata == [{"z": 1, "a": [True]}]
