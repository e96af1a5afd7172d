"""Who may join the queue with a question: the per-visitor and per-address rules, checked at join time.

Pure rules over the jobs queued or running now (the gate reads them from Gradio's queue) and the
questions asked in the last minute (kept here). A refusal is a message that says when to ask again.
Only the answering events count (the chat regions, the arena, the `/chat` API), not the page's cheap
ones (a model card, a preset).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import PlaygroundError
from ..settings import Limits

WINDOW_S = 60.0  # the rate limits count the questions of the last minute
JOBS_RETRY_S = 10  # what a refusal for jobs already waiting suggests (an answer takes seconds)


class AdmissionRefused(PlaygroundError):
    """A question refused at the door; `retry_after_s` says when asking again can succeed."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, math.ceil(retry_after_s))


@dataclass(frozen=True)
class Job:
    """An answering job queued or running: whose it is, and its pane (None: the API, no pane)."""

    session: str | None
    address: str
    pane: str | None


class _Window:
    """When each key asked, over the last WINDOW_S seconds."""

    def __init__(self) -> None:
        self._times: dict[str, deque[float]] = {}

    def recent(self, key: str, now: float) -> deque[float]:
        times = self._times.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if not times:
            del self._times[key]
        return times

    def add(self, key: str, now: float) -> None:
        self._times.setdefault(key, deque()).append(now)

    def sweep(self, now: float) -> None:
        """Forget the keys with nothing in the window (memory stays bounded by the last minute's)."""
        for key in list(self._times):
            self.recent(key, now)

    def __len__(self) -> int:
        return len(self._times)


class Admission:
    """The rules of `Limits` for a question about to join the queue; None fields are off.

    One answer per (session, pane) is always a rule: a second question in a pane whose answer is
    still queued or streaming would lose its Stop button.
    """

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._sessions = _Window()
        self._addresses = _Window()
        self._asked = 0

    def admit(
        self, session: str | None, address: str, pane: str | None, jobs: Sequence[Job], waiting: int
    ) -> None:
        """Record the question if it may join; AdmissionRefused (nothing recorded) if not.

        `jobs`: the answering jobs queued or running now; `waiting`: the jobs waiting in the queue.
        """
        limits, now = self.limits, self._clock()
        mine = [j for j in jobs if session is not None and j.session == session]
        if pane is not None and any(j.pane == pane for j in mine):
            raise AdmissionRefused(
                "An answer is already being written here: wait for it to finish (or press Stop), "
                "then ask again.",
                JOBS_RETRY_S,
            )
        if limits.visitor_jobs is not None and len(mine) >= limits.visitor_jobs:
            raise AdmissionRefused(
                f"You already have {_questions(len(mine))} waiting or being answered (at most "
                f"{limits.visitor_jobs} at once): wait for one to finish, then ask again.",
                JOBS_RETRY_S,
            )
        from_address = sum(1 for j in jobs if j.address == address)
        if limits.address_jobs is not None and from_address >= limits.address_jobs:
            raise AdmissionRefused(
                f"{_questions(from_address)} from your network address waiting or being answered (at "
                f"most {limits.address_jobs} at once): wait for one to finish, then ask again.",
                JOBS_RETRY_S,
            )
        if limits.queue_size is not None and waiting >= limits.queue_size:
            raise AdmissionRefused(
                f"The playground is busy: {waiting} questions are waiting already. Try again in a minute.",
                WINDOW_S,
            )
        self._check_rate(self._sessions, session, limits.rate_per_minute, now, "You have")
        self._check_rate(
            self._addresses, address, limits.address_rate_per_minute, now, "Your network address has"
        )
        if session is not None:
            self._sessions.add(session, now)
        self._addresses.add(address, now)
        self._asked += 1
        if self._asked % 256 == 0:
            self._sessions.sweep(now)
            self._addresses.sweep(now)

    @staticmethod
    def _check_rate(window: _Window, key: str | None, limit: int | None, now: float, who: str) -> None:
        if key is None or limit is None:
            return
        recent = window.recent(key, now)
        if len(recent) >= limit:
            wait = recent[0] + WINDOW_S - now
            raise AdmissionRefused(
                f"{who} asked {_questions(len(recent))} in the last minute (at most {limit}): "
                f"try again in {max(1, math.ceil(wait))} s.",
                wait,
            )

    def tracked(self) -> int:
        """How many sessions and addresses the rate windows hold now (tests check it stays bounded)."""
        return len(self._sessions) + len(self._addresses)


def _questions(count: int) -> str:
    return f"{count} question" + ("" if count == 1 else "s")
