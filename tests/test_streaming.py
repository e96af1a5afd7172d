"""ThreadedStream: every item in order, in batches; the first item and the end never held back; the
producer waits for the loop to send each update; errors, Stop and cleanup."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from playground.ui.streaming import FoldedStreams, ThreadedStream

T = TypeVar("T")


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a thread of its own: the browser tests leave an event loop running in this one."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def collect(stream: ThreadedStream[int], busy_s: float = 0.0) -> list[list[int]]:
    async def run() -> list[list[int]]:
        batches = []
        async for batch in stream:
            batches.append(batch)
            if busy_s:
                await asyncio.sleep(busy_s)  # the web server sending the update
        return batches

    return run_loop(run())


def test_every_item_arrives_in_order() -> None:
    batches = collect(ThreadedStream(iter(range(50))))
    assert [item for batch in batches for item in batch] == list(range(50))
    assert all(batches)


def test_the_producer_waits_for_each_update_to_go_out() -> None:
    # Instant items would all pile up into one batch if the producer ran ahead of the loop.
    batches = collect(ThreadedStream(iter(range(10)), min_interval_s=0), busy_s=0.001)
    assert batches == [[i] for i in range(10)]


def slow(count: int, pause_s: float) -> Iterator[int]:
    for i in range(count):
        time.sleep(pause_s)
        yield i


def test_updates_are_paced_but_the_first_item_is_not_held_back() -> None:
    batches = collect(ThreadedStream(slow(20, 0.01), min_interval_s=0.2))
    assert batches[0] == [0]
    assert len(batches) < 10
    assert [item for batch in batches for item in batch] == list(range(20))


def test_the_end_of_the_stream_is_not_held_back() -> None:
    start = time.monotonic()
    batches = collect(ThreadedStream(iter([1, 2]), min_interval_s=30))
    assert [item for batch in batches for item in batch] == [1, 2]
    assert time.monotonic() - start < 10


def failing() -> Iterator[int]:
    yield 1
    raise RuntimeError("engine died")


def test_an_error_comes_after_the_items_before_it() -> None:
    seen: list[int] = []

    async def run() -> None:
        async for batch in ThreadedStream(failing()):
            seen.extend(batch)

    with pytest.raises(RuntimeError, match="engine died"):
        run_loop(run())
    assert seen == [1]


def test_stop_ends_the_stream_and_runs_the_engine_cleanup() -> None:
    stop = threading.Event()
    cleaned = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                time.sleep(0.005)
                yield i
                i += 1
        finally:
            cleaned.set()

    async def run() -> list[int]:
        seen: list[int] = []
        async for batch in ThreadedStream(endless(), stop=stop):
            seen.extend(batch)
            if len(seen) >= 3:
                stop.set()
        return seen

    seen = run_loop(run())
    assert seen[:3] == [0, 1, 2]
    assert cleaned.wait(10)


def test_a_consumer_that_leaves_releases_the_producer() -> None:
    cleaned = threading.Event()

    def endless() -> Iterator[int]:
        try:
            while True:
                time.sleep(0.005)
                yield 0
        finally:
            cleaned.set()

    async def run() -> None:
        async for _ in ThreadedStream(endless()):
            break  # Stop closes the handler: the async generator is closed

    run_loop(run())
    assert cleaned.wait(10)


REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")


def test_the_producer_sees_the_handlers_context_variables() -> None:
    """Gradio keeps the visitor's request in a context variable, which ZeroGPU's spaces.GPU reads from
    the thread that calls the engine: the producer thread runs in a copy of the handler's context."""

    def engine() -> Iterator[str]:
        yield REQUEST.get()

    async def handler(stream: type[ThreadedStream[str]] | type[FoldedStreams[str]]) -> list[str]:
        REQUEST.set("visitor-1")
        if stream is ThreadedStream:
            return [item async for batch in ThreadedStream(engine()) for item in batch]
        return [i async for update in FoldedStreams({"a": engine()}) for i in update.items.get("a", [])]

    assert run_loop(handler(ThreadedStream)) == ["visitor-1"]
    assert run_loop(handler(FoldedStreams)) == ["visitor-1"]
