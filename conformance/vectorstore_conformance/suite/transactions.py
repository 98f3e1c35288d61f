"""Transactions: all or nothing, across collections; nested savepoints; capability both ways."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import vectorstore as vs
from vectorstore_conformance.guard import requires


class Boom(Exception):
    pass


class TransactionConformance:
    def test_commit_across_collections(self, store: vs.Store) -> None:
        """Writes to two collections inside a transaction (upserts and a delete) are all visible after it commits,
        and a read inside the block sees the block's own writes.

        Troubleshooting: every operation inside the block, reads included, must use the transaction's connection
        (found through a context variable set by transaction()), and the outermost block commits once at its end; a
        wrong count inside means reads went to another (pooled) connection, which cannot see the uncommitted writes.
        """
        requires(store, "transactions")
        a = store.create_collection("a", dim=2)
        b = store.create_collection("b", dim=2)
        a.upsert([{"id": "gone", "vector": [1, 1]}])
        with store.transaction():
            a.upsert([{"id": "x", "vector": [1, 0]}])
            b.upsert([{"id": "y", "vector": [0, 1]}])
            a.delete(["gone"])
            assert a.count() == 1  # reads inside see the transaction's own writes
        assert [r.id for r in a.scan()] == ["x"]
        assert [r.id for r in b.scan()] == ["y"]

    def test_rollback_on_exception_across_collections(self, store: vs.Store) -> None:
        """An exception inside the transaction undoes every write in it, in every collection, and propagates.

        Troubleshooting: every operation inside must run on the transaction's connection (a context
        variable), not on a fresh pooled one.
        """
        requires(store, "transactions")
        a = store.create_collection("a", dim=2, fields={"n": "int"})
        b = store.create_collection("b", dim=2)
        a.upsert([{"id": "keep", "vector": [1, 1], "fields": {"n": 1}}])
        with pytest.raises(Boom), store.transaction():
            a.upsert([{"id": "x", "vector": [1, 0]}, {"id": "keep", "vector": [0, 1], "fields": {"n": 2}}])
            b.upsert([{"id": "y", "vector": [0, 1]}])
            a.delete(where={"n": 1})
            raise Boom
        assert [(r.id, r.fields["n"], r.vector.tolist()) for r in a.scan()] == [("keep", 1, [1.0, 1.0])]
        assert b.count() == 0

    def test_a_failed_write_inside_rolls_back_the_transaction(self, store: vs.Store) -> None:
        """A DuplicateId raised inside a transaction and not caught undoes the earlier writes.

        Troubleshooting: raise DuplicateId itself (not the driver's unique violation) from an insert inside a
        transaction, run that insert in a savepoint so its failure leaves the transaction usable (PostgreSQL aborts
        the whole transaction on an error otherwise), and roll the whole transaction back when the exception leaves
        the block: the earlier upsert of 'y' must not be committed.
        """
        requires(store, "transactions")
        a = store.create_collection("a", dim=2)
        a.insert([{"id": "x", "vector": [1, 0]}])
        with pytest.raises(vs.DuplicateId), store.transaction():
            a.upsert([{"id": "y", "vector": [0, 1]}])
            a.insert([{"id": "x", "vector": [1, 1]}])
        assert [r.id for r in a.scan()] == ["x"]

    def test_collection_created_in_a_rolled_back_transaction_disappears(self, store: vs.Store) -> None:
        """A collection created, and written to, inside a transaction that raises is gone afterwards:
        list_collections() is empty.

        Troubleshooting: create_collection must write the catalog row and create the table on the transaction's
        connection, so the rollback undoes both (DDL is transactional in SQLite and PostgreSQL); never create it on
        a separate autocommit connection, and read list_collections() from the catalog, not from an in-process cache
        the rollback does not undo.
        """
        requires(store, "transactions")
        with pytest.raises(Boom), store.transaction():
            c = store.create_collection("temp", dim=2)
            c.upsert([{"id": "x", "vector": [1, 0]}])
            raise Boom
        assert store.list_collections() == []

    def test_nested_transaction_is_a_savepoint(self, store: vs.Store) -> None:
        """An inner transaction that fails rolls back only its own writes; the outer one commits.

        Troubleshooting: a nested transaction() must open a SAVEPOINT on the outer transaction's connection and, on
        an exception, ROLLBACK TO and RELEASE it, leaving the outer transaction open and usable; it must not commit,
        begin a new transaction or take another connection (which deadlocks on a single-writer backend). Give each
        nesting level its own savepoint name.
        """
        requires(store, "transactions")
        a = store.create_collection("a", dim=2)
        with store.transaction():
            a.upsert([{"id": "outer", "vector": [1, 0]}])
            with pytest.raises(Boom), store.transaction():
                a.upsert([{"id": "inner", "vector": [0, 1]}])
                raise Boom
            a.upsert([{"id": "after", "vector": [1, 1]}])
        assert [r.id for r in a.scan()] == ["after", "outer"]

    def test_uncommitted_writes_are_invisible_outside_the_transaction(self, store: vs.Store) -> None:
        """While a transaction is open in one thread, other threads see only committed data
        (no dirty reads); after it commits they see everything it wrote.

        Troubleshooting: reads outside a transaction must not use the transaction's connection.
        """
        requires(store, "transactions")
        col = store.create_collection("iso", dim=2)
        col.upsert([{"id": "before", "vector": [1, 0]}])
        inside, release = threading.Event(), threading.Event()
        failures: list[BaseException] = []

        def writer() -> None:
            try:
                with store.transaction():
                    col.upsert([{"id": "during", "vector": [0, 1]}])
                    col.delete(["before"])
                    inside.set()
                    if not release.wait(30):
                        raise TimeoutError("the reader never finished")
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            assert inside.wait(30)
            assert [r.id for r in col.scan()] == ["before"]
            assert col.count() == 1
            assert [h.id for h in col.search([0, 1], k=5)] == ["before"]
            assert col.get(["during"]) == []
        finally:
            release.set()
            thread.join(30)
        assert not failures
        assert [r.id for r in col.scan()] == ["during"]

    def test_serializable_read_modify_write_loses_no_update(self, store: vs.Store) -> None:
        """Concurrent read-modify-write transactions with serializable=True, retried on
        TransactionConflict, lose no increment.

        Troubleshooting: run the outermost transaction at SERIALIZABLE isolation and map the
        server's serialization failures and deadlocks (also at COMMIT) to TransactionConflict.
        """
        requires(store, "transactions")
        col = store.create_collection("counter", dim=2, fields={"n": "int"})
        col.upsert([{"id": "c", "vector": [1, 0], "fields": {"n": 0}}])
        conflicts: list[int] = []

        def increment(_: int) -> None:
            for attempt in range(50):
                try:
                    with store.transaction(serializable=True):
                        (rec,) = col.get(["c"])
                        col.upsert([{"id": "c", "vector": [1, 0], "fields": {"n": rec.fields["n"] + 1}}])
                    return
                except vs.TransactionConflict:
                    conflicts.append(attempt)
                    time.sleep(0.005 * (attempt + 1))
            raise AssertionError("50 conflicts in a row")

        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(increment, range(24)))
        assert col.get(["c"])[0].fields["n"] == 24

    def test_run_transaction_retries_only_the_transaction_it_owns(self, store: vs.Store) -> None:
        """store.in_transaction tells whether the caller is inside a transaction; run_transaction
        retries work that lost a race (TransactionConflict) when it owns the transaction, rolling
        back each failed attempt, and lets a conflict propagate at once when nested.

        Troubleshooting: the retry logic is the core's. The backend's part: in_transaction() is True inside
        transaction() for the calling task only and False again after the block, also after an exception (reset the
        context variable in a finally); the whole transaction rolls back when TransactionConflict leaves the block;
        and a TransactionConflict raised inside a nested savepoint propagates unchanged to the outer block.
        """
        requires(store, "transactions")
        col = store.create_collection("rt", dim=2)
        inner = store.async_store
        assert store.in_transaction is False
        with store.transaction():
            assert store.in_transaction is True
        assert store.in_transaction is False
        attempts: list[int] = []

        async def flaky() -> str:
            attempts.append(len(attempts))
            target = await inner.collection("rt")
            await target.upsert([{"id": f"try{len(attempts)}", "vector": [1, 0]}])
            if len(attempts) < 3:
                raise vs.TransactionConflict("simulated lost race")
            return "done"

        assert store.run(inner.run_transaction(flaky, retries=3, base_delay=0.001)) == "done"
        assert attempts == [0, 1, 2]
        assert [r.id for r in col.scan()] == ["try3"]  # the failed attempts were rolled back
        attempts.clear()
        with pytest.raises(vs.TransactionConflict), store.transaction():
            store.run(inner.run_transaction(flaky, retries=3, base_delay=0.001))
        assert attempts == [0]  # nested: no retry, the owner decides
        assert [r.id for r in col.scan()] == ["try3"]
        attempts.clear()
        with pytest.raises(vs.TransactionConflict):
            store.run(inner.run_transaction(flaky, retries=1, base_delay=0.001))
        assert attempts == [0, 1]
