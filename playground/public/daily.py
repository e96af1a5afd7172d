"""Counts per key for the current UTC day: the per-address side of caps that a new page load would
otherwise reset (a new page load is a new visitor id; the address stays). Kept in memory: a restart
starts the day's counts again, which the owner's restart is allowed to do."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime


def _today() -> date:
    return datetime.now(UTC).date()


class DailyCounter:
    """How many times each key did something today (UTC)."""

    def __init__(self, today: Callable[[], date] = _today) -> None:
        self._today = today
        self._day = today()
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, key: str) -> int:
        with self._lock:
            self._roll()
            return self._counts.get(key, 0)

    def add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._roll()
            self._counts[key] = self._counts.get(key, 0) + amount

    def _roll(self) -> None:
        day = self._today()
        if day != self._day:
            self._day, self._counts = day, {}
