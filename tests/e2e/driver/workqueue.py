"""client-go's rate-limited work queue, in small: deduplicated keys, one worker per key at a
time, delayed adds that keep the earliest due time, per-key exponential backoff."""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque

BASE_DELAY = 0.005  # client-go DefaultControllerRateLimiter: 5ms * 2^failures ...
MAX_DELAY = 1000.0  # ... capped at 1000s


class WorkQueue:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._waiting: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._failures: dict[str, int] = {}
        self._shutdown = False

    def add(self, key: str) -> None:
        with self._cond:
            self._add(key)

    def _add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay
        with self._cond:
            if self._waiting.get(key, float("inf")) <= due:
                return
            self._waiting[key] = due
            heapq.heappush(self._heap, (due, key))
            self._cond.notify_all()

    def add_rate_limited(self, key: str) -> float:
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay: float = min(BASE_DELAY * 2.0**failures, MAX_DELAY)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def get(self) -> str | None:
        """The next key to process (None once shut down); call done(key) afterwards."""
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due, key = heapq.heappop(self._heap)
                    if self._waiting.get(key) == due:
                        del self._waiting[key]
                        self._add(key)
                if self._shutdown:
                    return None
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                timeout = self._heap[0][0] - now if self._heap else None
                self._cond.wait(timeout)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()
