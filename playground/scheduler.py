"""The scheduler: the one owner of the memory budget, the loaded models and their workers.

Like vLLM's engine core, one owner decides and the others ask. Every decision (load a model, give an
answer a worker, start one more worker, evict, wait, refuse) is taken under ONE lock, from the
scheduler's own accounting: while it decides it never calls into a model nor takes a model's lock, so
no two models can ever wait on each other through it. What a decision needs done (load a model, close
the models it evicts, start a worker, measure memory) is done by the asking thread after it has let
go of the lock, and the result is reported back under the lock. Models never call up into it; no lock
is held across a load, a process start, a pipe send or a join.

The accounting, in bytes: a loaded local model holds one worker's size for each of its workers (at
least one while it is loaded: its first worker is part of its load); a model being loaded holds one;
models being closed hold theirs until they are closed. A worker's size is the largest resident memory
one of that model's workers was measured at (after its load and after each answer), or the catalog's
estimate before any measurement. So the workers' resident memory together stays within the budget
plus the largest single worker. Remote (cloud) models hold nothing and are never evicted.

A model is leased while someone means to use it (a request waiting for its turn included): a leased
or answering model is never evicted. Room for a load is made by closing idle local models, least
recently leased first, only when closing them frees enough; when leased models stand in the way, the
load waits for them. A model larger than the whole budget loads when it is alone.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from .errors import ModelUnavailableError, StoppedError
from .options import GenerationOptions
from .providers.base import ChatModel, WorkerPool
from .providers.guard import guarded, guarded_stream
from .types import Chunk, Message, ModelSpec

log = logging.getLogger(__name__)

WAIT_S = 0.25  # how often a waiting request looks at its stop event


@dataclass(eq=False)
class _Entry:
    """The scheduler's record of one model, loaded or loading: read and written under its lock only."""

    spec: ModelSpec
    budgeted: bool  # a local model: it holds memory and may be evicted
    model: ChatModel | None = None  # None while it loads
    guarded: ChatModel | None = None  # the model as leases hand it out: every method raises only ours
    pool: WorkerPool | None = None  # its workers, when it runs in worker processes
    max_workers: int = 1
    workers: int = 1  # workers it holds room for: live or starting (at least one while loaded)
    running: int = 0  # answers streaming (or starting) now
    leases: int = 1
    lost_seen: int = 0  # the pool's count of lost workers, as last accounted
    turns: deque[object] = field(default_factory=deque)  # answers waiting for a worker, in arrival order
    doomed: bool = False  # unloaded while leased: closed when the last lease and answer end

    @property
    def idle(self) -> bool:
        return self.model is not None and not self.leases and not self.running


@dataclass(frozen=True)
class _Admission:
    entry: _Entry
    load: bool  # this thread loads it
    evicted: tuple[_Entry, ...] = ()
    freed: int = 0  # what the evicted hold, counted as closing until they are closed


