"""Concurrency: many writers and readers at once lose nothing.

Calls come from many threads through the sync facade; they all run as
concurrent coroutines on the store's one backend, and each thread has its own
transaction context.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

import vectorstore as vs


class ConcurrencyConformance:
    def test_concurrent_writers_and_readers(self, store: vs.Store) -> None:
        """30 concurrent writers (20 records each) and 30 concurrent readers: every record arrives,
        no call fails.

        Troubleshooting: "database is locked" means writes are not serialised (SQLite); a pool timeout
        means connections leak (PostgreSQL).
        """
        col = store.create_collection("conc", dim=8, fields={"w": "int"})
        rng = np.random.default_rng(0)
        vecs = rng.normal(size=(30, 20, 8)).astype(np.float32) + 0.1

        def writer(w: int) -> None:
            col.upsert([{"id": f"w{w:02d}-{i:02d}", "vector": vecs[w, i], "fields": {"w": w}} for i in range(20)])

        def reader(r: int) -> None:
            col.search(np.ones(8, dtype=np.float32), k=5, where={"w": {"$lt": r}})
            col.count()

        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = [pool.submit(writer, w) for w in range(30)] + [pool.submit(reader, r) for r in range(30)]
            for f in futures:
                f.result()
        assert col.count() == 600
        assert {r.id for r in col.scan(batch_size=97)} == {f"w{w:02d}-{i:02d}" for w in range(30) for i in range(20)}

    def test_concurrent_transactions_do_not_interleave(self, store: vs.Store) -> None:
        """Concurrent transactions (one per thread): those that fail leave nothing, those that commit
        leave all their writes, and none sees another's half-done work."""
        if not store.capabilities.transactions:
            return
        col = store.create_collection("tx", dim=2)

        def work(i: int) -> None:
            try:
                with store.transaction():
                    col.upsert([{"id": f"t{i:02d}a", "vector": [1, i]}])
                    col.upsert([{"id": f"t{i:02d}b", "vector": [i, 1]}])
                    if i % 2:
                        raise RuntimeError("fail odd")
            except RuntimeError:
                pass

        with ThreadPoolExecutor(max_workers=8) as pool:
            for f in [pool.submit(work, i) for i in range(16)]:
                f.result()
        assert sorted(str(r.id) for r in col.scan()) == sorted(f"t{i:02d}{s}" for i in range(0, 16, 2) for s in "ab")
