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
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping

ANY = "*"
HEAVY_S = 10.0  # slot time in the usage window past which an owner waits behind the others
USAGE_WINDOW_S = 60.0
PER_OWNER = 1  # slots of one provider one owner may hold at once


class Ticket:
    """A place in a provider's line; `granted` once it may stream. Release it when done (or to leave).

    `owner` is who asked (a session, or an arena pane of one): see `Slots` for what it changes.
    """

    def __init__(self, slots: Slots, owner: str | None = None) -> None:
        self._slots = slots
        self.owner = owner
        self.granted = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self.released = False

    @property
    def provider(self) -> str:
        return self._slots.name

    def ahead(self) -> int:
        """How many tickets wait before this one (0 when granted)."""
        return self._slots.ahead(self)

    def held_by_owner(self) -> bool:
        """Whether it waits for its owner's other answer on this provider to end (the per-owner cap)."""
        return self._slots.held_by_owner(self)

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
    """At most `limit` granted tickets; the rest wait in line, in arrival order, with two exceptions
    that keep one visitor from taking a provider from the others:

    - an owner holds at most `per_owner` slots at once (None: no cap); their next ticket waits, and
      lets those behind it go first, until one of theirs ends;
    - an owner whose answers held a slot for more than HEAVY_S of the last USAGE_WINDOW_S seconds
      (a few long answers) goes after everyone else waiting; a slot is never left idle for it;
    - an owner of a group (`visitor/a` and `visitor/b`: an arena round's two sides) whose group already
      holds a slot takes a second one only when no other visitor waits: the second side of a round
      with both sides on one provider waits its turn behind them.

    A ticket without an owner is nobody's in particular: neither exception applies to it.
    """

    def __init__(
        self,
        name: str,
        limit: int,
        per_owner: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.limit = limit
        self.per_owner = per_owner
        self._clock = clock
        self._lock = threading.Lock()
        self._line: deque[Ticket] = deque()
        self._active: dict[Ticket, float] = {}  # granted tickets, with when they were granted
        self._usage: dict[str, deque[tuple[float, float]]] = {}  # owner -> (ended, seconds held)

    def ticket(self, owner: str | None = None) -> Ticket:
        ticket = Ticket(self, owner)
        with self._lock:
            self._line.append(ticket)
            granted = self._grant()
        for each in granted:
            each._fire()
        return ticket

    def ahead(self, ticket: Ticket) -> int:
        """How many wait before this ticket (0 when granted, or when only its owner's cap holds it)."""
        with self._lock:
            try:
                return self._line.index(ticket)
            except ValueError:
                return 0

    def held_by_owner(self, ticket: Ticket) -> bool:
        """Whether this waiting ticket waits for its own owner's other answers (the per-owner cap)."""
        with self._lock:
            return not ticket.granted.is_set() and self._capped(ticket.owner, self._holding())

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
            since = self._active.pop(ticket, None)
            if since is not None and ticket.owner is not None:
                now = self._clock()
                self._usage.setdefault(ticket.owner, deque()).append((now, now - since))
            with contextlib.suppress(ValueError):
                self._line.remove(ticket)
            granted = self._grant()
        for each in granted:
            each._fire()

    def _grant(self) -> list[Ticket]:
        """Under the lock: hand free slots to the next in line."""
        granted = []
        while len(self._active) < self.limit:
            ticket = self._next()
            if ticket is None:
                break
            self._line.remove(ticket)
            self._active[ticket] = self._clock()
            ticket.granted.set()
            granted.append(ticket)
        return granted

    def _next(self) -> Ticket | None:
        """The first in line not held back by its owner's cap, light owners before heavy ones."""
        holding = self._holding()
        eligible = [t for t in self._line if not self._capped(t.owner, holding)]
        if not eligible:
            return None
        now = self._clock()
        groups = Counter(_group(owner) for owner in holding.elements())
        return min(  # min keeps arrival order on ties
            eligible,
            key=lambda t: (t.owner is not None and groups[_group(t.owner)] > 0, self._heavy(t.owner, now)),
        )

    def _holding(self) -> Counter[str]:
        return Counter(t.owner for t in self._active if t.owner is not None)

    def _capped(self, owner: str | None, holding: Counter[str]) -> bool:
        return owner is not None and self.per_owner is not None and holding[owner] >= self.per_owner

    def _heavy(self, owner: str | None, now: float) -> bool:
        if owner is None:
            return False
        usage = self._usage.get(owner)
        if not usage:
            return False
        while usage and now - usage[0][0] > USAGE_WINDOW_S:
            usage.popleft()
        if not usage:
            del self._usage[owner]  # bounded: only the owners of the last window
            return False
        return sum(held for _, held in usage) > HEAVY_S

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
    `*` is not limited (`ticket` returns None). Where a provider is limited, one owner holds
    `per_owner` of its slots at most (default 1: a visitor's second answer on it waits for the first)."""

    def __init__(self, limits: Mapping[str, int], per_owner: int | None = PER_OWNER) -> None:
        self.limits = dict(limits)
        self.per_owner = per_owner
        self._slots: dict[str, Slots] = {}
        self._lock = threading.Lock()

    def ticket(self, provider: str, owner: str | None = None) -> Ticket | None:
        limit = self.limits.get(provider, self.limits.get(ANY))
        if limit is None:
            return None
        with self._lock:
            slots = self._slots.get(provider)
            if slots is None:
                slots = self._slots[provider] = Slots(provider, limit, self.per_owner)
        return slots.ticket(owner)

    def __bool__(self) -> bool:
        return bool(self.limits)


def _group(owner: str) -> str:
    """The visitor an owner belongs to: `visitor/a` and `visitor/b` (an arena round's sides) are one."""
    return owner.rsplit("/", 1)[0]