class Scheduler:
    """Loads, leases, workers and evictions of every model, within `budget_bytes` (see the module)."""

    def __init__(self, budget_bytes: int, load: Callable[[ModelSpec], ChatModel]) -> None:
        self.budget_bytes = budget_bytes
        self.loads: Counter[str] = Counter()  # loads per model id (tests read it)
        self.load_s: dict[str, float] = {}  # model id: how long its last load took (evaluation reports it)
        self._load = load
        self._cond = threading.Condition()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently leased first
        self._sizes: dict[str, int] = {}  # model id: the largest resident memory of one of its workers
        self._closing = 0  # bytes of models being closed

    # Leases

    def lease(self, spec: ModelSpec, *, budgeted: bool, stop: threading.Event | None = None) -> Lease:
        """The model held (loaded first, once, if it is not): see Registry.lease."""
        admission = self._admit(spec, budgeted, stop)
        if admission.load:
            self._close(admission.evicted, admission.freed)
            self._finish_load(admission.entry)
        return Lease(self, admission.entry)

    def _admit(self, spec: ModelSpec, budgeted: bool, stop: threading.Event | None) -> _Admission:
        """Under the lock: lease the loaded model, or decide to load it (and what to evict), or wait."""
        with self._cond:
            while True:
                entry = self._entries.get(spec.id)
                if entry is not None and entry.model is not None:
                    entry.leases += 1
                    self._entries.move_to_end(spec.id)
                    return _Admission(entry, load=False)
                if entry is None:
                    evicted = self._room_for(spec, budgeted)
                    if evicted is not None:
                        return self._reserve(_Entry(spec, budgeted), evicted)
                self._wait(stop, f"Stopped while waiting for memory to load {spec.name}.")

    def _room_for(self, spec: ModelSpec, budgeted: bool) -> list[_Entry] | None:
        """The idle models to close (least recently leased first) so that `spec` fits; None when only
        closing models that are leased, answering or loading would make room (then it waits)."""
        if not budgeted:
            return []
        free = self.budget_bytes - self._used()
        need = self._size(spec)
        chosen: list[_Entry] = []
        for entry in [e for e in self._entries.values() if e.budgeted]:
            if need <= free:
                break
            if entry.idle:
                chosen.append(entry)
                free += self._held(entry)
        if need <= free:
            return chosen
        alone = all(e in chosen for e in self._entries.values() if e.budgeted) and not self._closing
        return chosen if alone else None  # larger than the whole budget: it loads alone

    def _reserve(self, entry: _Entry, evicted: list[_Entry]) -> _Admission:
        freed = sum(self._held(e) for e in evicted)
        for gone in evicted:
            del self._entries[gone.spec.id]
        self._closing += freed
        self._entries[entry.spec.id] = entry
        return _Admission(entry, load=True, evicted=tuple(evicted), freed=freed)

    def _finish_load(self, entry: _Entry) -> None:
        """Outside the lock: load, measure, and report; a failed load leaves no trace."""
        began = time.perf_counter()
        try:
            model = self._load(entry.spec)
        except BaseException:
            with self._cond:
                if self._entries.get(entry.spec.id) is entry:
                    del self._entries[entry.spec.id]
                self._cond.notify_all()
            raise
        pool = model if isinstance(model, WorkerPool) else None
        measured, lost = (pool.worker_bytes(), pool.workers_lost()) if pool is not None else (0, 0)
        with self._cond:
            current = self._entries.get(entry.spec.id) is entry
            if current:
                entry.model, entry.pool, entry.lost_seen = model, pool, lost
                entry.guarded = guarded(model)
                entry.max_workers = pool.max_workers if pool is not None else 1
                self._measured(entry.spec.id, measured)
                self.loads[entry.spec.id] += 1
                self.load_s[entry.spec.id] = time.perf_counter() - began
            self._cond.notify_all()
        if not current:  # everything was closed while it loaded
            model.close()
            raise ModelUnavailableError(f"{entry.spec.name} was unloaded while it loaded: ask again.")

    def release(self, entry: _Entry) -> None:
        """A lease ends (Lease.release, once)."""
        with self._cond:
            entry.leases -= 1
            doomed = self._take_doomed(entry)
            self._cond.notify_all()
        self._close(*doomed)

    # Answers

    def stream(
        self,
        entry: _Entry,
        messages: Sequence[Message],
        options: GenerationOptions,
        stop: threading.Event | None,
    ) -> Iterator[Chunk]:
        """A leased model's answer: on a worker the scheduler gives it (worker pools), or as it is."""
        pool = entry.pool
        if pool is None:
            self._begin(entry)
            try:
                assert entry.model is not None
                yield from entry.model.stream(messages, options)
            finally:
                self._end(entry, lost=0, measured=0)
            return
        start = self._take_slot(entry, pool.workers_lost(), stop)
        if start is None:
            return  # stopped while waiting for a worker: no answer
        try:
            yield from pool.run(messages, options, start=start, stop=stop)
        finally:
            self._end(entry, pool.workers_lost(), pool.worker_bytes())

    def _begin(self, entry: _Entry) -> None:
        with self._cond:
            self._require(entry)
            entry.running += 1

    def _take_slot(self, entry: _Entry, lost: int, stop: threading.Event | None) -> bool | None:
        """Under the lock, in arrival order: an idle worker (False), room for a new one (True: it
        never evicts anything), or wait. None: `stop` was set while waiting."""
        turn = object()
        with self._cond:
            self._require(entry)
            self._sync(entry, lost)
            entry.turns.append(turn)
            try:
                while True:
                    if entry.turns[0] is turn:
                        if entry.running < entry.workers:
                            entry.running += 1
                            return False
                        if entry.workers < entry.max_workers and self._fits(self._size(entry.spec)):
                            entry.running += 1
                            entry.workers += 1
                            return True
                    if stop is not None and stop.is_set():
                        return None
                    self._cond.wait(WAIT_S)
            finally:
                entry.turns.remove(turn)
                self._cond.notify_all()

    def _end(self, entry: _Entry, lost: int, measured: int) -> None:
        """An answer ended (its worker measured, and the pool's losses counted, outside the lock)."""
        with self._cond:
            entry.running -= 1
            self._sync(entry, lost)
            self._measured(entry.spec.id, measured)
            doomed = self._take_doomed(entry)
            self._cond.notify_all()
        self._close(*doomed)

    # What the registry asks

    def is_loaded(self, model_id: str) -> bool:
        with self._cond:
            entry = self._entries.get(model_id)
            return entry is not None and entry.model is not None

    def loaded(self) -> list[ChatModel]:
        """The loaded models, least recently leased first."""
        with self._cond:
            return [e.model for e in self._entries.values() if e.model is not None]

    def busy(self, model_id: str) -> bool:
        """Whether the model is leased or answering (then it is not evicted, and unload waits)."""
        with self._cond:
            entry = self._entries.get(model_id)
            return entry is not None and not entry.idle

    def memory_bytes(self, model_id: str) -> int:
        """What a loaded model holds: its workers' resident memory, or the scheduler's estimate."""
        with self._cond:
            entry = self._entries.get(model_id)
            held = 0 if entry is None else self._held(entry)
            pool = None if entry is None else entry.pool
        measured = pool.memory_bytes() if pool is not None else 0  # outside the lock
        return measured or held

    def unload(self, model_id: str) -> None:
        """Close a model now when it is idle; a leased one is closed when its last lease and answer end."""
        with self._cond:
            entry = self._entries.get(model_id)
            if entry is None or entry.model is None:
                return
            entry.doomed = True
            doomed = self._take_doomed(entry)
        self._close(*doomed)

    def close_all(self) -> None:
        with self._cond:
            entries = list(self._entries.values())
            self._entries.clear()
            self._cond.notify_all()
        for entry in entries:
            if entry.model is not None:
                entry.model.close()

    # Accounting (every method below runs with the lock held)

    def _size(self, spec: ModelSpec) -> int:
        return self._sizes.get(spec.id) or spec.size_bytes

    def _held(self, entry: _Entry) -> int:
        return self._size(entry.spec) * entry.workers if entry.budgeted else 0

    def _used(self) -> int:
        return sum(self._held(e) for e in self._entries.values()) + self._closing

    def _fits(self, extra: int) -> bool:
        return self._used() + extra <= self.budget_bytes

    def _measured(self, model_id: str, size: int) -> None:
        if size > self._sizes.get(model_id, 0):
            self._sizes[model_id] = size

    def _sync(self, entry: _Entry, lost: int) -> None:
        """A pool's lost workers leave the accounting (a dead worker never blocks new ones)."""
        if lost > entry.lost_seen:
            entry.workers = max(1, entry.workers - (lost - entry.lost_seen))
            entry.lost_seen = lost

    def _require(self, entry: _Entry) -> None:
        if self._entries.get(entry.spec.id) is not entry:
            raise ModelUnavailableError(f"{entry.spec.name} was unloaded: ask again.")

    def _take_doomed(self, entry: _Entry) -> tuple[tuple[_Entry, ...], int]:
        """An unloaded model whose last lease and answer have ended leaves now: what to close, and
        what it holds (counted as closing until it is closed)."""
        if not (entry.doomed and entry.idle and self._entries.get(entry.spec.id) is entry):
            return (), 0
        del self._entries[entry.spec.id]
        freed = self._held(entry)
        self._closing += freed
        return (entry,), freed

    def _wait(self, stop: threading.Event | None, message: str) -> None:
        if stop is not None and stop.is_set():
            raise StoppedError(message)
        self._cond.wait(WAIT_S)

    # Acting, outside the lock

    def _close(self, entries: Sequence[_Entry], freed: int) -> None:
        """Close evicted or unloaded models (their processes joined), then free what they held. A model
        that fails to close is logged: the load that evicted it goes on."""
        for entry in entries:
            try:
                if entry.model is not None:
                    entry.model.close()
            except Exception:
                log.exception("Closing %s failed", entry.spec.id)
        if entries:
            with self._cond:
                self._closing -= freed
                self._cond.notify_all()


