"""Local models in worker processes: the app's side of `worker` (the messages are in `protocol`).

A `ProcessModel` is a ChatModel like any other; behind it, up to `max_workers` processes, each holding
one loaded copy of the model and generating one answer at a time. A request takes an idle worker,
starts a new one while the model has fewer than `max_workers` and the memory budget allows, or waits
its turn (first come, first served). The web server's process then never runs an engine: the
engines hold the GIL for a whole token, so in one process they and the server would take turns.

Stop sends Cancel; the worker ends within one token and answers Ended. A worker that has not ended
within `grace_s` is killed and replaced by the next request. A worker that dies mid-answer (a native
crash, kill -9, out of memory) ends that answer `interrupted`, with the exit code or signal in words;
the app stays up and the next request gets a new worker.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ... import errors
from ...errors import ModelLoadError, ModelUnavailableError, PlaygroundError, ProviderError
from ...options import GenerationOptions
from ...types import Chunk, FinishReason, Message, Metrics, ModelSpec
from . import worker
from .protocol import (
    Call,
    CallMethod,
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
    ToWorker,
)
from .stats import PoolStats, SharedCounters

log = logging.getLogger(__name__)

SPAWN = multiprocessing.get_context("spawn")
GRACE_S = 10.0  # after a Stop, how long a worker may take to end before it is killed


@dataclass(frozen=True)
class _Died:
    """Put in every open inbox when a worker's pipe closes."""

    description: str


def describe_exit(code: int | None) -> str:
    """A worker's exit status in words: the signal's name, or the exit code."""
    if code is None:
        return "ended"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: out of memory, or by hand)" if -code == signal.SIGKILL else ""
        return f"was stopped by {name}{hint}"
    return f"exited with code {code}"


def error_from(failed: Failed) -> PlaygroundError:
    """The worker's error as ours again, of the same class where it is one of ours."""
    kind = getattr(errors, failed.kind, None)
    if isinstance(kind, type) and issubclass(kind, PlaygroundError):
        return kind(failed.message)
    return ProviderError(failed.message)


def resident_bytes(pid: int) -> int:
    """A process's resident memory, 0 when it cannot be read."""
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except Exception:  # gone, or no permission: nothing to count
        return 0


