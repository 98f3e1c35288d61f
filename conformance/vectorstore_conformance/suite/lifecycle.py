"""Collections: create, open, list, drop; definitions and names."""

from __future__ import annotations

import datetime as dt

import pytest

import vectorstore as vs


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
        """list_collections() returns every collection, sorted by name."""
        for name in ("zeta", "alpha", "mid"):
            store.create_collection(name, dim=2)
        assert [c.name for c in store.list_collections()] == ["alpha", "mid", "zeta"]

    def test_drop_removes_records_and_reports(self, store: vs.Store) -> None:
        """drop_collection removes the collection and its records; dropping again returns False;
        re-creating gives an empty collection."""
        col = store.create_collection("tmp", dim=2)
        col.upsert([{"id": "a", "vector": [1, 0]}])
        assert store.drop_collection("tmp") is True
        assert store.drop_collection("tmp") is False
        assert store.list_collections() == []
        assert store.create_collection("tmp", dim=2).count() == 0

    def test_create_existing(self, store: vs.Store) -> None:
        """Creating an existing collection raises CollectionExists; exist_ok=True returns an identical
        one; a different definition under the same name always raises."""
        store.create_collection("dup", dim=3, fields={"a": "int"})
        with pytest.raises(vs.CollectionExists):
            store.create_collection("dup", dim=3, fields={"a": "int"})
        again = store.create_collection("dup", dim=3, fields={"a": "int"}, exist_ok=True)
        assert again.spec.dim == 3
        with pytest.raises(vs.CollectionExists, match="different definition"):
            store.create_collection("dup", dim=4, exist_ok=True)

    def test_missing_collection(self, store: vs.Store) -> None:
        """Opening a missing collection raises CollectionNotFound (a LookupError)."""
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
        """Invalid names raise InvalidName and create nothing (names become SQL identifiers)."""
        with pytest.raises(vs.InvalidName):
            store.create_collection(name, dim=2)  # type: ignore[arg-type]
        assert store.list_collections() == []

    @pytest.mark.parametrize("fields", [{"Bad": "int"}, {"id": "int"}, {"vector": "text"}, {"x;--": "int"},
                                        {"ok": "decimal"}, {"ok": "int[][]"}])
    def test_invalid_fields(self, store: vs.Store, fields: dict[str, str]) -> None:
        """Bad field names or unknown field types are rejected before anything is created."""
        with pytest.raises((vs.InvalidName, vs.InvalidSchema)):
            store.create_collection("c", dim=2, fields=fields)
        assert store.list_collections() == []

    @pytest.mark.parametrize("kwargs", [{"dim": 0}, {"dim": -1}, {"dim": 16001}, {"dim": "3"}, {"dim": 2.5},
                                        {"dim": 2, "metric": "dot"}, {"dim": 2, "metric": "hamming"},
                                        {"dim": 2, "id_type": "uuid"}])
    def test_invalid_definitions(self, store: vs.Store, kwargs: dict[str, object]) -> None:
        """Bad dimension, unknown metric or id type raise InvalidSchema naming the choices."""
        with pytest.raises(vs.InvalidSchema):
            store.create_collection("c", **kwargs)  # type: ignore[arg-type]
        assert store.list_collections() == []

    def test_invalid_index_parameters(self) -> None:
        """HNSW parameters are range-checked."""
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
        64-bit integers, empty containers."""
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
