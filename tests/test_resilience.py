"""The cross-cutting layer's policy (vectorstore.resilience): deadlines, retries, the circuit
breaker, what is and is not run again. A backend that fails on demand (the memory reference with
faults injected at its SPI) drives it; the fault tests against real servers and networks are in
tests/faults/."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

import vectorstore as vs
from vectorstore.instruments import Instruments
from vectorstore.resilience import BreakerState, Policy, ResilientBackend
from vectorstore.store import AsyncStore
from vectorstore_memory.backend import MemoryBackend


class Faulty(MemoryBackend):
    """The memory backend, with a queue of faults: each SPI call listed in ``plan`` pops its next
    fault (an exception to raise, or seconds to hang) before running."""

    def __init__(self) -> None:
        super().__init__()
        self.plan: dict[str, list[Any]] = {}
        self.calls: dict[str, int] = {}

    async def _fault(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        queue = self.plan.get(name)
        if queue:
            fault = queue.pop(0)
            if isinstance(fault, (int, float)):
                await asyncio.sleep(fault)
            else:
                raise fault

    async def count(self, spec: Any, where: Any) -> int:
        await self._fault("count")
        return await super().count(spec, where)

    async def upsert(self, spec: Any, batch: Any) -> None:
        await self._fault("upsert")
        await super().upsert(spec, batch)

    async def insert(self, spec: Any, batch: Any) -> None:
        await self._fault("insert")
        await super().insert(spec, batch)


def down() -> vs.BackendUnavailable:
    return vs.BackendUnavailable("injected: the server is down")


def lost() -> vs.OutcomeUnknown:
    return vs.OutcomeUnknown("injected: the acknowledgement was lost", "write")


async def open_faulty(**policy: Any) -> tuple[AsyncStore, Faulty, vs.AsyncCollection]:
    backend = Faulty()
    settings = {"retry_backoff": 0.001, "retry_backoff_max": 0.002, **policy}
    store = AsyncStore(ResilientBackend(backend, Policy(**settings), Instruments()), url="faulty://")
    col = await store.create_collection("c", dim=2)
    await col.upsert([{"id": "a", "vector": [1, 0]}])
    backend.calls.clear()
    return store, backend, col


def test_a_transient_failure_is_retried_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        store, backend, col = await open_faulty(retries=2)
        backend.plan["count"] = [down(), down()]
        with caplog.at_level(logging.WARNING, logger="vectorstore"):
            assert await col.count() == 1
        assert backend.calls["count"] == 3
        retries = [r for r in caplog.records if getattr(r, "vs_event", None) == "retry"]
        assert [(r.vs_operation, r.vs_collection, r.vs_error, r.vs_attempt) for r in retries] == [  # type: ignore[attr-defined]
            ("count", "c", "BackendUnavailable", 1), ("count", "c", "BackendUnavailable", 2)]
        backend.plan["count"] = [down(), down(), down()]
        with pytest.raises(vs.BackendUnavailable):
            await col.count()
        assert backend.calls["count"] == 6
        await store.aclose()

    asyncio.run(go())


def test_an_unknown_outcome_is_retried_only_for_idempotent_writes() -> None:
    """An upsert whose acknowledgement was lost is run again (the same state either way); an insert
    never is: the caller gets OutcomeUnknown and decides."""

    async def go() -> None:
        store, backend, col = await open_faulty(retries=2)
        backend.plan["upsert"] = [lost()]
        assert await col.upsert([{"id": "b", "vector": [0, 1]}]) == ["b"]
        assert backend.calls["upsert"] == 2 and await col.count() == 2
        backend.plan["insert"] = [lost()]
        with pytest.raises(vs.OutcomeUnknown) as info:
            await col.insert([{"id": "c", "vector": [1, 1]}])
        assert backend.calls["insert"] == 1 and info.value.operation == "write"
        assert not isinstance(info.value, vs.BackendUnavailable)  # (an app retrying on that would double it)
        # A transient failure of an insert did not take effect: it is run again.
        backend.plan["insert"] = [down()]
        assert await col.insert([{"id": "d", "vector": [1, 1]}]) == ["d"]
        await store.aclose()

    asyncio.run(go())


def test_nothing_inside_a_transaction_is_retried() -> None:
    async def go() -> None:
        store, backend, col = await open_faulty(retries=3)
        backend.plan["count"] = [down()]
        with pytest.raises(vs.BackendUnavailable):
            async with store.transaction():
                await col.count()
        assert backend.calls["count"] == 1
        await store.aclose()

    asyncio.run(go())


def test_a_call_past_its_deadline_is_abandoned() -> None:
    """The deadline bounds the whole call, retries included: a read that hangs ends at the deadline
    with DeadlineExceeded, and the caller is not held while the backend cleans up; a write that
    hangs may have been sent: OutcomeUnknown for an insert. Large writes get one deadline per 1,000
    records."""

    async def go() -> None:
        store, backend, col = await open_faulty(deadline=0.2, retries=3)
        backend.plan["count"] = [5.0]
        start = time.monotonic()
        with pytest.raises(vs.DeadlineExceeded, match="within its deadline"):
            await col.count()
        assert 0.15 < time.monotonic() - start < 0.6
        assert backend.calls["count"] == 1  # (no time was left for another attempt)
        backend.plan["count"] = [down()]
        assert await col.count() == 1  # a transient failure, retried within the deadline
        backend.plan["insert"] = [5.0]
        with pytest.raises(vs.OutcomeUnknown, match="may or may not have been written"):
            await col.insert([{"id": "x", "vector": [1, 1]}])
        assert store.layer.policy.deadline_for(2500) == pytest.approx(0.6)
        await store.aclose()

    asyncio.run(go())


def test_the_circuit_opens_fails_fast_and_closes_after_a_probe() -> None:
    async def go() -> None:
        store, backend, col = await open_faulty(retries=0, breaker_failures=3, breaker_reset=0.3)
        backend.plan["count"] = [down(), down(), down()]
        for _ in range(3):
            with pytest.raises(vs.BackendUnavailable):
                await col.count()
        assert store.layer.breaker.state is BreakerState.OPEN
        with pytest.raises(vs.CircuitOpen, match="fail at once"):
            await col.count()
        assert backend.calls["count"] == 3  # refused without reaching the backend
        health = await store.health()
        assert health.details["breaker"] == "open"
        await asyncio.sleep(0.35)
        # Half-open: one probe; it fails, and the circuit opens again at once.
        backend.plan["count"] = [down()]
        with pytest.raises(vs.BackendUnavailable):
            await col.count()
        assert store.layer.breaker.state is BreakerState.OPEN
        await asyncio.sleep(0.35)
        assert await col.count() == 1  # the probe succeeds: closed
        assert store.layer.breaker.state is BreakerState.CLOSED
        assert (await store.health()).details["breaker"] == "closed"
        doctor = {c.name: c for c in await store.doctor()}
        assert "retries 0" in doctor["resilience"].detail and doctor["circuit breaker"].ok is True
        await store.aclose()

    asyncio.run(go())


def test_a_healthy_health_check_closes_the_circuit_after_its_reset_time() -> None:
    """With no application call to probe it, the circuit must not stay open on a database that
    answers: a health check that succeeds once the reset time has passed closes it (before that,
    the circuit stays open: calls keep failing fast)."""
    async def go() -> None:
        store, backend, col = await open_faulty(retries=0, breaker_failures=2, breaker_reset=0.3)
        backend.plan["count"] = [down(), down()]
        for _ in range(2):
            with pytest.raises(vs.BackendUnavailable):
                await col.count()
        assert (await store.health()).details["breaker"] == "open"  # (too soon)
        await asyncio.sleep(0.35)
        health = await store.health()
        assert health.ok and health.details["breaker"] == "closed"
        assert store.layer.breaker.state is BreakerState.CLOSED and store.layer.breaker.failures == 0
        assert backend.calls["count"] == 2  # closed without a call probing it
        assert await col.count() == 1
        await store.aclose()

    asyncio.run(go())


def test_a_health_check_that_gets_no_answer_ends_at_the_deadline() -> None:
    async def go() -> None:
        store, backend, _ = await open_faulty(deadline=0.2)

        async def hang() -> vs.Health:
            await asyncio.sleep(5)
            raise AssertionError("not reached")

        backend.health = hang  # type: ignore[method-assign]
        start = time.monotonic()
        health = await store.health()
        assert time.monotonic() - start < 1.0
        assert not health.ok and "no answer within the deadline" in health.details["error"]
        await store.aclose()

    asyncio.run(go())


def test_bad_input_and_conflicts_are_not_retried_and_do_not_open_the_circuit() -> None:
    async def go() -> None:
        store, backend, col = await open_faulty(retries=3, breaker_failures=1)
        backend.plan["count"] = [vs.TransactionConflict("injected")]
        with pytest.raises(vs.TransactionConflict):
            await col.count()
        assert backend.calls["count"] == 1 and store.layer.breaker.state is BreakerState.CLOSED
        await store.aclose()

    asyncio.run(go())


def test_the_policy_comes_from_url_options() -> None:
    store = vs.connect("memory://?deadline=2s&retries=0&retry_backoff=10ms&breaker_failures=0&slow_call=0")
    policy = store.layer.policy
    assert (policy.deadline, policy.retries, policy.retry_backoff, policy.breaker_failures, policy.slow_call) == (
        2.0, 0, 0.01, 0, None)
    store.close()
    auto = vs.connect("memory://")
    assert auto.layer.policy.deadline is None and auto.layer.policy.retries == 2  # memory gives no hint
    auto.close()
    with pytest.raises(vs.ConfigError, match="retries"):
        vs.connect("memory://?retries=-1")
    with pytest.raises(vs.ConfigError, match="retry_backoff_max"):
        vs.connect("memory://?retry_backoff=2s&retry_backoff_max=1s")
