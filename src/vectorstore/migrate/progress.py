"""Progress of a migration: a rich progress bar per table (rows/s, ETA) on a terminal, plain log
lines otherwise (one every few seconds and one at the end of each table)."""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Protocol


class Progress(Protocol):
    def start(self, name: str, total: int, done: int = 0) -> None: ...

    def advance(self, rows: int) -> None: ...

    def finish(self) -> None: ...

    def log(self, message: str) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def start(self, name: str, total: int, done: int = 0) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass

    def finish(self) -> None:
        pass

    def log(self, message: str) -> None:
        self.messages.append(message)

    def close(self) -> None:
        pass


def _eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PlainProgress:
    """Log lines: ``episodes: 5000/100000 rows (5.0%), 3200 rows/s, ETA 0:00:29``."""

    def __init__(self, stream: IO[str] | None = None, every: float = 2.0) -> None:
        self.stream = stream or sys.stdout
        self.every = every
        self._name = ""
        self._total = self._done = self._started_at = 0
        self._t0 = self._last = 0.0

    def _line(self, final: bool = False) -> None:
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        rate = (self._done - self._started_at) / elapsed
        pct = 100.0 * self._done / self._total if self._total else 100.0
        eta = (self._total - self._done) / rate if rate > 0 else float("inf")
        tail = f"done in {elapsed:.1f}s" if final else f"ETA {_eta(eta)}"
        print(f"{self._name}: {self._done}/{self._total} rows ({pct:.1f}%), {rate:.0f} rows/s, {tail}",
              file=self.stream, flush=True)

    def start(self, name: str, total: int, done: int = 0) -> None:
        self._name, self._total, self._done, self._started_at = name, total, done, done
        self._t0 = self._last = time.perf_counter()

    def advance(self, rows: int) -> None:
        self._done += rows
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            self._line()

    def finish(self) -> None:
        self._line(final=True)

    def log(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    """One rich progress bar per table: rows done / total, rows/s, elapsed, ETA."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichBar

        self.console = console
        self.bar = RichBar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TaskProgressColumn(), TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn(),
                           TextColumn("ETA"), TimeRemainingColumn(), console=console)
        self.bar.start()
        self._task: Any = None
        self._t0 = 0.0
        self._base = 0

    def start(self, name: str, total: int, done: int = 0) -> None:
        self._task = self.bar.add_task(name, total=max(total, 1), completed=done, rate="0")
        self._t0 = time.perf_counter()
        self._base = done

    def advance(self, rows: int) -> None:
        task = self.bar.tasks[-1]
        done = task.completed + rows
        rate = (done - self._base) / max(time.perf_counter() - self._t0, 1e-9)
        self.bar.update(self._task, completed=done, rate=f"{rate:,.0f}")

    def finish(self) -> None:
        task = self.bar.tasks[-1]
        self.bar.update(self._task, completed=max(task.completed, task.total or 0))

    def log(self, message: str) -> None:
        self.bar.console.print(message, markup=False, highlight=False)

    def close(self) -> None:
        self.bar.stop()