class Lease:
    """A hold on a loaded model: while it is held the model is never evicted. A context manager;
    `release()` may be called any number of times, from any thread (a lease dropped unreleased is
    released when it is garbage-collected)."""

    def __init__(self, scheduler: Scheduler, entry: _Entry) -> None:
        assert entry.model is not None
        self.spec: ModelSpec = entry.spec
        assert entry.guarded is not None
        self.model: ChatModel = entry.guarded  # every method raises only our errors (providers/guard)
        self.engine: ChatModel = entry.model  # the model itself, for a test that reaches inside it
        self._scheduler = scheduler
        self._entry = entry
        self._finalizer = weakref.finalize(self, _release_later, scheduler, entry)
        self._finalizer.atexit = False

    def __repr__(self) -> str:
        return f"<Lease {self.spec.id}{' released' if self.released else ''}>"

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions, *, stop: threading.Event | None = None
    ) -> Generator[Chunk, None, None]:
        """The model's answer. A worker-process model first takes a run slot from the scheduler: an
        idle worker, else a new worker when the model has fewer than its maximum and the budget has
        room for one without evicting anything, else it waits in arrival order (`stop` set while it
        waits: the iterator ends with no chunks). The slot is given back when the stream ends or is
        closed (closing it also cancels the engine). In-process models answer at once, any number at
        a time."""
        return guarded_stream(self.spec, self._scheduler.stream(self._entry, tuple(messages), options, stop))

    @property
    def released(self) -> bool:
        return not self._finalizer.alive

    def release(self) -> None:
        if self._finalizer.detach() is not None:  # only the first call gets it, whatever the thread
            self._scheduler.release(self._entry)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


def _release_later(scheduler: Scheduler, entry: _Entry) -> None:
    """A lease collected unreleased: released from a thread of its own, as the garbage collector may
    run this anywhere (even in a thread that holds the scheduler's lock)."""
    threading.Thread(target=scheduler.release, args=(entry,), name="lease-release", daemon=True).start()
