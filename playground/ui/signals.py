"""Stop buttons: one event per (visitor session, pane), set by Stop and watched by that pane's stream.

The Instruct, Vision and MoE tabs have one pane (""); the arena has two ("a", "b"), each stoppable on
its own, and "Stop both" (pane None) sets every pane of the session.
"""

from __future__ import annotations

import threading

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

    def stop(self, session: str | None, pane: str | None = "") -> bool:
        """Set the pane's event (every pane of the session when pane is None); False when none streams."""
        with self._lock:
            if pane is None:
                events = [e for (s, _), e in self._events.items() if s == (session or "")]
            else:
                found = self._events.get((session or "", pane))
                events = [found] if found is not None else []
        for event in events:
            event.set()
        return bool(events)

    def end(self, session: str | None, event: threading.Event, pane: str = "") -> None:
        with self._lock:
            if self._events.get((session or "", pane)) is event:
                del self._events[session or "", pane]
