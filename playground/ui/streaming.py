"""Run a blocking stream in its own thread and hand its items to the event loop in batches.

The engine never waits for the web server: it keeps generating while the loop sends the previous
update, and whatever piled up meanwhile goes out as one update. When the consumer goes away (Stop
closes the handler), the producer leaves its loop at the next item and closes the stream in its own
thread, which runs the engine's own cleanup (the `finally` of the provider's generator).

With the `playground.trace` logger at DEBUG (PLAYGROUND_TRACE_STREAM=1), each stream logs when the
engine produced an item, when the event loop took a batch, and when the handler asked for the next
batch (that is, when Gradio had finished sending the previous update on its way), on the
system-wide monotonic clock, so a client on the same machine can line its own times up with them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

TRACE = logging.getLogger("playground.trace")


def _trace(event: str, stream: int, count: int) -> None:
    TRACE.debug("%s %x %.6f %d", event, stream, time.monotonic(), count)


class _Done:
    pass


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ThreadedStream(Generic[T]):
    """`async for batch in ThreadedStream(iterator)`: lists of items, never empty.

    Setting `stop` (the Stop button) ends the stream at the next item: the producer closes the
    iterator and the consumer's loop ends normally, with everything received so far.
    """

    def __init__(self, iterator: Iterator[T], *, stop: threading.Event | None = None) -> None:
        self._iterator = iterator
        self._stop = stop or threading.Event()
        self.finished = threading.Event()
        self._traced = TRACE.isEnabledFor(logging.DEBUG)

    def _produce(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[object]) -> None:
        def send(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                self._stop.set()

        try:
            for count, item in enumerate(self._iterator, 1):
                if self._traced:
                    _trace("engine", id(self), count)
                send(item)
                if self._stop.is_set():
                    break
        except BaseException as exc:  # re-raised in the consumer
            send(_Failed(exc))
        finally:
            close = getattr(self._iterator, "close", None)
            if close is not None:
                close()
            self.finished.set()
            send(_Done())

    async def __aiter__(self) -> AsyncIterator[list[T]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        threading.Thread(target=self._produce, args=(loop, queue), daemon=True, name="stream").start()
        try:
            batch: list[T]
            end: _Done | _Failed | None = None
            while end is None:
                items = [await queue.get()]
                while not queue.empty():
                    items.append(queue.get_nowait())
                batch, end = _split(items)
                if batch:
                    if self._traced:
                        _trace("batch", id(self), len(batch))
                    yield batch
                    if self._traced:
                        _trace("resumed", id(self), len(batch))
            if isinstance(end, _Failed):
                raise end.error
        finally:
            self._stop.set()


def _split(items: list[object]) -> tuple[list[T], _Done | _Failed | None]:
    """The items before the end of the stream, and that end (None while the stream goes on)."""
    batch: list[T] = []
    for item in items:
        if isinstance(item, _Done | _Failed):
            return batch, item
        batch.append(item)  # type: ignore[arg-type]
    return batch, None
