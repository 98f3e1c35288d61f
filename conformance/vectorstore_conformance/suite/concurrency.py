"""Concurrency: many writers and readers at once lose nothing.

Calls come from many threads through the sync facade; they all run as
concurrent coroutines on the store's one backend, and each thread has its own
transaction context.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import vectorstore as vs
from vectorstore_conformance.guard import requires


class ConcurrencyConformance:
    def test_concurrent_writers_and_readers(self, store: vs.Store) -> None:
        """30 concurrent writers (20 records each, one upsert) and 30 concurrent readers: every record arrives and
        no call fails; no reader sees part of a batch (every count is a multiple of 20) and each reader's filtered
        search returns only matching records, nearest first, each id belonging to its record's writer. Afterwards a
        filtered search returns its k hits.

        Troubleshooting: "database is locked" means writes are not serialised (SQLite); a pool timeout means
        connections leak (PostgreSQL); a count that is not a multiple of 20 means a batch is not written in one
        transaction.
        """
        col = store.create_collection("conc", dim=8, fields={"w": "int"})
        rng = np.random.default_rng(0)
        vecs = rng.normal(size=(30, 20, 8)).astype(np.float32) + 0.1
        query = np.ones(8, dtype=np.float32)

        def writer(w: int) -> None:
            col.upsert([{"id": f"w{w:02d}-{i:02d}", "vector": vecs[w, i], "fields": {"w": w}} for i in range(20)])

        def reader(r: int) -> tuple[int, int]:
            hits = col.search(query, k=5, where={"w": {"$lt": r}})
            total = col.count()
            assert total % 20 == 0, f"a reader saw {total} records: part of a 20-record batch"
            assert all(h.fields["w"] < r for h in hits), [h.fields for h in hits]
            assert [h.distance for h in hits] == sorted(h.distance for h in hits)
            assert all(str(h.id).startswith(f"w{h.fields['w']:02d}-") for h in hits)
            return len(hits), total

        with ThreadPoolExecutor(max_workers=16) as pool:
            writes = [pool.submit(writer, w) for w in range(30)]
            reads = [pool.submit(reader, r) for r in range(30)]
            for f in writes:
                f.result()
            seen = [f.result() for f in reads]
        assert col.count() == 600
        assert {r.id for r in col.scan(batch_size=97)} == {f"w{w:02d}-{i:02d}" for w in range(30) for i in range(20)}
        assert len(seen) == 30
        final = col.search(query, k=5, where={"w": {"$lt": 29}})
        assert len(final) == 5 and all(h.fields["w"] < 29 for h in final)

    def test_concurrent_transactions_do_not_interleave(self, store: vs.Store) -> None:
        """Concurrent transactions (one per thread, each writing a pair of records in two calls):
        those that fail leave nothing, those that commit leave both records, and no reader, inside
        another transaction or outside any, ever sees half of a pair or a pair that was rolled back.

        Troubleshooting: operations inside a transaction must use its connection (a context variable),
        and reads outside one must not; commit must publish all of a transaction's writes at once.
        """
        requires(store, "transactions")
        col = store.create_collection("tx", dim=2)
        violations: list[str] = []
        stop = threading.Event()

        def check(ids: set[str], own: int | None, where: str) -> None:
            for i in range(16):
                a, b = f"t{i:02d}a" in ids, f"t{i:02d}b" in ids
                if i == own:
                    continue
                if a != b:
                    violations.append(f"{where} saw half of pair {i}: {sorted(ids)}")
                if a and i % 2:
                    violations.append(f"{where} saw pair {i}, which rolls back")

        def work(i: int) -> None:
            try:
                with store.transaction():
                    col.upsert([{"id": f"t{i:02d}a", "vector": [1, i]}])
                    inside = {str(r.id) for r in col.scan()}
                    if f"t{i:02d}a" not in inside:
                        violations.append(f"transaction {i} does not see its own write")
                    check(inside, i, f"transaction {i}")
                    col.upsert([{"id": f"t{i:02d}b", "vector": [i, 1]}])
                    if i % 2:
                        raise RuntimeError("fail odd")
            except RuntimeError:
                pass

        def watch() -> int:
            scans = 0
            while not stop.is_set() or scans == 0:
                check({str(r.id) for r in col.scan(batch_size=7)}, None, "a reader outside transactions")
                scans += 1
            return scans

        with ThreadPoolExecutor(max_workers=10) as pool:
            watchers = [pool.submit(watch) for _ in range(2)]
            for f in [pool.submit(work, i) for i in range(16)]:
                f.result()
            stop.set()
            scans = [f.result() for f in watchers]
        assert not violations, violations[:5]
        assert min(scans) >= 1
        assert sorted(str(r.id) for r in col.scan()) == sorted(f"t{i:02d}{s}" for i in range(0, 16, 2) for s in "ab")
