"""Fuzzed input (hypothesis, a bounded and derandomized number of examples; imported through
:mod:`vectorstore_conformance.suite.fuzz`): every call either
succeeds with the reference answer or raises a :class:`vectorstore.VectorStoreError` subclass,
and a failing call writes nothing. Searches run on the backend's exact and approximate paths
(a second store with ``exact_search_below=0``)."""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vectorstore as vs
from vectorstore.filters import matches, parse_filter

#: Examples per fuzzer: a bounded, derandomized run by default (the same examples every run, so
#: CI stays deterministic); VECTORSTORE_FUZZ_EXAMPLES=N runs N random ones (a deeper local hunt).
EXAMPLES = int(os.environ.get("VECTORSTORE_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="VECTORSTORE_FUZZ_EXAMPLES" not in os.environ,
                database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FIELDS = {"i": "int", "f": "float", "t": "text", "b": "bool", "d": "date", "ts": "timestamp", "ia": "int[]",
          "ta": "text[]"}
DIM = 4

# -- values of every shape, sane and not --------------------------------------------------------

weird_text = st.one_of(st.text(max_size=12), st.sampled_from(["", "\x00", "a\x00b", "\ud800", "é", "'; DROP TABLE x;--",
                                                               '"', "\\", "%s", "$1", "?", "a.b", "[0]"]))
numbers = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, -0.0, 2**63 - 1, -(2**63), 2**63, 1e308, 5e-324]))
scalars = st.one_of(st.none(), st.booleans(), numbers, weird_text,
                    st.sampled_from(["2024-02-29", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00",
                                     "2024-13-01", dt.date(2020, 1, 1), dt.datetime(2020, 1, 1, tzinfo=dt.UTC)]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(weird_text, inner, max_size=3)), max_leaves=8)
ops = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$between", "$exists", "$overlap",
                       "$contains", "$regex", "$not", "$and", "eq", ""])
keys = st.one_of(st.sampled_from([*FIELDS, "metadata.m", "metadata.m.n", "metadata.0", "metadata.", "metadata.a b",
                                  "nope", "id", "$or", "$and", "$not"]), weird_text)
conditions = st.one_of(values, st.dictionaries(ops, values, min_size=1, max_size=2))
dict_filters = st.recursive(st.dictionaries(keys, conditions, max_size=3),
                            lambda inner: st.one_of(st.dictionaries(st.sampled_from(["$and", "$or"]),
                                                                    st.lists(inner, max_size=3), min_size=1),
                                                    st.dictionaries(st.just("$not"), inner, min_size=1)),
                            max_leaves=6)
trees = st.one_of(
    st.builds(vs.Comparison, st.sampled_from([*FIELDS, "nope"]), ops, values),
    st.builds(vs.MetaComparison, st.one_of(st.tuples(weird_text), st.tuples(weird_text, weird_text), weird_text),
              ops, values),
    st.builds(vs.Not, st.one_of(st.dictionaries(keys, conditions, max_size=2), st.integers())),
    st.builds(vs.And, st.one_of(st.tuples(), st.integers(), st.tuples(st.dictionaries(keys, conditions, max_size=2)))),
    st.builds(vs.Or, st.one_of(st.lists(st.dictionaries(keys, conditions, max_size=2), max_size=2), st.text())),
)


def _rows() -> list[dict[str, Any]]:
    rng = np.random.default_rng(77)
    vectors = rng.normal(size=(40, DIM)).astype(np.float32)
    rows = []
    for i in range(40):
        rows.append({"id": i + 1, "vector": vectors[i], "fields": {
            "i": i - 20 if i % 7 else None, "f": (i - 20) / 3 if i % 5 else None, "t": ["a", "b", "é", "", None][i % 5],
            "b": [True, False, None][i % 3], "d": dt.date(2020, 1, 1 + i % 28), "ts": dt.datetime(2021, 1, 1, i % 24,
                                                                                                  tzinfo=dt.UTC),
            "ia": [i % 3, i % 5] if i % 4 else [], "ta": ["x", "y"][: i % 3]},
            "metadata": {"m": {"n": i % 4, "s": str(i % 3)}, "0": i % 2 == 0, 'a"b': i} if i % 6 else {}})
    return rows


