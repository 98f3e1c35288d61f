"""Shared helpers of :mod:`vectorstore.media`: argument checks, clocks, retries, per-key locks."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import numbers
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

from vectorstore.errors import InvalidRecord
from vectorstore.media.errors import InvalidMediaInput
from vectorstore.records import INT64_MAX, INT64_MIN, check_id, coerce_timestamp
from vectorstore.schema import IdType
from vectorstore.store import AsyncStore

T = TypeVar("T")

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_number(value: object, name: str, low: float | None = None, high: float | None = None,
                 *, low_open: bool = False) -> float:
    """A finite real number within ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise InvalidMediaInput(f"{name} must be a finite number, got {value!r}")
    x = float(value)
    if (low is not None and (x <= low if low_open else x < low)) or (high is not None and x > high):
        lo = "(" if low_open else "["
        raise InvalidMediaInput(f"{name} must be in {lo}{low}, {high}], got {value!r}")
    return x


def check_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not INT64_MIN <= int(value) <= INT64_MAX:
        raise InvalidMediaInput(f"{name} must be a 64-bit integer, got {value!r}")
    return int(value)


def check_ints(values: object, name: str) -> tuple[int, ...]:
    """A list of ints (duplicates dropped, order kept)."""
    if values is None:
        return ()
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidMediaInput(f"{name} must be a list of integers, got {values!r}")
    return tuple(dict.fromkeys(check_int(v, f"{name}[{i}]") for i, v in enumerate(values)))


def check_text_id(value: object, name: str) -> str:
    """A non-empty text id (1-512 characters, no NUL); ints are accepted and turned into text."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = str(int(value))
    try:
        return str(check_id(value, IdType.TEXT, name))
    except InvalidRecord as exc:
        raise InvalidMediaInput(str(exc)) from None


def check_timestamp(value: object, name: str) -> dt.datetime:
    try:
        return coerce_timestamp(value, name)
    except InvalidRecord as exc:
        raise InvalidMediaInput(str(exc)) from None


async def run_serializable(store: AsyncStore, step: Callable[[], Awaitable[T]], *, max_retries: int,
                           base_delay: float) -> tuple[T, int]:
    """Run ``step`` in a serializable transaction with :meth:`AsyncStore.run_transaction`'s retries
    (only when this call owns the transaction); returns the result and the number of attempts."""
    attempts = 0

    async def counted() -> T:
        nonlocal attempts
        attempts += 1
        return await step()

    result = await store.run_transaction(counted, retries=max_retries, base_delay=base_delay)
    return result, attempts


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it.

    Only an optimisation: it queues same-process writers of one key so that they do not lose
    serializable races to each other. The wait is bounded (``timeout``) and then the caller goes
    on without the lock, so a caller that already holds a store transaction can never deadlock
    on it; correctness comes from the serializable transaction, not from this lock."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str, timeout: float = 1.0) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        acquired = False
        try:
            try:
                acquired = await asyncio.wait_for(lock.acquire(), timeout)
            except TimeoutError:
                acquired = False
            yield
        finally:
            if acquired:
                lock.release()
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


_store_locks: weakref.WeakKeyDictionary[AsyncStore, KeyedLocks] = weakref.WeakKeyDictionary()


def store_locks(store: AsyncStore) -> KeyedLocks:
    """The per-key locks shared by every media object on ``store`` (in this process)."""
    locks = _store_locks.get(store)
    if locks is None:
        locks = _store_locks[store] = KeyedLocks()
    return locks
