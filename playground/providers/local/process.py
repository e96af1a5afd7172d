"""Local models in worker processes: the app's side of `worker` (the messages are in `protocol`).

A `ProcessModel` is a ChatModel like any other; behind it, up to `max_workers` processes, each holding
one loaded copy of the model and generating one answer at a time. The web server's process then never
runs an engine: the engines hold the GIL for a whole token, so in one process they and the server
would take turns.

How many workers a model has is not its own decision: the registry's scheduler, which owns the memory
budget, asks for an answer on an idle worker (`run`), or on a new worker when it has room for one
(`run(start=True)`). The pool keeps its list of workers under a small lock of its own, held only to
read or change that list (never across a process start, a pipe send or a join), and never calls back
up: it cannot wait on another model. A pool whose every worker is gone starts its first one again by
itself (that one is part of the model's load, which the scheduler counts while the model is loaded).

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ... import errors
from ...errors import ModelLoadError, ModelUnavailableError, PlaygroundError, ProviderError
from ...options import GenerationOptions
from ...types import Chunk, FinishReason, Message, Metrics, ModelSpec
from ..base import Forced, WorkerInfo
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


def rebuilt(failed: Failed) -> PlaygroundError:
    """The worker's error as ours again, of the same class (the worker translated it: guard.translate)."""
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
        self._lock = threading.Lock()  # the routes only: the reader takes it to route each reply
        self._send_lock = threading.Lock()  # sends only: a send may block until the worker reads
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
            raise rebuilt(reply)
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
        """Send (a large message blocks until the worker has read it); a worker that is gone is
        reported by the reader, to every open inbox.

        Under the send lock only, never the routing lock: the reader must be free to route the
        worker's replies meanwhile, or a worker blocked sending its own reply would never read ours.
        """
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError):  # broken pipe, or closed: the reader reports the death
            pass

    def _read(self) -> None:
        """The reader thread: reads and routes, and never waits for anything else (no send lock)."""
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
        self._workers: list[WorkerProcess] = []
        self._restarting = 0  # the first worker, started again by the pool itself
        self._lost = 0  # workers gone so far (died, killed, failed to start): see workers_lost
        self._cond = threading.Condition()  # the list above; never held across a start, send or join
        self._closed = False
        self._add(self._start_worker(), busy=False)

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

    def _add(self, started: WorkerProcess, *, busy: bool) -> None:
        with self._cond:
            closed = self._closed
            if not closed:
                started.busy = busy
                self._workers.append(started)
                self.stats.add(started.counters)
            self._cond.notify_all()
        if closed:  # unloaded while it started: it goes at once
            started.shutdown()
            raise ModelUnavailableError(f"{self.spec.name} was unloaded: ask again.")

    def _start(self, *, busy: bool, restart: bool) -> WorkerProcess:
        """Start a worker (outside the lock: it takes seconds) and add it; a failure counts it lost."""
        try:
            started = self._start_worker()
        except BaseException:
            with self._cond:
                self._lost += 1
                self._restarting -= 1 if restart else 0
                self._cond.notify_all()
            raise
        with self._cond:
            self._restarting -= 1 if restart else 0
        self._add(started, busy=busy)
        return started

    def _reap(self) -> None:
        """With the lock held: dead workers that no answer holds leave the pool, counted lost."""
        for gone in [w for w in self._workers if not w.busy and not w.alive]:
            self._workers.remove(gone)
            self.stats.retire(gone.counters)
            self._lost += 1

    def _pick(self, *, take: bool, stop: threading.Event | None = None) -> WorkerProcess | None:
        """A worker: an idle one (marked busy when `take`), else (a call) any live one; else wait for
        one to be free, or, when every worker is gone, start the first one again. None: `stop` was set
        while waiting."""
        with self._cond:
            while True:
                if self._closed:
                    raise ModelUnavailableError(f"{self.spec.name} was unloaded: ask again.")
                self._reap()
                alive = [w for w in self._workers if w.alive]
                idle = next((w for w in alive if not w.busy), None)
                if idle is not None or (alive and not take):
                    chosen = idle or alive[0]
                    chosen.busy = chosen.busy or take
                    return chosen
                if not alive and not self._restarting:
                    self._restarting += 1
                    break
                if stop is not None and stop.is_set():
                    return None
                self._cond.wait(0.25)
        return self._start(busy=take, restart=True)

    def _release(self, used: WorkerProcess) -> None:
        with self._cond:
            used.busy = False
            self._reap()
            self._cond.notify_all()

    def workers(self) -> list[WorkerProcess]:
        with self._cond:
            return list(self._workers)

    def workers_lost(self) -> int:
        with self._cond:
            self._reap()
            return self._lost

    def worker_bytes(self) -> int:
        return max((w.memory_bytes() for w in self.workers() if w.alive), default=0)

    def memory_bytes(self) -> int:
        return sum(w.memory_bytes() for w in self.workers())

    def describe(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(w.pid, w.memory_bytes(), w.load_s, w.threads, w.busy)
            for w in self.workers()
            if w.alive
        ]

    # Answers

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Iterator[Chunk]:
        """The ChatModel protocol: the answer on an idle worker (waiting for one; no new workers)."""
        return self.run(messages, options)

    def run(
        self,
        messages: Sequence[Message],
        options: GenerationOptions,
        *,
        start: bool = False,
        stop: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        """The answer on an idle worker, or on a new one started for it (`start`: the scheduler's word
        that there is room). `stop` set while waiting for a worker ends it with no chunks."""
        return self._run(tuple(messages), options, start, stop)

    def _run(
        self,
        messages: tuple[Message, ...],
        options: GenerationOptions,
        start: bool,
        stop: threading.Event | None,
    ) -> Iterator[Chunk]:
        if start:
            if self._closed:
                raise ModelUnavailableError(f"{self.spec.name} was unloaded: ask again.")
            used: WorkerProcess | None = self._start(busy=True, restart=False)
        else:
            used = self._pick(take=True, stop=stop)
        if used is not None:
            yield from self._stream_on(used, messages, options)

    def _stream_on(
        self, used: WorkerProcess, messages: tuple[Message, ...], options: GenerationOptions
    ) -> Iterator[Chunk]:
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
                elif isinstance(message, Ended | _Died):
                    ended = True
                    if isinstance(message, Ended):
                        self.reports.append(message)
                    elif failed is None:
                        yield Chunk(metrics=self._interrupted(message, start, first, texts))
                    break
            if failed is not None:
                raise rebuilt(failed)
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
        """Stop: tell the worker, and free it when it has ended (kill it if it has not in time).

        The worker stays busy until then, so the next answer waits for it rather than sharing it."""
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

    # Calls: answered by any live worker, beside the answer it may be generating

    def _call(self, method: CallMethod, *args: object) -> Any:
        target = self._pick(take=False)
        assert target is not None  # no stop to end the wait
        rid, inbox = target.open()
        try:
            target.send(Call(rid, method, args))
            reply = inbox.get()
        finally:
            target.close_route(rid)
        if isinstance(reply, Reply):
            return reply.value
        if isinstance(reply, Failed):
            raise rebuilt(reply)
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

    def teacher_forced(self, text: str, limit: int) -> Forced:
        """The text fed through the model token by token: each position's log-probabilities."""
        value = self._call("teacher_forced", text, limit)
        assert isinstance(value, Forced)
        return value

    def close(self) -> None:
        """End every worker (their memory goes back to the system); joined outside the lock."""
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