def _url(url: str, **options: object) -> str:
    base, _, query = url.partition("?")
    kept = [(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k not in options]
    return f"{base}?{urllib.parse.urlencode(kept + [(k, str(v)) for k, v in options.items()])}"


class FuzzConformance:
    @pytest.fixture
    def fuzz_collections(self, store: vs.Store, store_url: str) -> Any:
        """The same 40 records in the store under test and, on the backend's approximate path
        (``exact_search_below=0``), in a second store on the same URL where the backend persists."""
        rows = _rows()
        exact = store.create_collection("fuzz", dim=DIM, fields=FIELDS, id_type="int")
        exact.upsert(rows)
        cols = [exact]
        other = None
        if store.capabilities.persistent:
            other = vs.connect(_url(store_url, exact_search_below=0))
            approx = other.create_collection("fuzz_approx", dim=DIM, fields=FIELDS, id_type="int")
            approx.upsert(rows)
            cols.append(approx)
        yield cols, rows
        if other is not None:
            other.drop_collection("fuzz_approx")
            other.close()

    def _check_filter(self, cols: list[vs.Collection], rows: list[dict[str, Any]], where: Any) -> None:
        spec = cols[0].spec
        try:
            node = parse_filter(where, spec)
        except vs.VectorStoreError:
            node = None
        except Exception as exc:  # pragma: no cover - reported
            raise AssertionError(f"the filter {where!r} raised {type(exc).__name__}: {exc}") from exc
        expected = None if node is None else sorted(
            r["id"] for r in rows if matches(node, _normal(spec, r["fields"]), r["metadata"]))
        for col in cols:
            try:
                got = sorted(int(h.id) for h in col.search(rows[0]["vector"], k=len(rows), where=where))
                counted = col.count(where)
            except vs.VectorStoreError:
                assert node is None, f"{where!r} parsed, but the backend refused it"
                continue
            except Exception as exc:
                raise AssertionError(f"the filter {where!r} raised {type(exc).__name__}: {exc}") from exc
            assert node is not None, f"{where!r}: the core refused it, yet {col.name} answered"
            assert got == expected and counted == len(expected), (where, col.name)

    @FUZZ
    @given(where=dict_filters)
    def test_fuzzed_dict_filters_answer_as_the_reference_or_raise_a_typed_error(
            self, fuzz_collections: Any, where: Any) -> None:
        """Random dict filters (valid and not: unknown fields and operators, values of every type,
        NaN, huge integers, NUL, lone surrogates, SQL text, deep nesting) either select exactly the
        records the reference evaluator selects, by search and count, on the exact and the
        approximate path, or raise a VectorStoreError subclass.

        Troubleshooting: a driver error or a Python exception means a value reached SQL unchecked, or
        a value the core accepts is compiled wrongly; a wrong answer, a NULL-handling or typing
        difference with vectorstore.filters.matches.
        """
        cols, rows = fuzz_collections
        self._check_filter(cols, rows, where)

    @FUZZ
    @given(where=trees)
    def test_fuzzed_typed_trees_answer_as_the_reference_or_raise_a_typed_error(
            self, fuzz_collections: Any, where: Any) -> None:
        """Random typed trees (Comparison, MetaComparison with any path keys, And / Or / Not with
        dict children or malformed ones) behave as the dict filters do: the reference answer or a
        VectorStoreError subclass.

        Troubleshooting: the core re-validates typed trees (vectorstore.filters._revalidate); a Python
        exception here is a case it lets through; metadata path keys must be bound as parameters.
        """
        cols, rows = fuzz_collections
        self._check_filter(cols, rows, where)

    @FUZZ
    @given(record=st.dictionaries(st.one_of(st.sampled_from(["id", "vector", "fields", "metadata"]), weird_text),
                                  values, max_size=4),
           vector=st.one_of(values, st.lists(numbers, min_size=DIM, max_size=DIM)))
    def test_fuzzed_records_are_stored_exactly_or_refused_with_nothing_written(
            self, fuzz_collections: Any, record: dict[Any, Any], vector: Any) -> None:
        """Random records (keys, ids, vectors, fields and metadata of every shape) are either
        stored, the vector read back bit-exact, or refused with a VectorStoreError subclass, leaving
        the collection as it was.

        Troubleshooting: validation lives in the core (vectorstore.records.prepare_batch); a driver
        error means a value passed it unchecked (NUL, surrogates, out-of-range numbers or dates).
        """
        cols, rows = fuzz_collections
        col = cols[0]
        record = {**record, "vector": vector} if "vector" not in record else record
        before = col.count()
        try:
            ids = col.upsert([record])
        except vs.VectorStoreError:
            assert col.count() == before
            return
        except Exception as exc:
            raise AssertionError(f"upsert of {record!r} raised {type(exc).__name__}: {exc}") from exc
        (got,) = col.get(ids)
        if record["vector"] is None:
            assert got.vector is None
        else:
            assert got.vector is not None
            want = np.asarray(record["vector"], dtype=np.float64).astype(np.float32)
            assert got.vector.tobytes() == want.tobytes()
        col.delete(ids)
        assert col.count() == before - (1 if ids[0] in {r["id"] for r in rows} else 0)
        if ids[0] in {r["id"] for r in rows}:  # (an upsert replaced a standing record: put it back)
            col.upsert([r for r in rows if r["id"] == ids[0]])

    @FUZZ
    @given(query=st.one_of(values, st.lists(numbers, min_size=DIM, max_size=DIM)),
           k=st.one_of(st.integers(-2, 60), values), threshold=st.one_of(st.none(), numbers, values),
           ef=st.one_of(st.none(), st.integers(-1, 2000), values))
    def test_fuzzed_search_arguments_answer_or_raise_a_typed_error(
            self, fuzz_collections: Any, query: Any, k: Any, threshold: Any, ef: Any) -> None:
        """Random search arguments (query vectors of any shape, k, threshold, ef_search) either
        return at most k hits, nearest first, within the threshold, or raise a VectorStoreError
        subclass, on the exact and the approximate path.

        Troubleshooting: the core checks every argument (vectorstore.store); a Python exception
        means one reached the backend unchecked.
        """
        cols, _ = fuzz_collections
        for col in cols:
            try:
                hits = col.search(query, k=k, threshold=threshold, ef_search=ef)
            except vs.VectorStoreError:
                continue
            except Exception as exc:
                raise AssertionError(f"search({query!r}, k={k!r}, threshold={threshold!r}, ef_search={ef!r}) raised "
                                     f"{type(exc).__name__}: {exc}") from exc
            assert len(hits) <= k
            assert [h.distance for h in hits] == sorted(h.distance for h in hits)
            if threshold is not None:
                assert all(h.similarity >= threshold - 1e-9 for h in hits)


def _normal(spec: vs.CollectionSpec, fields: dict[str, Any]) -> dict[str, Any]:
    """The record's fields as the core stores them (for the reference evaluator)."""
    from vectorstore.records import coerce_field

    return {name: coerce_field(name, spec.fields[name], value, name) for name, value in fields.items()}


__all__ = ["FuzzConformance"]
