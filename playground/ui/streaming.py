"""Run a blocking stream in its own thread and hand its items to the event loop in batches.

Whatever piled up while the loop was busy goes out as one update, and updates after the first are at
least MIN_INTERVAL_S apart: each update costs the web server a render, a diff and a send, on the same
CPU as the engine. The first item and the end of the stream are never held back.

The engine shares the GIL with the event loop, and ONNX Runtime GenAI keeps it for a whole token
(12 ms here): left alone, the loop would get one turn per token, and one update, which takes Gradio
some ten turns, would go out a hundred-odd milliseconds late. So after handing the loop a batch, the
producer waits (at most CATCH_UP_S) until the loop is back waiting for the next one, update sent:
the loop's work runs in one go, a millisecond or two, instead of in slices between tokens.

When the consumer goes away (Stop closes the handler), the producer leaves its loop at the next item
and closes the stream in its own thread, which runs the engine's own cleanup (the `finally` of the
provider's generator).

With the `playground.trace` logger at DEBUG (PLAYGROUND_TRACE_STREAM=1), each stream logs when the
engine produced an item, when the event loop took a batch, and when the handler asked for the next
batch (that is, when Gradio had finished sending the previous update on its way), on the
system-wide monotonic clock, so a client on the same machine can line its own times up with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

T = TypeVar("T")

TRACE = logging.getLogger("playground.trace")
MIN_INTERVAL_S = 0.05  # between updates: 20 a second, a few tokens each (bench/app_vs_engine.py)
CATCH_UP_S = 0.05  # the longest the engine waits for the loop to send an update


def _trace(event: str, stream: int, count: int) -> None:
    TRACE.debug("%s %x %.6f %d", event, stream, time.monotonic(), count)


class _Done:
    pass


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Mailbox:
    """Items from the producer thread, taken by the event loop all at once; and whether the loop has
    caught up with them.

    The loop is woken only when it is waiting (once per batch, not once per token), and during a
    pause only by the end of the stream. "Caught up" means the loop is back waiting for items, with
    whatever was ready before that (the update going out) done.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: list[object] = []
        self._lock = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None
        self._only_end = False
        self._caught_up = threading.Event()

    def put(self, item: object) -> None:
        """From the producer thread. RuntimeError when the loop is gone."""
        with self._lock:
            self._items.append(item)
            waiter = self._waiter
            if waiter is not None and (not self._only_end or isinstance(item, _Done | _Failed)):
                self._waiter = None
                self._caught_up.clear()
            else:
                waiter = None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)

    def wait_caught_up(self, timeout: float) -> None:
        """From the producer thread: until the loop is back waiting for items, at most `timeout`."""
        self._caught_up.wait(timeout)

    def release(self) -> None:
        """The consumer is gone: nobody to wait for."""
        self._caught_up.set()

    def _mark_caught_up(self, waiter: asyncio.Future[None]) -> None:
        with self._lock:
            if self._waiter is waiter:  # still waiting: no item has come meanwhile
                self._caught_up.set()

    async def take(self, not_before: float = 0.0) -> list[object]:
        """Everything put so far: at once if something is there and `not_before` (loop time) has
        passed; else when something comes, but not before `not_before` unless the stream ends."""
        while True:
            pause = not_before - self._loop.time()
            with self._lock:
                ended = any(isinstance(item, _Done | _Failed) for item in self._items[-1:])
                if self._items and (pause <= 0 or ended):
                    items, self._items = self._items, []
                    self._caught_up.clear()
                    return items
                waiter = self._waiter = self._loop.create_future()
                self._only_end = bool(self._items)
            self._loop.call_soon(self._mark_caught_up, waiter)  # after the callbacks already ready
            try:
                await asyncio.wait_for(waiter, pause) if self._only_end else await waiter
            except TimeoutError:
                pass
            finally:
                with self._lock:
                    self._waiter = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ThreadedStream(Generic[T]):
    """`async for batch in ThreadedStream(iterator)`: lists of items, never empty.

    Setting `stop` (the Stop button) ends the stream at the next item: the producer closes the
    iterator and the consumer's loop ends normally, with everything received so far. A source that
    `ends_itself` watches `stop` on its own and ends with a last item of its own (an answer's
    `Finished`): the producer then reads it to its end. The consumer leaving sets `stop` either way.
    Batches after the first are at least `min_interval_s` apart (the end of the stream is never held
    back): fewer updates for the web server to render and send while the engine shares the CPU.
    """

    def __init__(
        self,
        iterator: Iterator[T],
        *,
        stop: threading.Event | None = None,
        min_interval_s: float | None = None,
        ends_itself: bool = False,
    ) -> None:
        self._iterator = iterator
        self._stop = stop or threading.Event()
        self._interval = MIN_INTERVAL_S if min_interval_s is None else min_interval_s
        self._ends_itself = ends_itself
        self.finished = threading.Event()
        self._traced = TRACE.isEnabledFor(logging.DEBUG)

    def _produce(self, mailbox: _Mailbox) -> None:
        def send(item: object) -> None:
            try:
                mailbox.put(item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                self._stop.set()

        try:
            for count, item in enumerate(self._iterator, 1):
                if self._traced:
                    _trace("engine", id(self), count)
                send(item)
                if self._stop.is_set() and not self._ends_itself:
                    break
                mailbox.wait_caught_up(CATCH_UP_S)
        except BaseException as exc:  # re-raised in the consumer
            send(_Failed(exc))
        finally:
            close = getattr(self._iterator, "close", None)
            if close is not None:
                close()
            self.finished.set()
            send(_Done())

    async def __aiter__(self) -> AsyncGenerator[list[T], None]:
        loop = asyncio.get_running_loop()
        mailbox = _Mailbox(loop)
        _thread(self._produce, mailbox, name="stream").start()
        try:
            batch: list[T]
            end: _Done | _Failed | None = None
            not_before = 0.0
            while end is None:
                batch, end = _split(await mailbox.take(not_before))
                if batch:
                    if self._traced:
                        _trace("batch", id(self), len(batch))
                    yield batch
                    if self._traced:
                        _trace("resumed", id(self), len(batch))
                    not_before = loop.time() + self._interval
            if isinstance(end, _Failed):
                raise end.error
        finally:
            self._stop.set()
            mailbox.release()


def _thread(target: Callable[..., None], *args: object, name: str) -> threading.Thread:
    """A producer thread that runs in a copy of the handler's context: whatever Gradio keeps in context
    variables (the visitor's request, which ZeroGPU's `spaces.GPU` reads to charge the right account)
    is seen by the engine's calls made from it."""
    context = contextvars.copy_context()
    return threading.Thread(target=context.run, args=(target, *args), daemon=True, name=name)


def _split(items: list[object]) -> tuple[list[T], _Done | _Failed | None]:
    """The items before the end of the stream, and that end (None while the stream goes on)."""
    batch: list[T] = []
    for item in items:
        if isinstance(item, _Done | _Failed):
            return batch, item
        batch.append(item)  # type: ignore[arg-type]
    return batch, None


# Several streams folded into one page update per tick (the arena's two panes)


class _PaneEnd(_Done):
    def __init__(self, pane: str, error: BaseException | None = None) -> None:
        self.pane = pane
        self.error = error


@dataclass
class PaneUpdate(Generic[T]):
    """What arrived since the last update: new items per pane, and the panes that ended (with their
    error, or None)."""

    items: dict[str, list[T]] = field(default_factory=dict)
    ended: dict[str, BaseException | None] = field(default_factory=dict)


class FoldedStreams(Generic[T]):
    """`async for update in FoldedStreams({"a": stream_a, "b": stream_b}, stops=...)`: one update per tick.

    Each stream runs in a producer thread of its own that never waits for the other, nor for the page:
    a slow side never holds back the fast one, and neither engine waits on the other's rendering.
    Whatever arrived from any side goes out as one update, at most one every `min_interval_s` (an end
    is never held back). Setting a pane's stop event ends that pane alone (its stream is closed in its
    own thread, which stops its engine); an error ends that pane alone and is reported in `ended`.
    Leaving the loop early (the visitor left, or Stop both) stops every pane. Streams that `ends_itself`
    watch their stop events on their own and are read to their end (see ThreadedStream).
    """

    def __init__(
        self,
        streams: Mapping[str, Iterator[T]],
        *,
        stops: Mapping[str, threading.Event] | None = None,
        min_interval_s: float | None = None,
        ends_itself: bool = False,
    ) -> None:
        self._streams = dict(streams)
        self._stops = {pane: (stops or {}).get(pane) or threading.Event() for pane in self._streams}
        self._interval = MIN_INTERVAL_S if min_interval_s is None else min_interval_s
        self._ends_itself = ends_itself

    def _produce(self, pane: str, mailbox: _Mailbox) -> None:
        stream, stop = self._streams[pane], self._stops[pane]
        error: BaseException | None = None
        try:
            for item in stream:
                mailbox.put((pane, item))
                if stop.is_set() and not self._ends_itself:
                    break
        except BaseException as exc:  # reported with the pane's end (or the loop is gone)
            error = exc
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                mailbox.put(_PaneEnd(pane, error))

    async def __aiter__(self) -> AsyncGenerator[PaneUpdate[T], None]:
        loop = asyncio.get_running_loop()
        mailbox = _Mailbox(loop)
        mailbox.release()  # producers never wait for the loop
        for pane in self._streams:
            _thread(self._produce, pane, mailbox, name=f"pane-{pane}").start()
        open_panes = set(self._streams)
        not_before = 0.0
        try:
            while open_panes:
                update: PaneUpdate[T] = PaneUpdate()
                for entry in await mailbox.take(not_before):
                    if isinstance(entry, _PaneEnd):
                        update.ended[entry.pane] = entry.error
                        open_panes.discard(entry.pane)
                    else:
                        pane, item = cast(tuple[str, T], entry)
                        update.items.setdefault(pane, []).append(item)
                if update.items or update.ended:
                    yield update
                    not_before = loop.time() + self._interval
        finally:
            for stop in self._stops.values():
                stop.set()
