"""Stop buttons: one event per visitor session, set by Stop and watched by that visitor's stream."""

from __future__ import annotations

import threading


class StopSignals:
    """Session hash -> the stop event of the answer streaming in that session."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def begin(self, session: str | None) -> threading.Event:
        """A fresh event for a new answer in this session."""
        event = threading.Event()
        with self._lock:
            self._events[session or ""] = event
        return event

    def stop(self, session: str | None) -> bool:
        """Set the session's event; False when nothing is streaming there."""
        with self._lock:
            event = self._events.get(session or "")
        if event is None:
            return False
        event.set()
        return True

    def end(self, session: str | None, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(session or "") is event:
                del self._events[session or ""]
