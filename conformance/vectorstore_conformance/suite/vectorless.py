"""Collections without vectors (``dim=None``): records of ids, fields and metadata only.

The contract: ``create_collection(name, dim=None, ...)`` (sync and async) makes a collection whose
spec has ``dim`` None (and ``to_dict()`` null dim, metric and index; any metric or index other
than the defaults is refused with InvalidSchema). Its records leave ``vector`` out (a dict record
may omit the key) or pass None; a vector is refused with DimensionMismatch (an InvalidVector)
saying the collection has no vectors, and nothing of the batch is written. get, scan, page, count,
filters, delete, transactions and bulk loads work as for any collection; ``search`` and
``search_many`` raise InvalidInput (not NotSupported: it is the caller's mistake on every backend)
saying to read with scan/page/get/count. Backends keep no vector storage or index for it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import vectorstore as vs
from vectorstore_conformance.guard import requires
from vectorstore_conformance.helpers import reopened

#: Fields of every kind, so every column type is written and read back without a vector beside it.
_FIELDS = {"title": "text", "n": "int", "score": "float", "ok": "bool", "day": "date", "at": "timestamp",
           "extra": "json", "nums": "int[]", "tags": "text[]"}


def _fields(i: int) -> dict[str, Any]:
    return {"title": f"note {i}", "n": i, "score": i / 4, "ok": i % 2 == 0, "day": dt.date(2024, 1, 1 + i % 28),
            "at": dt.datetime(2024, 1, 1, 12, 0, i % 60, 250_000, tzinfo=dt.UTC), "extra": {"i": i, "l": [i, None]},
            "nums": [i, -i], "tags": ["even" if i % 2 == 0 else "odd"]}


class VectorlessConformance:
    def test_vectorless_collection_spec_has_no_dimension(self, store: vs.Store) -> None:
        """create_collection(name, dim=None) makes a collection whose spec says it has no vectors: dim None,
        to_dict() with null dim, metric and index, read back the same by collection() and list_collections(),
        and from_dict(to_dict()) gives the spec back; exist_ok returns it, another definition is refused.

        Troubleshooting: store the whole CollectionSpec.to_dict() in the catalog (dim, metric and index may be
        JSON null) and rebuild it with CollectionSpec.from_dict; never replace a missing dimension by a number
        (such as 1) or read a null one as 0.
        """
        col = store.create_collection("notes", dim=None, fields={"title": "text", "n": "int"}, id_type="int")
        assert col.spec.dim is None and not col.spec.has_vectors
        data = col.spec.to_dict()
        assert (data["dim"], data["metric"], data["index"]) == (None, None, None)
        assert vs.CollectionSpec.from_dict(data) == col.spec
        assert store.collection("notes").spec == col.spec
        assert [s for s in store.list_collections() if s.name == "notes"] == [col.spec]
        again = store.create_collection("notes", dim=None, fields={"title": "text", "n": "int"}, id_type="int",
                                        exist_ok=True)
        assert again.spec == col.spec
        with pytest.raises(vs.CollectionExists):
            store.create_collection("notes", dim=4, fields={"title": "text", "n": "int"}, id_type="int",
                                    exist_ok=True)

    def test_vectorless_collection_refuses_a_metric_or_index(self, store: vs.Store) -> None:
        """A collection without vectors has no metric or vector index: create_collection(dim=None) with a
        metric other than the default or an index raises InvalidSchema, saying so, and creates nothing;
        metric="cosine" (the default) is accepted.

        Troubleshooting: the core refuses these before the backend is called; if a collection appears anyway,
        the backend created it from a spec the core never built (create only from the CollectionSpec passed in).
        """
        with pytest.raises(vs.InvalidSchema, match="no vectors"):
            store.create_collection("c", dim=None, metric="l2")
        with pytest.raises(vs.InvalidSchema, match="no vectors"):
            store.create_collection("c", dim=None, index=vs.HNSW(m=8))
        assert store.list_collections() == []
        assert store.create_collection("c", dim=None, metric="cosine").spec.dim is None

    def test_vectorless_records_round_trip(self, store: vs.Store) -> None:
        """Records of a collection without vectors are written as dicts without a 'vector' key, with
        'vector': None, or as Record(id, None, ...), and read back (get, page, scan) with vector None and
        every field type and the metadata as written; ids are allocated for int ids as in any collection.

        Troubleshooting: a collection without vectors has no vector column; write only id, fields and metadata,
        and return None as each record's vector (select NULL in its place, or build the Record with vector=None).
        """
        col = store.create_collection("notes", dim=None, fields=_FIELDS, id_type="int")
        written: list[vs.Record | dict[str, Any]] = [{"id": 1, "fields": _fields(1), "metadata": {"k": "one"}},
                                                     {"id": 2, "vector": None, "fields": _fields(2)},
                                                     vs.Record(3, None, _fields(3), {"nested": {"x": [1, 2.5]}})]
        assert col.upsert(written) == [1, 2, 3]
        (new_id,) = col.insert([{"fields": {"title": "allocated"}}])
        assert isinstance(new_id, int) and new_id > 3
        got = col.get([3, 1, 2, new_id])
        assert [r.id for r in got] == [3, 1, 2, new_id]
        assert all(r.vector is None for r in got)
        assert got[0].fields == _fields(3) and got[0].metadata == {"nested": {"x": [1, 2.5]}}
        assert got[1].fields == _fields(1) and got[1].metadata == {"k": "one"}
        assert got[2].fields == _fields(2) and got[2].metadata == {}
        assert got[3].fields["title"] == "allocated" and got[3].fields["n"] is None
        assert [(r.id, r.vector) for r in col.page(after=1, limit=2)] == [(2, None), (3, None)]
        assert [r.id for r in col.scan(batch_size=2)] == [1, 2, 3, new_id]

    def test_vectorless_collection_refuses_a_vector(self, store: vs.Store) -> None:
        """A record with a vector, written to a collection without vectors, raises DimensionMismatch (an
        InvalidVector) saying the collection has no vectors and naming the record, and nothing of its batch is
        written (the good records before it neither), for upsert and insert, as a dict or a Record.

        Troubleshooting: the core refuses it before the backend is called; if records appear, the backend wrote
        a batch the core had not validated, or kept part of a batch that failed.
        """
        col = store.create_collection("notes", dim=None, fields={"n": "int"})
        col.upsert([{"id": "kept", "fields": {"n": 0}}])
        batches: list[list[Any]] = [
            [{"id": "a", "fields": {"n": 1}}, {"id": "b", "vector": [0.5, 1.0], "fields": {"n": 2}}],
            [{"id": "a"}, vs.Record("c", [1.0], {"n": 3})],
        ]
        for batch in batches:
            for write in (col.upsert, col.insert):
                with pytest.raises(vs.DimensionMismatch, match="has no vectors") as info:
                    write(batch)
                assert isinstance(info.value, vs.InvalidVector) and "records[1]" in str(info.value)
        assert [r.id for r in col.scan()] == ["kept"]

    def test_vectorless_search_raises_invalid_input(self, store: vs.Store) -> None:
        """search() and search_many() of a collection without vectors raise InvalidInput (not NotSupported),
        saying the collection has no vectors and to read it with scan/page/get/count; whatever the query and
        the other arguments, and on the async API too.

        Troubleshooting: the core raises this before the backend is called; a backend's own search of such a
        collection (never reached through the API) must find nothing rather than fail on a missing column.
        """
        col = store.create_collection("notes", dim=None, fields={"n": "int"})
        col.upsert([{"id": "a", "fields": {"n": 1}}])
        for call in (lambda: col.search([1.0, 0.0], k=1), lambda: col.search([], k=0, where={"n": 1}),
                     lambda: col.search_many([[1.0]], k=3), lambda: col.search_many([], k=1)):
            with pytest.raises(vs.InvalidInput, match="has no vectors") as info:
                call()
            assert not isinstance(info.value, vs.NotSupported) and "scan" in str(info.value)
        async_col = store.run(store.async_store.collection("notes"))
        with pytest.raises(vs.InvalidInput, match="has no vectors"):
            store.run(async_col.search([1.0], k=1))

    def test_vectorless_filters_count_page_and_delete(self, store: vs.Store) -> None:
        """Filters on the fields and metadata of a collection without vectors work as in any collection:
        count(where), page(where), scan(where), delete(ids), delete(where) and delete(all=True).

        Troubleshooting: compile filters against the field and metadata columns only (never the vector column,
        which such a collection does not have), the same SQL as for a collection with vectors.
        """
        col = store.create_collection("notes", dim=None, fields=_FIELDS, id_type="int")
        col.upsert([{"id": i, "fields": _fields(i), "metadata": {"parity": i % 2}} for i in range(1, 21)])
        assert col.count() == 20
        assert col.count(where={"n": {"$gt": 15}}) == 5
        assert col.count(where={"tags": {"$overlap": ["even"]}, "metadata.parity": 0}) == 10
        assert [r.id for r in col.page(after=4, limit=3, where={"ok": True})] == [6, 8, 10]
        assert [r.id for r in col.scan(batch_size=4, where={"$or": [{"n": 3}, {"title": "note 17"}]})] == [3, 17]
        assert col.delete([1, 2, 99]) == 2
        assert col.delete(where={"n": {"$between": [3, 10]}}) == 8
        assert [r.id for r in col.scan()] == list(range(11, 21))
        assert col.delete(all=True) == 10
        assert col.count() == 0

    def test_vectorless_large_writes_are_all_or_nothing(self, store: vs.Store) -> None:
        """Writes of thousands of records to a collection without vectors (the sizes that take a backend's
        bulk path: COPY, streamed parts) store every record, replace them on upsert, inside bulk_load() too,
        and write nothing when one record of the batch is refused.

        Troubleshooting: the bulk write path must leave the vector out of its column list and its row data
        (binary COPY rows have one column fewer); a streamed write validates its parts as it goes, so a refused
        record must roll back the parts already sent.
        """
        # Scalar fields only, and with array fields (which a binary COPY encoder may not handle itself).
        cases: list[tuple[str, dict[str, str]]] = [("facts", {"n": "int", "extra": "json", "title": "text"}),
                                                   ("tagged", {"n": "int", "tags": "text[]"})]
        for name, fields in cases:
            col = store.create_collection(name, dim=None, fields=fields)
            full: dict[str, Any] = {"n": 0, "extra": {"i": 0}, "title": "t", "tags": ["t"]}
            rows: list[dict[str, Any]] = [
                {"id": f"f{i:05d}", "fields": {k: (i if k == "n" else full[k]) for k in fields}} for i in range(5000)]
            with col.bulk_load():
                assert len(col.insert(rows)) == 5000
            assert col.count() == 5000 and col.get(["f00007"])[0].fields == rows[7]["fields"]
            col.upsert([{"id": r["id"], "fields": {"n": -r["fields"]["n"]}} for r in rows])
            assert col.count() == 5000 and col.count(where={"n": {"$lte": 0}}) == 5000
            assert col.get(["f04999"])[0].fields == {k: (-4999 if k == "n" else None) for k in fields}
            bad = [{"id": f"g{i:05d}", "fields": {"n": i}} for i in range(4999)] + [{"id": "g-bad", "vector": [1.0]}]
            with pytest.raises(vs.DimensionMismatch):
                col.upsert(bad)
            assert col.count() == 5000 and col.get(["g00000"]) == []

    def test_vectorless_writes_join_transactions(self, store: vs.Store) -> None:
        """Writes to a collection without vectors and to one with vectors in one transaction commit together,
        and roll back together when the block raises.

        Troubleshooting: the vectorless collection's writes must use the transaction's connection like any
        other write (see the transaction tests); nothing about them may bypass it.
        """
        requires(store, "transactions")
        notes = store.create_collection("notes", dim=None, fields={"n": "int"})
        vecs = store.create_collection("vecs", dim=2)
        with store.transaction():
            notes.upsert([{"id": "a", "fields": {"n": 1}}])
            vecs.upsert([{"id": "a", "vector": [1, 0]}])
            assert notes.count() == 1
        with pytest.raises(RuntimeError), store.transaction():
            notes.upsert([{"id": "b", "fields": {"n": 2}}])
            vecs.upsert([{"id": "b", "vector": [0, 1]}])
            raise RuntimeError("roll back")
        assert [r.id for r in notes.scan()] == ["a"] and [r.id for r in vecs.scan()] == ["a"]

    def test_vectorless_and_vector_collections_share_a_store(self, store: vs.Store) -> None:
        """A collection without vectors beside collections with vectors changes nothing for them: their
        searches still find their records; and a name dropped as a collection without vectors can be created
        again with vectors (and back), each version working as defined.

        Troubleshooting: anything cached per collection (statements, row codecs, table layouts) must be keyed
        by the whole definition, dimension included, or forgotten on drop_collection.
        """
        store.create_collection("notes", dim=None).upsert([{"id": "n1"}])
        vecs = store.create_collection("vecs", dim=2, metric="l2")
        vecs.upsert([{"id": "near", "vector": [1, 0]}, {"id": "far", "vector": [9, 9]}])
        assert [h.id for h in vecs.search([1, 0.1], k=2)] == ["near", "far"]
        assert store.drop_collection("notes")
        again = store.create_collection("notes", dim=2, metric="l2")
        again.upsert([{"id": "v", "vector": [3, 4]}])
        assert again.get(["v"])[0].vector.tolist() == [3.0, 4.0]
        assert [(h.id, round(h.distance, 6)) for h in again.search([0, 0], k=1)] == [("v", 5.0)]
        assert store.drop_collection("notes")
        back = store.create_collection("notes", dim=None, fields={"n": "int"})
        back.upsert([{"id": "m", "fields": {"n": 7}}])
        assert [(r.id, r.vector, r.fields) for r in back.scan()] == [("m", None, {"n": 7})]

    def test_vectorless_async_api(self, store: vs.Store) -> None:
        """The async API makes and uses collections without vectors the same way: create_collection(dim=None),
        upsert records without vectors, read them back, and search raises InvalidInput.

        Troubleshooting: AsyncStore.create_collection takes dim=None like the sync store (which calls it);
        a failure here and not in the sync tests is in the async layer, not the backend.
        """
        async def go() -> tuple[Any, list[vs.Record]]:
            col = await store.async_store.create_collection("anotes", dim=None, fields={"n": "int"}, id_type="int")
            await col.upsert([{"fields": {"n": 1}}, {"fields": {"n": 2}}])
            with pytest.raises(vs.InvalidInput, match="has no vectors"):
                await col.search_many([[1.0, 2.0]], k=1)
            return col.spec, [r async for r in col.scan()]

        spec, found = store.run(go())
        assert spec.dim is None
        assert [(r.vector, r.fields["n"]) for r in found] == [(None, 1), (None, 2)]

    def test_vectorless_collection_survives_reopen(self, store: vs.Store, store_url: str) -> None:
        """A persistent backend shows a collection without vectors, its definition and records, the same after
        reopening; a non-persistent one starts empty, as it declares.

        Troubleshooting: the catalog must keep dim, metric and index as null (not a default dimension), and
        reading the catalog must rebuild the spec with CollectionSpec.from_dict.
        """
        col = store.create_collection("keep", dim=None, fields={"day": "date"}, id_type="int")
        col.upsert([{"id": 7, "fields": {"day": dt.date(2021, 5, 6)}, "metadata": {"m": True}}])
        spec = col.spec
        with reopened(store, store_url) as again:
            if again is None:
                return
            assert again.list_collections() == [spec]
            (rec,) = again.collection("keep").get([7])
            assert (rec.vector, rec.fields, rec.metadata) == (None, {"day": dt.date(2021, 5, 6)}, {"m": True})