class WorkerProcess:
    """One engine process: started, loaded, its messages routed to the request they belong to."""

    def __init__(self, recipe: Recipe, threads: int | None) -> None:
        self.recipe = recipe
        self.counters = SharedCounters(SPAWN)
        parent, child = SPAWN.Pipe()
        self.process = SPAWN.Process(
            target=worker.main,
            args=(child, self.counters),
            name=f"engine {recipe.spec.id}",
            daemon=True,
        )
        self.busy = False
        self.dead = False
        self._conn = parent
        self._routes: dict[int, queue.SimpleQueue[FromWorker | _Died]] = {}
        self._lock = threading.Lock()
        self._rids = itertools.count(1)
        start = time.perf_counter()
        self.process.start()
        child.close()
        loaded = self._load(recipe, threads)
        self.pid = loaded.pid
        self.load_s = time.perf_counter() - start
        self.threads = loaded.threads
        threading.Thread(target=self._read, name=f"from-worker-{self.pid}", daemon=True).start()

    def __repr__(self) -> str:
        state = "dead" if self.dead else "busy" if self.busy else "idle"
        return f"<WorkerProcess {self.recipe.spec.id} pid={self.process.pid} {state}>"

    def _load(self, recipe: Recipe, threads: int | None) -> Loaded:
        self._conn.send(Load(recipe, threads))
        while not self._conn.poll(0.2):
            if not self.process.is_alive():
                self.process.join(1)
                self.dead = True
                raise ModelLoadError(
                    f"The engine process for {recipe.spec.name} {describe_exit(self.process.exitcode)} "
                    "while loading it: the model may not fit in memory."
                )
        try:
            reply = self._conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise ModelLoadError(
                f"The engine process for {recipe.spec.name} ended while loading it."
            ) from None
        if isinstance(reply, Failed):
            self.kill()
            raise error_from(reply)
        assert isinstance(reply, Loaded)
        return reply

    # Messages

    def open(self) -> tuple[int, queue.SimpleQueue[FromWorker | _Died]]:
        """A new request id and the inbox its answers go to."""
        inbox: queue.SimpleQueue[FromWorker | _Died] = queue.SimpleQueue()
        with self._lock:
            rid = next(self._rids)
            if self.dead:
                inbox.put(_Died(self.exit_description()))
            self._routes[rid] = inbox
        return rid, inbox

    def close_route(self, rid: int) -> None:
        with self._lock:
            self._routes.pop(rid, None)

    def send(self, message: ToWorker) -> None:
        """Send, or (the worker is gone) tell the request's inbox so."""
        try:
            with self._lock:
                self._conn.send(message)
        except (OSError, ValueError):  # broken pipe, or closed: the reader reports the death
            pass

    def _read(self) -> None:
        try:
            while True:
                message = self._conn.recv()
                with self._lock:
                    inbox = self._routes.get(getattr(message, "rid", -1))
                if inbox is not None:
                    inbox.put(message)
        except (EOFError, OSError):
            pass
        self.process.join(2)
        with self._lock:
            self.dead = True
            routes = list(self._routes.values())
        died = _Died(self.exit_description())
        for inbox in routes:
            inbox.put(died)

    def exit_description(self) -> str:
        return describe_exit(self.process.exitcode)

    # State

    @property
    def alive(self) -> bool:
        return not self.dead and self.process.is_alive()

    def memory_bytes(self) -> int:
        return 0 if self.dead else resident_bytes(self.pid)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it has not within `timeout`."""
        self.send(Shutdown())
        self.process.join(timeout)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.dead = True
        self._conn.close()


@dataclass(frozen=True)
class WorkerInfo:
    """What the Models tab shows of one worker."""

    pid: int
    memory_bytes: int
    load_s: float
    threads: int | None
    busy: bool


class ProcessModel:
    """A local model whose answers are generated in worker processes (see the module's docstring)."""

    def __init__(
        self,
        recipe: Recipe,
        *,
        max_workers: int = 1,
        threads: int | None = None,
        grace_s: float = GRACE_S,
    ) -> None:
        self.spec: ModelSpec = recipe.spec
        self.recipe = recipe
        self.max_workers = max(1, max_workers)
        self.threads = threads
        self.grace_s = grace_s
        self.stats = PoolStats()
        self.reports: deque[Ended] = deque(maxlen=64)  # the last requests' token counts (Stop's proof)
        self.room: Callable[[int], bool] = lambda _bytes: True  # the registry's memory budget
        self._workers: list[WorkerProcess] = []
        self._starting = 0
        self._turns: deque[object] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._add(self._start_worker())

    def __repr__(self) -> str:
        return f"<ProcessModel {self.spec.id} workers={len(self._workers)}/{self.max_workers}>"

    # Workers

    def _start_worker(self) -> WorkerProcess:
        started = WorkerProcess(self.recipe, self.threads)
        log.info(
            "Loaded %s in worker %d in %.1f s (%s threads)",
            self.spec.id,
            started.pid,
            started.load_s,
            started.threads or "default",
        )
        return started

    def _add(self, started: WorkerProcess) -> None:
        with self._cond:
            self._workers.append(started)
            self.stats.add(started.counters)
            self._cond.notify_all()

    def _forget(self, gone: WorkerProcess) -> None:
        """With the condition held: a worker that is no more (dead, or closed) leaves the pool."""
        if gone in self._workers:
            self._workers.remove(gone)
            self.stats.retire(gone.counters)

    def per_worker_bytes(self) -> int:
        """The measured memory of one worker, or the catalog's estimate before any is measured."""
        measured = [w.memory_bytes() for w in self.workers() if w.alive]
        measured = [m for m in measured if m]
        return max(measured) if measured else self.spec.size_bytes

    def _acquire(self) -> WorkerProcess:
        """An idle worker, a new one if allowed, or wait for one, in arrival order."""
        turn = object()
        with self._cond:
            self._turns.append(turn)
            try:
                while True:
                    if self._closed:
                        raise ModelUnavailableError(f"{self.spec.name} was unloaded: ask again.")
                    for gone in [w for w in self._workers if not w.alive and not w.busy]:
                        self._forget(gone)
                    if self._turns[0] is turn:
                        idle = next((w for w in self._workers if not w.busy and w.alive), None)
                        if idle is not None:
                            idle.busy = True
                            return idle
                        if len(self._workers) + self._starting < self.max_workers and (
                            (not self._workers and not self._starting) or self.room(self.per_worker_bytes())
                        ):
                            self._starting += 1
                            break
                    self._cond.wait(1.0)
            finally:
                self._turns.remove(turn)
                self._cond.notify_all()
        try:
            started = self._start_worker()
        finally:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
        started.busy = True
        self._add(started)
        return started

    def _release(self, used: WorkerProcess) -> None:
        with self._cond:
            used.busy = False
            if used.dead:
                self._forget(used)
            self._cond.notify_all()

    def workers(self) -> list[WorkerProcess]:
        with self._cond:
            return list(self._workers)

    def describe(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(w.pid, w.memory_bytes(), w.load_s, w.threads, w.busy)
            for w in self.workers()
            if w.alive
        ]

    @property
    def busy(self) -> bool:
        with self._cond:
            return any(w.busy for w in self._workers) or bool(self._turns)

    def memory_bytes(self) -> int:
        return sum(w.memory_bytes() for w in self.workers())

    # The ChatModel protocol

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Iterator[Chunk]:
        return self._stream(tuple(messages), options)

    def _stream(self, messages: tuple[Message, ...], options: GenerationOptions) -> Iterator[Chunk]:
        used = self._acquire()
        rid, inbox = used.open()
        start = time.perf_counter()
        texts = 0
        first: float | None = None
        ended = False
        failed: Failed | None = None
        try:
            used.send(Generate(rid, messages, options))
            while True:
                message = inbox.get()
                if isinstance(message, Event):
                    if message.chunk.text:
                        texts += 1
                        first = first or time.perf_counter()
                    yield message.chunk
                elif isinstance(message, Failed):
                    failed = message
                elif isinstance(message, Ended):
                    self.reports.append(message)
                    ended = True
                    break
                elif isinstance(message, _Died):
                    ended = True
                    if failed is None:
                        yield Chunk(metrics=self._interrupted(message, start, first, texts))
                    break
            if failed is not None:
                raise error_from(failed)
        finally:
            if ended:
                used.close_route(rid)
                self._release(used)
            else:  # closed early: Stop
                self._cancel(used, rid, inbox)

    def _interrupted(self, died: _Died, start: float, first: float | None, texts: int) -> Metrics:
        log.warning("The engine process for %s %s mid-answer", self.spec.id, died.description)
        end = time.perf_counter()
        note = (
            f"The engine process for {self.spec.name} {died.description} mid-answer; what arrived is kept. "
            "Ask again: a new process starts. If it happens again, pick a smaller model or free memory."
        )
        return Metrics(
            completion_tokens=texts,
            ttft_s=None if first is None else first - start,
            total_s=end - start,
            finish_reason=FinishReason.INTERRUPTED,
            estimated=True,
            note=note,
        )

    def _cancel(self, used: WorkerProcess, rid: int, inbox: queue.SimpleQueue[FromWorker | _Died]) -> None:
        """Stop: tell the worker, and free it when it has ended (kill it if it has not in time)."""
        used.send(Cancel(rid))

        def wait() -> None:
            deadline = time.monotonic() + self.grace_s
            try:
                while (left := deadline - time.monotonic()) > 0:
                    message = inbox.get(timeout=left)
                    if isinstance(message, Ended):
                        self.reports.append(message)
                    if isinstance(message, Ended | _Died):
                        return
            except queue.Empty:
                pass
            log.warning("Worker %d did not stop within %.0f s: killed", used.pid, self.grace_s)
            used.kill()

        def wait_then_release() -> None:
            try:
                wait()
            finally:
                used.close_route(rid)
                self._release(used)

        threading.Thread(target=wait_then_release, name=f"cancel-{used.pid}", daemon=True).start()

    def _call(self, method: CallMethod, *args: object) -> Any:
        with self._cond:
            target = next((w for w in self._workers if w.alive and not w.busy), None)
            target = target or next((w for w in self._workers if w.alive), None)
        borrowed = target is None
        if target is None:
            target = self._acquire()
        rid, inbox = target.open()
        try:
            target.send(Call(rid, method, args))
            reply = inbox.get()
        finally:
            target.close_route(rid)
            if borrowed:
                self._release(target)
        if isinstance(reply, Reply):
            return reply.value
        if isinstance(reply, Failed):
            raise error_from(reply)
        raise ProviderError(
            f"The engine process for {self.spec.name} {getattr(reply, 'description', 'ended')}: ask again."
        )

    def render_prompt(self, messages: Sequence[Message]) -> str | None:
        value = self._call("render_prompt", tuple(messages))
        return None if value is None else str(value)

    def count_tokens(self, text: str) -> int | None:
        value = self._call("count_tokens", text)
        return None if value is None else int(value)

    def count_prompt(self, messages: Sequence[Message]) -> int | None:
        """The prompt's tokens with its images' tokens, as the engine's processor counts them."""
        value = self._call("count_prompt", tuple(messages))
        return None if value is None else int(value)

    def close(self) -> None:
        """End every worker (their memory goes back to the system)."""
        with self._cond:
            self._closed = True
            doomed, self._workers = list(self._workers), []
            self._cond.notify_all()
        for gone in doomed:
            gone.shutdown()
            self.stats.retire(gone.counters)


def default_threads(workers: int) -> int:
    """Engine threads per worker so that `workers` workers share the machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))
