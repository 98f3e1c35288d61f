"""The sync facade."""

from __future__ import annotations

import asyncio
import threading

import pytest

import vectorstore as vs


def test_sync_api_works_inside_a_running_event_loop() -> None:
    """Notebooks and async apps already run a loop; the facade runs on its own thread."""

    async def main() -> int:
        store = vs.connect("memory://")
        col = store.create_collection("c", dim=2)
        col.upsert([{"id": "a", "vector": [1, 0]}])
        n = col.count()
        store.close()
        return n

    assert asyncio.run(main()) == 1


def test_transactions_are_per_thread() -> None:
    """A transaction open in one thread does not capture another thread's calls."""
    store = vs.connect("memory://")
    col = store.create_collection("c", dim=2)
    entered, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def rolled_back() -> None:
        try:
            with store.transaction():
                col.upsert([{"id": "in-tx", "vector": [1, 0]}])
                entered.set()
                release.wait(10)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    t = threading.Thread(target=rolled_back)
    t.start()
    assert entered.wait(10)
    writer = threading.Thread(target=lambda: col.upsert([{"id": "outside", "vector": [0, 1]}]))
    writer.start()
    release.set()
    t.join(10)
    writer.join(10)
    assert not errors
    assert [r.id for r in col.scan()] == ["outside"]
    store.close()


def test_async_and_sync_share_names() -> None:
    public = {n for n in dir(vs.AsyncCollection) if not n.startswith("_")}
    assert public <= {n for n in dir(vs.Collection) if not n.startswith("_")}
    public_store = {n for n in dir(vs.AsyncStore) if not n.startswith("_")} - {"aclose", "backend"}
    assert public_store <= {n for n in dir(vs.Store) if not n.startswith("_")}


def test_closed_store_rejects_calls() -> None:
    store = vs.connect("memory://")
    store.close()
    store.close()  # idempotent
    with pytest.raises(vs.VectorStoreError):
        store.list_collections()


def test_sync_run_transaction_retries_the_owned_transaction() -> None:
    store = vs.connect("memory://")
    col = store.create_collection("c", dim=2)
    calls: list[int] = []

    def work() -> int:
        calls.append(1)
        col.upsert([{"id": f"k{len(calls)}", "vector": [1, 0]}])
        if len(calls) < 2:
            raise vs.TransactionConflict("lost")
        return len(calls)

    assert store.run_transaction(work, base_delay=0.001) == 2
    assert [r.id for r in col.scan()] == ["k2"]
    calls.clear()
    with pytest.raises(vs.TransactionConflict), store.transaction():
        store.run_transaction(work)
    assert len(calls) == 1
    with pytest.raises(vs.InvalidInput):
        store.run_transaction(work, retries=-1)
    store.close()
