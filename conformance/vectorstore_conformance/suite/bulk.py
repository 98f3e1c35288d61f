"""Large batches, and bulk loads (``bulk_load()``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import vectorstore as vs
from vectorstore_conformance.helpers import clustered, expected_order, ids_of, records


class BulkConformance:
    def test_ten_thousand_records_in_one_upsert(self, store: vs.Store) -> None:
        """One upsert of 10,000 records (64-d, with fields and metadata) stores them all, and a second
        one over the same ids replaces them all.

        Troubleshooting: an error such as 'too many SQL variables' or a statement too large means the whole batch
        was bound into one statement: split it under the driver's parameter limit (SQLite) or use executemany / COPY
        (PostgreSQL), still in one transaction. A count above 10,000, or records with n > 0 after the second upsert,
        means the bulk path inserted or kept old values instead of replacing: ON CONFLICT (id) DO UPDATE every
        column.
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

    @pytest.mark.parametrize("bad", ["wrong dimension", "NaN", "unknown field", "duplicate id"])
    def test_a_bad_record_late_in_a_large_batch_writes_nothing(self, store: vs.Store, bad: str) -> None:
        """A batch of 5,000 records whose record 4,500 is bad (a backend may stream such a batch,
        validating it part by part while earlier parts are sent) raises the typed error and commits
        none of the batch, by upsert or insert; inside a transaction, the transaction's earlier
        writes survive, it stays usable, and it commits without any of the batch.

        Troubleshooting: a streaming write (WritesInParts) must send every part in one transaction
        (a savepoint inside the caller's), and roll it back when the iteration of the parts raises;
        never commit part by part.
        """
        n, dim = 5000, 8
        rng = np.random.default_rng(12)
        data = rng.normal(size=(n, dim)).astype(np.float32)
        col = store.create_collection("late", dim=dim, fields={"n": "int"})
        batch: list[dict[str, Any]] = [{"id": f"x{i:05d}", "vector": data[i], "fields": {"n": i}} for i in range(n)]
        error: type[Exception] = vs.InvalidRecord
        if bad == "wrong dimension":
            batch[4500]["vector"], error = data[4500][:-1], vs.DimensionMismatch
        elif bad == "NaN":
            batch[4500]["vector"], error = np.full(dim, np.nan, dtype=np.float32), vs.InvalidVector
        elif bad == "unknown field":
            batch[4500]["fields"] = {"nope": 1}
        else:
            batch[4500]["id"], error = "x00007", vs.DuplicateId
        for method in ("upsert", "insert"):
            with pytest.raises(error):
                getattr(col, method)(batch)
            assert col.count() == 0, method
        if not store.capabilities.transactions:
            return
        with store.transaction():
            col.upsert([{"id": "kept", "vector": data[0], "fields": {"n": -1}}])
            with pytest.raises(error):
                col.upsert(batch)
            col.upsert([{"id": "after", "vector": data[1], "fields": {"n": -2}}])
        assert sorted(str(r.id) for r in col.scan()) == ["after", "kept"]

    # -- bulk_load(): the backend may defer its vector index and build it once at the end ---------

    def _check_search(self, store: vs.Store, col: vs.Collection, ids: list[str], data: np.ndarray,
                      queries: np.ndarray, where: dict[str, Any] | None = None) -> None:
        """Search equals the reference ranking (recall >= 0.9 at k=10 on an approximate backend)."""
        for q in queries:
            hits = col.search(q, k=10, where=where)
            truth = expected_order("cosine", ids, data, q)[:10]
            assert len(hits) == min(10, len(ids))
            if store.capabilities.exact_search:
                assert ids_of(hits) == truth
            else:
                assert len(set(ids_of(hits)) & set(truth)) >= 9

    def test_records_loaded_in_bulk_load_are_all_searchable(self, store: vs.Store) -> None:
        """Records upserted in 15 batches inside ``bulk_load()`` (each batch its own transaction, as a
        migration does it, with one record without a vector) are all stored bit-exact and found by
        search, during the block (exact or within recall) and after it; so are records stored before.

        Troubleshooting: search must stay correct while the index is deferred (exact without one),
        and the index must be built when the block ends.
        """
        dim, batches, size = 16, 15, 100
        data = clustered(200 + batches * size, dim, seed=31)
        ids = [f"k{i:05d}" for i in range(len(data))]
        col = store.create_collection("loaded", dim=dim, fields={"n": "int"}, index=vs.HNSW(m=8, ef_construction=32))
        col.upsert(records(ids[:200], data[:200], [{"n": i} for i in range(200)]))
        queries = clustered(4, dim, seed=32)
        with col.bulk_load():
            for b in range(batches):
                lo, hi = 200 + b * size, 200 + (b + 1) * size
                batch = records(ids[lo:hi], data[lo:hi], [{"n": i} for i in range(lo, hi)])
                if store.capabilities.transactions:
                    with store.transaction():
                        col.upsert(batch)
                else:
                    col.upsert(batch)
                if b == batches // 2:  # searching in the middle of the load
                    self._check_search(store, col, ids[:hi], data[:hi], queries)
            col.upsert([{"id": "novector", "vector": None, "fields": {"n": -1}}])
            assert col.count() == len(ids) + 1
        assert col.count() == len(ids) + 1
        got = col.get(["k00000", "k00777", ids[-1], "novector"])
        assert [r.id for r in got] == ["k00000", "k00777", ids[-1], "novector"]
        assert got[1].vector.tobytes() == data[777].tobytes() and got[1].fields == {"n": 777}
        assert got[3].vector is None
        self._check_search(store, col, ids, data, queries)
        # Filtered: only even n.
        even = [i for i in range(len(ids)) if i % 2 == 0]
        self._check_search(store, col, [ids[i] for i in even], data[even], queries[:2],
                           where={"n": {"$in": list(range(0, len(ids), 2))}})
        assert col.search(data[1234], k=1)[0].id == ids[1234]

    def test_an_exception_inside_bulk_load_leaves_a_usable_collection(self, store: vs.Store) -> None:
        """An exception raised inside ``bulk_load()`` propagates; the batches written before it are kept,
        the collection is searchable (its index built again), a later bulk load works, and doctor()
        reports no problem with it.

        Troubleshooting: build the index on the way out whatever the exit (``finally``).
        """
        dim = 8
        data = clustered(600, dim, seed=33)
        ids = [f"e{i:04d}" for i in range(len(data))]
        col = store.create_collection("broken_load", dim=dim)
        col.upsert(records(ids[:100], data[:100]))
        with pytest.raises(_Boom), col.bulk_load():
            col.upsert(records(ids[100:300], data[100:300]))
            raise _Boom
        assert col.count() == 300
        self._check_search(store, col, ids[:300], data[:300], data[:3] + 0.01)
        with col.bulk_load():
            col.upsert(records(ids[300:], data[300:]))
        assert col.count() == 600
        self._check_search(store, col, ids, data, data[590:593] + 0.01)
        problems = [c for c in store.doctor() if c.ok is False and "broken_load" in c.detail]
        assert problems == []

    def test_nested_and_concurrent_bulk_loads_are_safe(self, store: vs.Store) -> None:
        """A bulk load nested in another of the same collection, and two threads loading one collection at
        once, leave every record searchable.

        Troubleshooting: only the last bulk load of a collection to end may build its index; count the
        running ones (PostgreSQL: a shared advisory lock per load).
        """
        dim = 8
        data = clustered(800, dim, seed=34)
        ids = [f"n{i:04d}" for i in range(len(data))]
        col = store.create_collection("nested", dim=dim)
        with col.bulk_load():
            col.upsert(records(ids[:100], data[:100]))
            with col.bulk_load():
                col.upsert(records(ids[100:200], data[100:200]))
                self._check_search(store, col, ids[:200], data[:200], data[:2] + 0.01)
            col.upsert(records(ids[200:300], data[200:300]))
            self._check_search(store, col, ids[:300], data[:300], data[250:252] + 0.01)
        self._check_search(store, col, ids[:300], data[:300], data[:2] + 0.01)

        def load(lo: int, hi: int) -> None:
            with col.bulk_load():
                for start in range(lo, hi, 50):
                    col.upsert(records(ids[start:start + 50], data[start:start + 50]))

        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(load, 300, 550), pool.submit(load, 550, 800)]:
                future.result()
        assert col.count() == 800
        self._check_search(store, col, ids, data, data[[5, 400, 700]] + 0.01)

    def test_bulk_load_inside_a_transaction_is_refused(self, store: vs.Store) -> None:
        """``bulk_load()`` entered inside a transaction raises TransactionError and changes nothing; the
        transaction stays usable.

        Troubleshooting: the core refuses the block when the backend's in_transaction() is True, so in_transaction()
        must tell whether the calling task is inside transaction() (a context variable set on entry and reset on
        exit, not a flag shared by every task). The refusal comes before the backend's bulk_load() is entered, so
        the transaction must stay usable for the upsert that follows; a backend without transactions must still run
        bulk_load() with ordinary writes inside.
        """
        col = store.create_collection("refused", dim=2)
        if not store.capabilities.transactions:
            with col.bulk_load():
                col.upsert([{"id": "a", "vector": [1, 0]}])
            assert col.count() == 1
            return
        with store.transaction():
            with pytest.raises(vs.TransactionError, match="inside a transaction"), col.bulk_load():
                pass
            col.upsert([{"id": "a", "vector": [1, 0]}])
        assert [h.id for h in col.search([1, 0], k=1)] == ["a"]

    def test_last_id_reports_the_sequence_without_moving_it(self, store: vs.Store) -> None:
        """``last_id()`` of an int-id collection is the greatest id allocated or stored (0 when none), and
        reading it allocates nothing; text-id collections have none (InvalidInput).

        Troubleshooting: return the greater of the collection's sequence row and max(id) of its records (0 when both
        are missing), read in one snapshot; never write in last_id() (no upsert of the sequence row, no nextval()),
        or the second read returns more. Deleting records must leave the sequence row alone, so the value stays 500
        after delete(all=True).
        """
        col = store.create_collection("seq", dim=2, id_type="int")
        assert col.last_id() == 0
        col.upsert([{"id": 7, "vector": [1, 0]}])
        assert col.last_id() == 7
        assert col.allocate_ids(2) == [8, 9]
        assert col.last_id() == 9 and col.last_id() == 9
        col.allocate_ids(0, after=500)
        assert col.last_id() == 500
        col.delete(all=True)
        assert col.last_id() == 500
        assert col.allocate_ids(1) == [501]
        text = store.create_collection("seq_text", dim=2)
        with pytest.raises(vs.InvalidInput, match="text ids"):
            text.last_id()


class _Boom(Exception):
    pass
