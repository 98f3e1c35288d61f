"""Large batches."""

from __future__ import annotations

import numpy as np

import vectorstore as vs


class BulkConformance:
    def test_ten_thousand_records_in_one_upsert(self, store: vs.Store) -> None:
        """One upsert of 10,000 records (64-d, with fields and metadata) stores them all, and a second
        one over the same ids replaces them all.

        Troubleshooting: batch parameters (SQLite's variable limit) or use COPY (PostgreSQL).
        """
        n, dim = 10_000, 64
        rng = np.random.default_rng(10)
        data = rng.normal(size=(n, dim)).astype(np.float32)
        col = store.create_collection("bulk", dim=dim, fields={"n": "int"})
        ids = col.upsert([{"id": f"b{i:05d}", "vector": data[i], "fields": {"n": i}, "metadata": {"i": i}}
                          for i in range(n)])
        assert len(ids) == n and col.count() == n
        sample = col.get(["b00000", "b04321", "b09999"])
        assert [r.fields["n"] for r in sample] == [0, 4321, 9999]
        assert sample[1].vector.tobytes() == data[4321].tobytes()
        col.upsert([{"id": f"b{i:05d}", "vector": data[i], "fields": {"n": -i}} for i in range(n)])
        assert col.count() == n
        assert col.count({"n": {"$gt": 0}}) == 0
        assert col.search(data[77], k=1)[0].id == "b00077"
