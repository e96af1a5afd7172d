"""The engine worker: a process of its own that loads one model and generates one answer at a time.

Started by `process.WorkerProcess` with the `spawn` method; the messages are in `protocol`. Three
threads, each with one job:
- the reader only reads the pipe and hands each message on, so it is always draining what the app
  sends (a multi-megabyte message never waits behind anything) and a Cancel reaches the engine between
  two tokens (it is checked at every token, inside the engine), even while a slow call computes;
- the main thread generates, one answer at a time;
- the call thread answers render/count calls, one after another, while an answer streams.
The main and call threads send under one lock; the app's reader always drains, so a send never waits
for long. When the app goes away (its end of the pipe closes), the worker stops what it is doing and
exits.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from ...types import ModelSpec
from ..guard import translate
from .protocol import (
    Call,
    Cancel,
    Ended,
    Event,
    Failed,
    FromWorker,
    Generate,
    Load,
    Loaded,
    Recipe,
    Reply,
    Shutdown,
)
from .stats import EngineStats, SharedCounters

NICENESS = 5  # workers run this much below the app's process priority


def load_engine(recipe: Recipe, threads: int | None = None, stats: EngineStats | None = None) -> Any:
    """The engine's model for a recipe, in this process (the worker's, or the app's in-process mode)."""
    if recipe.engine == "onnx":
        from .onnx import OnnxModel

        return OnnxModel(recipe.spec, recipe.path, threads=threads, stats=stats)
    from .hf import TransformersModel

    return TransformersModel(
        recipe.spec,
        recipe.path,
        gguf_file=recipe.gguf_file,
        trust_remote_code=recipe.trust_remote_code,
        threads=threads,
        stats=stats,
    )


def failure(rid: int, exc: BaseException, spec: ModelSpec) -> Failed:
    """An exception as a message, translated first (guard.translate, the one place that does it): the
    app raises the same class of ours again."""
    ours = translate(exc, spec)
    return Failed(rid, type(ours).__name__, str(ours))


class _Worker:
    def __init__(self, conn: Connection, counters: SharedCounters) -> None:
        self.conn = conn
        self.stats = counters.stats()
        self.model: Any = None
        self.spec: ModelSpec  # set by load, the first message
        self.jobs: queue.SimpleQueue[Generate | None] = queue.SimpleQueue()
        self.calls: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._send_lock = threading.Lock()
        self._current: tuple[int, threading.Event] | None = None
        self._cancelled_at: int | None = None
        self._state = threading.Lock()

    def send(self, message: FromWorker) -> None:
        with self._send_lock:
            self.conn.send(message)

    # Start-up

    def load(self, request: Load) -> bool:
        self.spec = request.recipe.spec
        start = time.perf_counter()
        try:
            self.model = load_engine(request.recipe, request.threads, self.stats)
        except BaseException as exc:
            self.send(failure(0, exc, self.spec))
            return False
        threads = getattr(self.model, "threads", request.threads)
        self.send(Loaded(os.getpid(), time.perf_counter() - start, threads))
        return True

    # The reader thread: everything the app sends, read and handed on (it computes nothing)

    def read(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                if isinstance(message, Generate):
                    self.jobs.put(message)
                elif isinstance(message, Cancel):
                    self.cancel(message.rid)
                elif isinstance(message, Call):
                    self.calls.put(message)
                elif isinstance(message, Shutdown):
                    break
        except (EOFError, OSError):
            pass  # the app is gone
        with self._state:
            if self._current is not None:
                self._current[1].set()
        self.calls.put(None)
        self.jobs.put(None)

    def cancel(self, rid: int) -> None:
        with self._state:
            if self._current is not None and self._current[0] == rid:
                self._cancelled_at = self.stats.tokens_generated
                self._current[1].set()

    # The call thread: render/count calls, beside the answer being generated

    def answer_calls(self) -> None:
        while (message := self.calls.get()) is not None:
            self.call(message)

    def call(self, message: Call) -> None:
        try:
            value = getattr(self.model, message.method)(*message.args)
        except BaseException as exc:
            reply: FromWorker = failure(message.rid, exc, self.spec)
        else:
            reply = Reply(message.rid, value)
        with contextlib.suppress(OSError, ValueError):  # the app is gone: the reader ends us
            self.send(reply)

    # The main thread: one answer at a time

    def serve(self) -> None:
        while (job := self.jobs.get()) is not None:
            self.generate(job)

    def generate(self, job: Generate) -> None:
        from ..base import timed

        cancel = threading.Event()
        with self._state:
            self._current, self._cancelled_at = (job.rid, cancel), None
        start = self.stats.tokens_generated
        try:
            events: Iterator[Any] = self.model.events(job.messages, job.options, cancel=cancel)
            for chunk in timed(events):
                self.send(Event(job.rid, chunk))
        except BaseException as exc:
            self.send(failure(job.rid, exc, self.spec))
        finally:
            with self._state:
                self._current = None
                end = self.stats.tokens_generated
                after = 0 if self._cancelled_at is None else end - self._cancelled_at
            self.send(Ended(job.rid, end - start, after))


def main(conn: Connection, counters: SharedCounters) -> None:
    """The worker process's entry point (spawned: nothing is inherited but these arguments)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the app's to handle; it stops us by message
    # Below the web server in the scheduler's eyes: when every core is busy generating, the page still
    # loads at once (the engines lose a little of their rate then, never the page its responsiveness).
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    # No progress bars on the app's terminal from here (the page shows the load); and none of tqdm's
    # cross-process locks, which a worker that is killed could not give back.
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    worker = _Worker(conn, counters)
    try:
        request = conn.recv()
    except (EOFError, OSError):
        return
    if not isinstance(request, Load) or not worker.load(request):
        return
    threading.Thread(target=worker.read, name="worker-inbox", daemon=True).start()
    threading.Thread(target=worker.answer_calls, name="worker-calls", daemon=True).start()
    try:
        worker.serve()
    finally:
        conn.close()
        os._exit(0)  # no interpreter teardown: the engine's native threads need no goodbye
