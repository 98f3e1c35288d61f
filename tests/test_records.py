"""Core validation details not visible through a backend."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import vectorstore as vs
from vectorstore.errors import InvalidRecord
from vectorstore.records import coerce_vector, coerce_vectors, prepare_batch
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


_EDGE_VECTORS = {
    "plain": [0.5, -1.0, 2.0],
    "nan": [0.5, np.nan, 2.0],
    "inf": [np.inf, 1.0, 2.0],
    "-inf": [1.0, 1.0, -np.inf],
    "zeros": [0.0, 0.0, 0.0],
    "negative zero": [-0.0, 0.0, 0.0],
    "squares underflow": [1e-30, 0.0, -1e-25],
    "squares overflow": [3e38, -3e38, 1.0],
    "one tiny, one huge": [1e-45, 3e38, 0.0],
    "both infinities": [np.inf, -np.inf, 1.0],
    "nan and infinity": [np.nan, np.inf, 0.0],
}


@pytest.mark.filterwarnings("error")  # (no overflow or invalid-value warning on the way)
@pytest.mark.parametrize("metric", [Metric.COSINE, Metric.L2, Metric.INNER_PRODUCT])
@pytest.mark.parametrize("name", list(_EDGE_VECTORS))
def test_float32_query_fast_path_decides_like_the_precise_path(name: str, metric: Metric) -> None:
    # coerce_vector's float32 shortcut (one reduction) must accept and refuse exactly what
    # coerce_vectors does, with the same message, and never hand back the caller's array.
    value = np.array(_EDGE_VECTORS[name], dtype=np.float32)
    try:
        expected = coerce_vectors([value], 3, metric, ["query vector"])[0]
    except vs.InvalidVector as exc:
        with pytest.raises(vs.InvalidVector) as got:
            coerce_vector(value, 3, metric, "query vector")
        assert str(got.value) == str(exc)
        return
    out = coerce_vector(value, 3, metric, "query vector")
    assert out.dtype == np.float32 and out.tobytes() == expected.tobytes()
    out[0] = 42.0
    assert value[0] != 42.0


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


# -- the per-record fast path agrees with the precise path ----------------------

FAST_SPEC = CollectionSpec(name="c", dim=2, id_type="int", fields={"t": "text", "i": "int", "f": "float", "b": "bool"})
TEXT_SPEC = CollectionSpec(name="c", dim=2, fields={"t": "text"})


class _Slow(dict):  # type: ignore[type-arg]
    """A dict subclass: prepare_batch sends it down the precise path."""


def _both(spec: CollectionSpec, record: dict[str, object]) -> tuple[object, object]:
    """prepare_batch's result (or the error it raised) for the record as a plain dict (fast
    path) and as a dict subclass (precise path)."""
    out = []
    for item in (record, _Slow(record)):
        try:
            batch = prepare_batch(spec, [item])
            out.append((batch.ids, batch.vectors.tolist(), batch.fields, batch.metadata, batch.metadata_texts))
        except vs.VectorStoreError as exc:
            out.append((type(exc), str(exc)))
    return out[0], out[1]


@pytest.mark.parametrize("record", [
    {"id": 1, "vector": [1, 0], "fields": {"t": "é", "i": -5, "f": 0.5, "b": False}, "metadata": {"z": 1, "a": "x"}},
    {"id": 2, "vector": [1, 0], "fields": {"i": 2**63 - 1}, "metadata": {"n": None, "f": -0.0, "b": True}},
    {"id": 3, "vector": [1, 0], "fields": {"f": 7, "b": np.bool_(True)}, "metadata": {"a": [1, {"b": 2}]}},
    {"id": 4, "vector": None},
    {"id": 5, "vector": [1, 0], "fields": None, "metadata": None},
], ids=["plain", "edges", "converted", "no-vector", "nones"])
def test_fast_path_accepts_like_the_precise_path(record: dict[str, object]) -> None:
    fast, precise = _both(FAST_SPEC, record)
    assert fast == precise and not isinstance(fast[0], type)


@pytest.mark.parametrize("record", [
    {"id": True, "vector": [1, 0]},
    {"id": 2**63, "vector": [1, 0]},
    {"id": 1, "vector": [1, 0], "fields": {"i": True}},
    {"id": 1, "vector": [1, 0], "fields": {"i": 2**63}},
    {"id": 1, "vector": [1, 0], "fields": {"i": 1.0}},
    {"id": 1, "vector": [1, 0], "fields": {"t": "a\x00b"}},
    {"id": 1, "vector": [1, 0], "fields": {"t": "\ud800"}},
    {"id": 1, "vector": [1, 0], "fields": {"t": 3}},
    {"id": 1, "vector": [1, 0], "fields": {"f": float("inf")}},
    {"id": 1, "vector": [1, 0], "fields": {"b": 1}},
    {"id": 1, "vector": [1, 0], "fields": {"nope": 1}},
    {"id": 1, "vector": [1, 0], "fields": ["t"]},
    {"id": 1, "vector": [1, 0], "extra": 1},
    {"id": 1},
    {"id": 1, "vector": [1, 0], "metadata": {"a": float("nan")}},
    {"id": 1, "vector": [1, 0], "metadata": {"a": "x\x00"}},
    {"id": 1, "vector": [1, 0], "metadata": {"a": "\udfff"}},
    {"id": 1, "vector": [1, 0], "metadata": {"a": 2**64}},
    {"id": 1, "vector": [1, 0], "metadata": {1: "a"}},
    {"id": 1, "vector": [1, 0], "metadata": ["a"]},
    {"id": 1, "vector": [0, 0]},
    {"id": 1, "vector": [1, float("nan")]},
    {"id": 1, "vector": [True, False]},
], ids=lambda r: repr(r)[:60])
def test_fast_path_refuses_like_the_precise_path(record: dict[str, object]) -> None:
    fast, precise = _both(FAST_SPEC, record)
    assert fast == precise and isinstance(fast[0], type)


@pytest.mark.parametrize("rid", ["", "x" * 513, "a\x00", "\ud800", 5, None])
def test_fast_path_text_ids(rid: object) -> None:
    fast, precise = _both(TEXT_SPEC, {"id": rid, "vector": [1, 0]})
    if rid is None:  # a generated UUID each time: compare the shape only
        assert isinstance(fast[0][0], str) and len(fast[0][0]) == 32 and len(precise[0][0]) == 32
    else:
        assert fast == precise and isinstance(fast[0], type)


def test_fast_path_metadata_is_a_copy() -> None:
    meta = {"a": 1}
    batch = prepare_batch(FAST_SPEC, [{"id": 1, "vector": [1, 0], "metadata": meta}])
    meta["a"] = 2
    assert batch.metadata == [{"a": 1}] and batch.metadata_texts == ['{"a":1}']


# -- large writes in parts -------------------------------------------------------


def test_batch_ids_checks_ids_up_front() -> None:
    from vectorstore.records import batch_ids

    records: list[object] = [{"id": i, "vector": [1, 0]} for i in range(5)]
    assert batch_ids(FAST_SPEC, records) == [0, 1, 2, 3, 4]
    assert batch_ids(FAST_SPEC, [*records, vs.Record(id=9, vector=[1, 0])]) == [0, 1, 2, 3, 4, 9]
    assert batch_ids(FAST_SPEC, [*records, {"vector": [1, 0]}]) is None  # ids to allocate: the usual path
    with pytest.raises(vs.DuplicateId) as info:
        batch_ids(FAST_SPEC, [*records, {"id": 3, "vector": [1, 0]}])
    assert info.value.ids == [3]
    with pytest.raises(vs.InvalidRecord, match=r"records\[5\]: id 'x' is a str"):
        batch_ids(FAST_SPEC, [*records, {"id": "x", "vector": [1, 0]}])
    with pytest.raises(vs.InvalidRecord, match=r"records\[1\]"):
        batch_ids(TEXT_SPEC, [{"id": "a", "vector": [1, 0]}, {"id": "", "vector": [1, 0]}])


@pytest.mark.parametrize(("dim", "rows"), [(384, 170), (768, 85), (1536, 42), (16_000, 16)])
def test_streamed_parts_hold_about_256_kb_of_vectors(dim: int, rows: int) -> None:
    from vectorstore.records import BatchParts, part_rows

    assert part_rows(dim) == rows
    spec = CollectionSpec(name="c", dim=dim, id_type="int")
    records: list[object] = [{"id": i, "vector": np.ones(dim)} for i in range(rows + 1)]
    assert [len(p) for p in BatchParts(spec, list(range(rows + 1)), records)] == [rows, 1]


def test_batch_parts_validate_each_part_and_name_records_by_their_place() -> None:
    from vectorstore.records import BatchParts

    records: list[object] = [{"id": i, "vector": [1, i]} for i in range(7)]
    parts = BatchParts(FAST_SPEC, list(range(7)), records, part_rows=3)
    got = list(parts)
    assert len(parts) == 7 and [len(p) for p in got] == [3, 3, 1]
    assert [rid for p in got for rid in p.ids] == list(range(7))
    np.testing.assert_array_equal(np.concatenate([p.vectors for p in got]), [[1, i] for i in range(7)])
    records[4] = {"id": 4, "vector": [1, float("inf")]}
    with pytest.raises(vs.InvalidVector, match=r"records\[4\] \(id 4\) vector"):
        list(parts)
    records[4] = {"id": 4, "vector": [1, 0], "fields": {"i": "no"}}
    with pytest.raises(vs.InvalidRecord, match=r"records\[4\] \(id 4\): field 'i'"):
        list(parts)


# -- collections without vectors (dim=None) -------------------------------------------------

NO_VECTORS = CollectionSpec(name="notes", dim=None, fields={"n": "int"}, id_type="int")


def test_a_spec_without_vectors_round_trips_through_its_dict() -> None:
    data = NO_VECTORS.to_dict()
    assert (data["dim"], data["metric"], data["index"]) == (None, None, None)
    assert CollectionSpec.from_dict(data) == NO_VECTORS
    assert NO_VECTORS.has_vectors is False and NO_VECTORS.describe_dim() == "no vectors"
    # Catalogs written before collections could be without vectors: an int dim, metric and index.
    old = {"name": "agentdb_notes", "dim": 1, "metric": "cosine", "fields": {"text": "json"},
           "index": {"m": 16, "ef_construction": 64}, "id_type": "int"}
    spec = CollectionSpec.from_dict(old)
    assert (spec.dim, spec.has_vectors, spec.describe_dim()) == (1, True, "1-d cosine")
    assert CollectionSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("options", [{"metric": "l2"}, {"metric": "inner_product"}, {"index": vs.HNSW(m=8)},
                                     {"index": vs.HNSW(ef_construction=100)}])
def test_a_spec_without_vectors_refuses_a_metric_or_index(options: dict[str, object]) -> None:
    with pytest.raises(vs.InvalidSchema, match=r"'notes' has no vectors \(dim=None\), so it has no metric"):
        CollectionSpec(name="notes", dim=None, **options)  # type: ignore[arg-type]
    assert CollectionSpec(name="notes", dim=None, metric="cosine", index=vs.HNSW()).dim is None


def test_a_batch_without_vectors_has_no_vector_data() -> None:
    batch = prepare_batch(NO_VECTORS, [{"id": 1}, {"id": 2, "vector": None, "fields": {"n": 2}},
                                       vs.Record(3, None, {"n": 3}, {"m": 1})])
    assert batch.vectors.shape == (3, 0) and batch.vectors.dtype == np.float32
    assert [batch.has_vector(i) for i in range(3)] == [False, False, False] and not batch.all_vectors
    assert batch.fields == [{"n": None}, {"n": 2}, {"n": 3}] and batch.metadata[2] == {"m": 1}
    # The fast path and the precise path (a Record, metadata that needs the precise check) agree.
    assert prepare_batch(NO_VECTORS, [{"id": 1, "metadata": {"a": [1]}}]).metadata == [{"a": [1]}]


def test_a_vector_in_a_collection_without_vectors_is_refused_naming_the_record() -> None:
    for record in ({"id": 2, "vector": [1.0]}, vs.Record(2, [0.5, 0.5]), {"id": 2, "vector": []}):
        with pytest.raises(vs.DimensionMismatch, match=r"records\[1\] \(id 2\) vector: collection 'notes' has no "
                                                       r"vectors \(it was created with dim=None\); leave 'vector' out"):
            prepare_batch(NO_VECTORS, [{"id": 1}, record])


def test_a_dict_record_may_leave_the_vector_out_only_without_vectors() -> None:
    from vectorstore.records import batch_ids

    assert batch_ids(NO_VECTORS, [{"id": 1}, {"id": np.int64(2)}]) == [1, 2]
    with pytest.raises(vs.InvalidRecord, match=r"records\[0\] has no 'vector'"):
        prepare_batch(SPEC, [{"id": "a"}])


def test_streamed_parts_without_vectors() -> None:
    from vectorstore.records import VECTORLESS_PART_ROWS, BatchParts, part_rows

    assert part_rows(None) == VECTORLESS_PART_ROWS == 1024
    records: list[object] = [{"id": i} for i in range(1025)]
    parts = list(BatchParts(NO_VECTORS, list(range(1025)), records))
    assert [len(p) for p in parts] == [1024, 1] and parts[0].vectors.shape == (1024, 0)
