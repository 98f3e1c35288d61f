"""Collections: create, open, list, drop; definitions and names."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import vectorstore as vs
from vectorstore_conformance.helpers import ids_of


class LifecycleConformance:
    def test_new_store_is_empty(self, store: vs.Store) -> None:
        """A fresh store has no collections.

        Troubleshooting: the ``store_url`` fixture must point at a new database, schema or file.
        """
        assert store.list_collections() == []

    def test_create_and_open_keeps_the_definition(self, store: vs.Store) -> None:
        """The definition (dim, metric, fields, index, id type) reads back exactly.

        Troubleshooting: the backend's catalog must store CollectionSpec.to_dict() and return
        CollectionSpec.from_dict() of it.
        """
        fields = {"title": "text", "year": "int", "score": "float", "ok": "bool", "day": "date",
                  "at": "timestamp", "extra": "json", "genres": "int[]", "tags": "text[]"}
        created = store.create_collection("movies", dim=8, metric="l2", fields=fields,
                                          index=vs.HNSW(m=8, ef_construction=32), id_type="int")
        opened = store.collection("movies")
        assert opened.spec == created.spec
        assert opened.spec.dim == 8
        assert opened.spec.metric is vs.Metric.L2
        assert opened.spec.id_type is vs.IdType.INT
        assert opened.spec.index == vs.HNSW(m=8, ef_construction=32)
        assert {k: v.value for k, v in opened.spec.fields.items()} == fields

    def test_list_collections_is_sorted_by_name(self, store: vs.Store) -> None:
        """list_collections() returns every collection, sorted by name.

        Troubleshooting: read the collections from the catalog with ORDER BY name (PostgreSQL: a name column
        COLLATE "C" sorts by code point) rather than returning a dict or a cache in creation order; every collection
        created in this store must be listed at once, without a reopen.
        """
        for name in ("zeta", "alpha", "mid"):
            store.create_collection(name, dim=2)
        assert [c.name for c in store.list_collections()] == ["alpha", "mid", "zeta"]

    def test_drop_removes_records_and_reports(self, store: vs.Store) -> None:
        """drop_collection removes the collection and its records and returns True; dropping it again returns False
        (no error); the store then lists no collection, and re-creating the name gives an empty collection.

        Troubleshooting: delete the catalog row and drop the table (with its indexes, id-sequence row and side
        tables) in one transaction, returning whether the catalog row existed; forget everything cached under the
        name (prepared statements, row codecs, specs) so the re-created collection starts empty and with its new
        definition.
        """
        col = store.create_collection("tmp", dim=2)
        col.upsert([{"id": "a", "vector": [1, 0]}])
        assert store.drop_collection("tmp") is True
        assert store.drop_collection("tmp") is False
        assert store.list_collections() == []
        assert store.create_collection("tmp", dim=2).count() == 0

    def test_create_existing(self, store: vs.Store) -> None:
        """Creating an existing collection raises CollectionExists; exist_ok=True with the same definition returns
        the existing collection: its whole spec equals the created one (name, dim, metric, fields, index, id type),
        it holds the record stored before, and it is usable (a record upserted through it is seen through the first
        handle, and searched). A different definition under the same name (another dim, metric, field type, set of
        fields, id type or index) raises CollectionExists mentioning the 'different definition', even with
        exist_ok=True, and leaves the existing collection as it was (spec and records).

        Troubleshooting: the comparison is the core's. The backend's create_collection must raise CollectionExists
        when the name is already in its catalog (INSERT ... ON CONFLICT DO NOTHING, or the server's unique violation
        mapped to CollectionExists; never a driver error or 'table already exists'), leaving the existing collection
        and its records untouched (no DROP / re-create, no truncation); get_collection must then return a spec equal
        to the created one (store CollectionSpec.to_dict(), return from_dict() of it), or exist_ok=True reports a
        different definition.
        """
        definition: dict[str, Any] = {"dim": 3, "metric": "l2", "fields": {"a": "int", "t": "text"},
                                      "index": vs.HNSW(m=8, ef_construction=32), "id_type": "int"}
        created = store.create_collection("dup", **definition)
        created.upsert([{"id": 1, "vector": [1, 0, 0], "fields": {"a": 1, "t": "one"}}])
        with pytest.raises(vs.CollectionExists):
            store.create_collection("dup", **definition)
        again = store.create_collection("dup", **definition, exist_ok=True)
        assert again.spec == created.spec
        assert (again.spec.name, again.spec.dim, again.spec.metric, again.spec.id_type, again.spec.index) == (
            "dup", 3, vs.Metric.L2, vs.IdType.INT, vs.HNSW(m=8, ef_construction=32))
        assert {k: v.value for k, v in again.spec.fields.items()} == {"a": "int", "t": "text"}
        assert [(r.id, r.fields) for r in again.get([1])] == [(1, {"a": 1, "t": "one"})]
        again.upsert([{"id": 2, "vector": [0, 1, 0], "fields": {"a": 2, "t": "two"}}])
        assert created.count() == 2
        assert ids_of(again.search([0, 1, 0], k=2)) == [2, 1]
        for change in ({"dim": 4}, {"metric": "cosine"}, {"fields": {"a": "float", "t": "text"}},
                       {"fields": {"a": "int"}}, {"id_type": "text"}, {"index": vs.HNSW(m=16, ef_construction=32)}):
            with pytest.raises(vs.CollectionExists, match="different definition"):
                store.create_collection("dup", **{**definition, **change}, exist_ok=True)
        assert store.collection("dup").spec == created.spec
        assert created.count() == 2
        assert [c.name for c in store.list_collections()] == ["dup"]

    def test_missing_collection(self, store: vs.Store) -> None:
        """Opening a missing collection raises CollectionNotFound (a LookupError).

        Troubleshooting: get_collection must raise CollectionNotFound.named(name) when the catalog has no row for
        the name: not return None, raise KeyError or let a driver's 'no such table' / UndefinedTable error through.
        Look the name up in the catalog rather than probing for the table.
        """
        with pytest.raises(vs.CollectionNotFound):
            store.collection("nope")
        with pytest.raises(LookupError):
            store.collection("nope")

    def test_operations_on_a_dropped_collection(self, store: vs.Store) -> None:
        """A handle to a collection dropped since raises CollectionNotFound, never a driver error.

        Troubleshooting: map the driver's "no such table" / UndefinedTable error to CollectionNotFound.
        """
        col = store.create_collection("gone", dim=2)
        store.drop_collection("gone")
        with pytest.raises(vs.CollectionNotFound):
            col.upsert([{"id": "a", "vector": [1, 0]}])
        with pytest.raises(vs.CollectionNotFound):
            col.search([1, 0])
        with pytest.raises(vs.CollectionNotFound):
            col.count()

    @pytest.mark.parametrize("name", ["", "Movies", "1abc", "a-b", "a b", 'x"; DROP TABLE t;--', "vs_internal",
                                      "a__b", "a" * 49, "naïve", None, 7])
    def test_invalid_collection_names(self, store: vs.Store, name: object) -> None:
        """Invalid collection names (empty, upper case, a leading digit, punctuation, a space, SQL, the reserved
        'vs_' prefix and '__', more than 48 characters, non-ASCII, None, an int) raise InvalidName, and no
        collection is created.

        Troubleshooting: names are checked by the core (vectorstore.schema.check_name) before the backend is called,
        which lets a backend use them as SQL identifiers and keep 'vs_' and '__' for its own tables. If
        list_collections() is not empty afterwards, it lists more than the catalog's rows (every table of the schema
        or file, the backend's own tables).
        """
        with pytest.raises(vs.InvalidName):
            store.create_collection(name, dim=2)  # type: ignore[arg-type]
        assert store.list_collections() == []

    @pytest.mark.parametrize("fields", [{"Bad": "int"}, {"id": "int"}, {"vector": "text"}, {"x;--": "int"},
                                        {"ok": "decimal"}, {"ok": "int[][]"}])
    def test_invalid_fields(self, store: vs.Store, fields: dict[str, str]) -> None:
        """Bad field names (upper case, the reserved 'id' and 'vector', punctuation) or unknown field types
        ('decimal', 'int[][]') raise InvalidName or InvalidSchema, and no collection is created.

        Troubleshooting: field definitions are checked by the core (CollectionSpec) before create_collection reaches
        the backend, so a backend may use field names as column names. A non-empty list_collections() means it lists
        more than its catalog; another error type means the backend was reached with the definition unchecked:
        install vectorstore and vectorstore_conformance from the same release, and make sure the store under test is
        opened through vectorstore (the store_url fixture).
        """
        with pytest.raises((vs.InvalidName, vs.InvalidSchema)):
            store.create_collection("c", dim=2, fields=fields)
        assert store.list_collections() == []

    @pytest.mark.parametrize(("kwargs", "named"), [
        ({"dim": 0}, ["dim", "from 1 to 16000", "got 0"]),
        ({"dim": -1}, ["dim", "from 1 to 16000", "got -1"]),
        ({"dim": 16001}, ["dim", "from 1 to 16000", "got 16001"]),
        ({"dim": "3"}, ["dim", "from 1 to 16000", "got '3'"]),
        ({"dim": 2.5}, ["dim", "from 1 to 16000", "got 2.5"]),
        ({"dim": 2, "metric": "dot"}, ["metric", "'dot'", "'cosine'", "'l2'", "'inner_product'"]),
        ({"dim": 2, "metric": "hamming"}, ["metric", "'hamming'", "'cosine'", "'l2'", "'inner_product'"]),
        ({"dim": 2, "id_type": "uuid"}, ["id type", "'uuid'", "'text'", "'int'"]),
    ], ids=["dim-0", "dim-negative", "dim-16001", "dim-str", "dim-float", "metric-dot", "metric-hamming",
            "id-type-uuid"])
    def test_invalid_definitions(self, store: vs.Store, kwargs: dict[str, object], named: list[str]) -> None:
        """A bad dimension (0, -1, 16001, the string '3', 2.5), an unknown metric ('dot', 'hamming') or an unknown
        id type ('uuid') raises InvalidSchema whose message names the setting, the bad value (as its repr) and what
        is allowed: the range 'from 1 to 16000' for dim, every metric ('cosine', 'l2', 'inner_product') for a
        metric, 'text' and 'int' for an id type; and no collection is created.

        Troubleshooting: the definition is validated by the core (CollectionSpec) before the backend sees it. A
        non-empty list_collections() means it lists more than its catalog; another error type means the backend was
        reached with the definition unchecked: install vectorstore and vectorstore_conformance from the same
        release, and make sure the store under test is opened through vectorstore (the store_url fixture).
        """
        with pytest.raises(vs.InvalidSchema) as caught:
            store.create_collection("c", **kwargs)  # type: ignore[arg-type]
        message = str(caught.value)
        assert [part for part in named if part not in message] == [], message
        assert store.list_collections() == []

    def test_invalid_index_parameters(self) -> None:
        """HNSW parameters are range-checked without a store: HNSW(m=1) and HNSW(ef_construction=0) raise
        InvalidSchema.

        Troubleshooting: no backend takes part: the check is vectorstore.schema.HNSW's, so a failure means the
        installed vectorstore does not match the suite (install both from the same release). Backends read
        spec.index.m and ef_construction as already validated.
        """
        with pytest.raises(vs.InvalidSchema):
            vs.HNSW(m=1)
        with pytest.raises(vs.InvalidSchema):
            vs.HNSW(ef_construction=0)

    def test_every_field_type_round_trips(self, store: vs.Store) -> None:
        """Field values read back with their types: date, aware UTC datetime (microseconds kept),
        lists, bool, float, int64 extremes, JSON values, unicode.

        Troubleshooting: convert on read (ISO text → date, epoch µs → datetime UTC, JSON text → list).
        """
        fields = {"t": "text", "i": "int", "f": "float", "b": "bool", "d": "date", "ts": "timestamp",
                  "j": "json", "ia": "int[]", "ta": "text[]"}
        col = store.create_collection("types", dim=2, fields=fields)
        full = {"t": "Zoë ☃ 'quoted' \"double\" \\", "i": -(2**63), "f": 0.30000000000000004, "b": True,
                "d": dt.date(1969, 7, 20), "ts": dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
                "j": {"nested": [1, 2.5, None, "x"], "flag": False}, "ia": [2**63 - 1, 0, -1], "ta": ["a", "", "☃"]}
        local = dt.timezone(dt.timedelta(hours=-5))
        other = {"t": "", "i": 2**63 - 1, "f": -1e-300, "b": False, "d": "2024-02-29",
                 "ts": dt.datetime(2024, 1, 1, 7, 0, tzinfo=local), "j": [1, "two"], "ia": [], "ta": []}
        col.upsert([{"id": "full", "vector": [1, 0], "fields": full},
                    {"id": "other", "vector": [0, 1], "fields": other},
                    {"id": "none", "vector": [1, 1]}])
        got = {r.id: r.fields for r in col.get(["full", "other", "none"])}
        assert got["full"] == full
        assert type(got["full"]["d"]) is dt.date
        assert got["full"]["ts"].tzinfo is not None and got["full"]["ts"].utcoffset() == dt.timedelta(0)
        assert got["other"]["d"] == dt.date(2024, 2, 29)
        assert got["other"]["ts"] == dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)
        assert got["other"]["ia"] == [] and got["other"]["ta"] == [] and got["other"]["t"] == ""
        assert isinstance(got["other"]["f"], float) and got["other"]["f"] == -1e-300
        assert got["none"] == dict.fromkeys(fields)

    def test_metadata_round_trips(self, store: vs.Store) -> None:
        """Metadata is free JSON and reads back equal: nesting, unicode, quotes in keys, exact doubles,
        64-bit integers, empty containers.

        Troubleshooting: store metadata as JSON text written with vectorstore.records.dump_json (or jsonb) and read
        it with json.loads semantics: integers come back as int (2**62 is not exact as a double, so no float or
        Decimal number loader), doubles exactly (0.30000000000000004), unicode and keys with quotes intact; a record
        stored without metadata reads back as {} (store '{}', not NULL, or map NULL to {}).
        """
        col = store.create_collection("meta", dim=2)
        meta = {"a": {"b": [1, {"c": None}]}, "key with 'quotes' and \"dq\"": "v", "☃": "snow",
                "float": 0.30000000000000004, "big": 2**62, "neg": -7, "empty": {}, "list": [], "t": True,
                "drop": "'); DROP TABLE meta;--"}
        col.upsert([{"id": "m", "vector": [1, 0], "metadata": meta}, {"id": "n", "vector": [0, 1]}])
        got = {r.id: r.metadata for r in col.get(["m", "n"])}
        assert got["m"] == meta
        assert got["n"] == {}

    def test_field_order_survives_the_catalog(self, store: vs.Store) -> None:
        """A collection opened from the catalog keeps the declared field order, and values written
        through one handle read back in the right fields through the other (field names chosen so
        that sorting by name or by length would reorder them).

        Troubleshooting: store fields as an ordered list; PostgreSQL jsonb reorders object keys.
        """
        fields = {"zeta": "int", "alpha": "text", "mid": "float", "b": "bool"}
        created = store.create_collection("order", dim=2, fields=fields, id_type="int")
        created.insert([{"vector": [1, 0], "fields": {"zeta": 1, "alpha": "a", "mid": 0.5, "b": True}}])
        opened = store.collection("order")
        assert list(opened.spec.fields) == list(fields)
        assert opened.get([1])[0].fields == {"zeta": 1, "alpha": "a", "mid": 0.5, "b": True}
        opened.insert([{"vector": [0, 1], "fields": {"zeta": 2, "alpha": "b", "mid": 1.5, "b": False}}])
        assert created.get([2])[0].fields == {"zeta": 2, "alpha": "b", "mid": 1.5, "b": False}
