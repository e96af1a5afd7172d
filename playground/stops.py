"""Stop buttons: one event per (visitor session, pane), set by Stop and watched by that pane's answer.

A pane is whatever a visitor can stop on its own: each chat tab is one ("instruct", "vision", "moe"),
the arena has two ("arena-a", "arena-b"). The answer pipeline takes an event when an answer starts and
gives it back when the answer ends, however it ends; Stop sets it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

Key = tuple[str, str]


class StopSignals:
    """(session hash, pane) -> the stop event of the answer streaming there."""

    def __init__(self) -> None:
        self._events: dict[Key, threading.Event] = {}
        self._lock = threading.Lock()

    def begin(self, session: str | None, pane: str = "") -> threading.Event:
        """A fresh event for a new answer in this session's pane (replacing only that pane's)."""
        event = threading.Event()
        with self._lock:
            self._events[session or "", pane] = event
        return event

    def stop(self, session: str | None, panes: str | Iterable[str] = "") -> bool:
        """Set the events of these panes of the session; False when none of them streams."""
        names = [panes] if isinstance(panes, str) else list(panes)
        with self._lock:
            events = [e for pane in names if (e := self._events.get((session or "", pane))) is not None]
        for event in events:
            event.set()
        return bool(events)

    def end(self, session: str | None, event: threading.Event, pane: str = "") -> None:
        with self._lock:
            if self._events.get((session or "", pane)) is event:
                del self._events[session or "", pane]

    def __len__(self) -> int:
        """Answers that can be stopped now (a leak test counts them)."""
        with self._lock:
            return len(self._events)
