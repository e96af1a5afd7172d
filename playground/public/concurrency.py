"""Answers at once per provider (PLAYGROUND_PROVIDER_CONCURRENCY), handed out in arrival order.

A cloud provider's quota is the owner's: however many visitors ask, at most `n` answers stream from
it at once; the others wait in line (first come, first served) and see their place. Used from
threads (the CLI, the engine streams) and from the event loop (the page's handlers), so a ticket can
be waited for both ways; waiting on the loop takes no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Mapping

ANY = "*"


class Ticket:
    """A place in a provider's line; `granted` once it may stream. Release it when done (or to leave)."""

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self.granted = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self.released = False

    @property
    def provider(self) -> str:
        return self._slots.name

    def ahead(self) -> int:
        """How many tickets wait before this one (0 when granted)."""
        return self._slots.ahead(self)

    def wait(self, timeout: float | None = None) -> bool:
        return self.granted.wait(timeout)

    async def wait_async(self, timeout: float | None = None) -> bool:
        """Wait on the event loop without a thread; True once granted."""
        if self.granted.is_set():
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            if not future.done():
                future.set_result(None)

        def wake() -> None:
            loop.call_soon_threadsafe(done)

        self._slots.on_grant(self, wake)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), timeout)
        return self.granted.is_set()

    def release(self) -> None:
        """Give the slot back (or leave the line); the next ticket in line gets it. Idempotent."""
        self._slots.release(self)

    def _fire(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


class Slots:
    """At most `limit` granted tickets; the rest wait in a FIFO line."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._lock = threading.Lock()
        self._line: deque[Ticket] = deque()
        self._active: set[Ticket] = set()

    def ticket(self) -> Ticket:
        ticket = Ticket(self)
        with self._lock:
            self._line.append(ticket)
            granted = self._grant()
        for each in granted:
            each._fire()
        return ticket

    def ahead(self, ticket: Ticket) -> int:
        with self._lock:
            try:
                return self._line.index(ticket)
            except ValueError:
                return 0

    def on_grant(self, ticket: Ticket, callback: Callable[[], None]) -> None:
        with self._lock:
            if not ticket.granted.is_set():
                ticket._callbacks.append(callback)
                return
        callback()

    def release(self, ticket: Ticket) -> None:
        with self._lock:
            if ticket.released:
                return
            ticket.released = True
            self._active.discard(ticket)
            with contextlib.suppress(ValueError):
                self._line.remove(ticket)
            granted = self._grant()
        for each in granted:
            each._fire()

    def _grant(self) -> list[Ticket]:
        """Under the lock: hand free slots to the first in line."""
        granted = []
        while self._line and len(self._active) < self.limit:
            ticket = self._line.popleft()
            self._active.add(ticket)
            ticket.granted.set()
            granted.append(ticket)
        return granted

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._line)


class ProviderSlots:
    """One `Slots` per provider, from `{provider or "*": n}`; a provider neither named nor covered by
    `*` is not limited (`ticket` returns None)."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)
        self._slots: dict[str, Slots] = {}
        self._lock = threading.Lock()

    def ticket(self, provider: str) -> Ticket | None:
        limit = self.limits.get(provider, self.limits.get(ANY))
        if limit is None:
            return None
        with self._lock:
            slots = self._slots.get(provider)
            if slots is None:
                slots = self._slots[provider] = Slots(provider, limit)
        return slots.ticket()

    def __bool__(self) -> bool:
        return bool(self.limits)
