"""When each mirror is next due: a heap with one live entry per mirror. Thread-safe.

`put` replaces a mirror's time (earlier or later); replaced entries stay in the heap and are
skipped when popped (lazy deletion), so every operation is O(log n).
"""

from __future__ import annotations

import heapq
import itertools
import threading
from datetime import datetime


class Schedule:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, str]] = []
        self._due: dict[str, tuple[datetime, int]] = {}
        self._counter = itertools.count()
        self._cond = threading.Condition()

    def put(self, name: str, at: datetime, *, only_earlier: bool = False) -> None:
        """Set `name` due at `at`; with `only_earlier`, keep an existing earlier time."""
        with self._cond:
            current = self._due.get(name)
            if only_earlier and current is not None and current[0] <= at:
                return
            entry = (at, next(self._counter), name)
            self._due[name] = (at, entry[1])
            heapq.heappush(self._heap, entry)
            self._cond.notify_all()

    def discard(self, name: str) -> None:
        with self._cond:
            self._due.pop(name, None)

    def due_at(self, name: str) -> datetime | None:
        with self._cond:
            current = self._due.get(name)
            return current[0] if current else None

    def __len__(self) -> int:
        with self._cond:
            return len(self._due)

    def _clean(self) -> None:
        while self._heap:
            at, seq, name = self._heap[0]
            if self._due.get(name) == (at, seq):
                return
            heapq.heappop(self._heap)

    def pop_due(self, now: datetime) -> list[str]:
        """Remove and return every mirror due at or before `now`, earliest first."""
        out: list[str] = []
        with self._cond:
            self._clean()
            while self._heap and self._heap[0][0] <= now:
                _, _, name = heapq.heappop(self._heap)
                del self._due[name]
                out.append(name)
                self._clean()
        return out

    def next_time(self) -> datetime | None:
        with self._cond:
            self._clean()
            return self._heap[0][0] if self._heap else None

    def wait(self, timeout: float) -> None:
        """Sleep up to `timeout` seconds, waking early when anything is put."""
        with self._cond:
            self._cond.wait(timeout)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
