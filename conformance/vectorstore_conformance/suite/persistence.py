"""Persistence across close and reopen (declared by the ``persistent`` capability)."""

from __future__ import annotations

import datetime as dt

import vectorstore as vs
from vectorstore_conformance.helpers import reopened


class PersistenceConformance:
    def test_data_survives_reopen(self, store: vs.Store, store_url: str) -> None:
        """A persistent backend shows the same collections, definitions and records after reopening;
        a non-persistent one (memory) starts empty, as it declares.

        Troubleshooting: commit before close; store the full collection definition in the catalog.
        """
        col = store.create_collection("keep", dim=3, metric="l2", fields={"day": "date", "n": "int"},
                                      index=vs.HNSW(m=12, ef_construction=40), id_type="int")
        col.upsert([{"id": i, "vector": [i, 0.5, -i], "fields": {"day": dt.date(2020, 1, i + 1), "n": i},
                     "metadata": {"i": i}} for i in range(20)])
        spec = col.spec
        with reopened(store, store_url) as again:
            if again is None:
                return
            assert again.list_collections() == [spec]
            kept = again.collection("keep")
            assert kept.count() == 20
            recs = kept.get([0, 19])
            assert [(r.id, r.fields, r.metadata, r.vector.tolist()) for r in recs] == [
                (0, {"day": dt.date(2020, 1, 1), "n": 0}, {"i": 0}, [0.0, 0.5, 0.0]),
                (19, {"day": dt.date(2020, 1, 20), "n": 19}, {"i": 19}, [19.0, 0.5, -19.0]),
            ]
            assert [h.id for h in kept.search([5, 0.5, -5], k=3)] == [5, 4, 6]
