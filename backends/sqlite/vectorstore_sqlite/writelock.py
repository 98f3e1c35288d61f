"""Taking SQLite's write lock fairly between processes.

SQLite serialises writers with one lock, and a writer that finds it taken sleeps in SQLite's busy
handler for growing intervals (up to 100 ms). A process writing in a loop -- commit, then at once
``BEGIN IMMEDIATE`` again -- holds the lock almost all the time, and the sleepers wake into the
next transaction: other writers starved until their ``timeout`` (measured: 4 writers, one looping
on five-batch transactions, waited up to 4.4 s of the 5 s timeout in a 20 s run).

Two changes make the lock's turns fair enough:

- a waiting writer polls ``BEGIN IMMEDIATE`` itself every 1-8 ms (with jitter), not in SQLite's
  growing sleeps (the writer connection has no busy timeout of its own);
- a waiting writer says so: it holds a shared POSIX lock on the file ``<db>-vslock`` while it
  waits. A process that has just committed and finds such a waiter lets one turn pass (a few
  milliseconds) before it takes the lock again.

The ``-vslock`` file holds nothing; it may be deleted while no process has the store open.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: Polling of a waiting writer: the first delay, doubling to at most the second (seconds).
FIRST_POLL, MAX_POLL = 0.001, 0.008
#: A process that released the lock this recently (seconds) lets a waiting process go first...
COURTESY = 0.05
#: ...by waiting this long before taking it again (a few polls of the waiter).
TURN = 0.02


class WriteTurns:
    """One per store: ``begin`` takes the write lock, ``released`` is called after COMMIT or
    ROLLBACK."""

    def __init__(self, db_path: Path, timeout: float) -> None:
        self.marker = db_path.with_name(db_path.name + "-vslock")
        self.timeout = timeout
        self._fd: int | None = None
        self._released_at = -1.0

    def _file(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.marker, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return None  # (a read-only directory: no marker, polling alone)
        return self._fd

    def _waiting(self, on: bool) -> None:
        fd = self._file()
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.lockf(fd, (fcntl.LOCK_SH | fcntl.LOCK_NB) if on else fcntl.LOCK_UN)

    def _others_waiting(self) -> bool:
        fd = self._file()
        if fd is None:
            return False
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True  # another process holds the shared "waiting" lock
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False

    async def begin(self, execute: Callable[[str], Awaitable[T]], busy: Callable[[BaseException], bool],
                    statement: str = "BEGIN IMMEDIATE") -> T:
        """``statement`` (the write lock's ``BEGIN IMMEDIATE``, or another that needs it) through
        ``execute``, polling while ``busy(error)`` says the lock is taken, until ``timeout``; then
        the last busy error propagates. Returns what ``execute`` returned."""
        if time.monotonic() - self._released_at < COURTESY and self._others_waiting():
            await asyncio.sleep(TURN * random.uniform(0.75, 1.25))
        deadline = time.monotonic() + self.timeout
        delay, marked = FIRST_POLL, False
        try:
            while True:
                try:
                    return await execute(statement)
                except Exception as exc:
                    if not busy(exc) or time.monotonic() >= deadline:
                        raise
                if not marked:
                    self._waiting(True)
                    marked = True
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())) * random.uniform(0.5, 1.0))
                delay = min(delay * 2, MAX_POLL)
        finally:
            if marked:
                self._waiting(False)

    def released(self) -> None:
        self._released_at = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
