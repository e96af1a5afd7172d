"""What a local engine is doing: tokens produced and generations running (for Stop and for tests)."""

from __future__ import annotations

import threading
from typing import Any


class EngineStats:
    """Counters an engine updates from whatever thread generates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tokens_generated = 0
        self.running = 0

    def begin(self) -> None:
        with self._lock:
            self.running += 1

    def token(self) -> None:
        with self._lock:
            self.tokens_generated += 1

    def end(self) -> None:
        with self._lock:
            self.running -= 1


class SharedCounters:
    """The two counters in shared memory, so the app reads a worker process's counts directly.

    Made in the app before the worker starts and passed to it; only the worker writes.
    """

    def __init__(self, context: Any) -> None:
        self.tokens = context.RawValue("q", 0)
        self.running = context.RawValue("i", 0)

    def stats(self) -> EngineStats:
        """The worker's side: an EngineStats that writes these counters."""
        return _SharedStats(self)


class _SharedStats(EngineStats):
    def __init__(self, counters: SharedCounters) -> None:
        self._counters = counters
        super().__init__()

    @property  # type: ignore[override]
    def tokens_generated(self) -> int:
        return int(self._counters.tokens.value)

    @tokens_generated.setter
    def tokens_generated(self, value: int) -> None:
        self._counters.tokens.value = value

    @property  # type: ignore[override]
    def running(self) -> int:
        return int(self._counters.running.value)

    @running.setter
    def running(self, value: int) -> None:
        self._counters.running.value = value


class PoolStats:
    """The app's view of a model's workers: the sums of their counters, dead workers included."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: list[SharedCounters] = []
        self._retired_tokens = 0

    def add(self, counters: SharedCounters) -> None:
        with self._lock:
            self._live.append(counters)

    def retire(self, counters: SharedCounters) -> None:
        with self._lock:
            if counters in self._live:
                self._live.remove(counters)
                self._retired_tokens += int(counters.tokens.value)

    @property
    def tokens_generated(self) -> int:
        with self._lock:
            return self._retired_tokens + sum(int(c.tokens.value) for c in self._live)

    @property
    def running(self) -> int:
        with self._lock:
            return sum(int(c.running.value) for c in self._live)
