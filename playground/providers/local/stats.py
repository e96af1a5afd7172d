"""What a local engine is doing: tokens produced and generations running (for Stop and for tests)."""

from __future__ import annotations

import threading


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
