"""The scheduler: one owner of the memory budget, the loaded models and their workers.

No lock of one model is ever waited for on behalf of another; no pipe wedges under large messages;
the workers' memory stays within the budget (plus one worker); a leased model is never evicted and an
evicted one comes back; in-process models go through the same scheduler. All on the embedded model,
through real engines and real processes. Every test that could block runs its body under a watchdog
that fails it after WATCHDOG_S seconds instead of hanging pytest.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from playground.answers import Answer, Event, Finished, Request, Text
from playground.catalog import load_catalog
from playground.context import AppContext
from playground.errors import StoppedError
from playground.options import GenerationOptions
from playground.providers import build_providers
from playground.providers.local.process import ProcessModel
from playground.registry import Registry
from playground.scheduler import Lease
from playground.types import Chunk, FinishReason, Message
from tests.support import QUESTION, loaded, make_settings

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
WATCHDOG_S = 30.0
SHORT = GenerationOptions(temperature=0, max_new_tokens=24)
STORY = [Message("user", "Write a very long story about a lighthouse keeper and the sea.")]
LONG = GenerationOptions(temperature=0.8, seed=5, max_new_tokens=400)
ASK = [Message("user", QUESTION)]
MB = 10**6

T = TypeVar("T")


def within(seconds: float, body: Callable[[], T], what: str) -> T:
    """`body()` in a thread of its own; the test fails (instead of hanging) when it has not returned
    in time. What it raised is raised here."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = body()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"watched: {what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"hung: {what} did not finish within {seconds:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def registry_for(tmp_path: Path, budget_mb: int, **env: str) -> Registry:
    settings = make_settings(tmp_path, **env)
    return Registry(build_providers(settings, load_catalog()), cache_budget_bytes=budget_mb * MB)


def text_of(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks)


def answer(lease: Lease, messages: list[Message] = ASK, options: GenerationOptions = SHORT) -> list[Chunk]:
    return list(lease.stream(messages, options))


def finished(chunks: list[Chunk]) -> bool:
    metrics = chunks[-1].metrics if chunks else None
    return metrics is not None and metrics.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)


# 1. No model waits on another model's lock


def test_a_model_holding_its_pool_lock_never_blocks_another_models_worker_or_load(tmp_path: Path) -> None:
    """Model X's pool lock is held (as a thread inside X would hold it) while model Y starts a second
    worker and then loads again: neither needs X's lock. Through the chat service only, so that the
    same test runs on the code before the scheduler, where it hung (Y asked the budget for room, which
    read X's memory under X's lock)."""
    ctx = AppContext.create(make_settings(tmp_path, PLAYGROUND_ENGINE_WORKERS="2"))
    free = threading.Event()
    try:
        x = loaded(ctx.registry, HF)
        assert isinstance(x, ProcessModel)
        ctx.chat.preview(ONNX, ASK, SHORT)  # Y loaded, with its first worker
        held = threading.Event()

        def hold_x() -> None:
            with x._cond:
                held.set()
                free.wait(2 * WATCHDOG_S)

        threading.Thread(target=hold_x, name="holds X", daemon=True).start()
        assert held.wait(5)

        def two_answers_on_y() -> list[list[Event]]:
            answers = [ctx.answers.ask(Request(ONNX, STORY, SHORT)) for _ in range(2)]
            started = [list(until_text(a)) for a in answers]  # both started: the second on a second worker
            return [[*first, *answer] for first, answer in zip(started, answers, strict=True)]

        answers = within(WATCHDOG_S, two_answers_on_y, "two answers at once on Y while X's lock is held")
        assert all(ended_well(a) for a in answers)
        y = loaded(ctx.registry, ONNX)
        assert isinstance(y, ProcessModel) and len(y.workers()) == 2, "Y started a second worker"

        ctx.registry.unload(ONNX)

        def load_y_again() -> str:
            return ctx.answers.complete(Request(ONNX, ASK, SHORT)).text

        assert "Paris" in within(WATCHDOG_S, load_y_again, "loading Y while X's lock is held")
    finally:
        free.set()
        ctx.close()


def until_text(answer: Answer) -> Iterator[Event]:
    """An answer's events up to and including its first text (the engine has started)."""
    for event in answer:
        yield event
        if isinstance(event, Text | Finished):
            return


def ended_well(events: list[Event]) -> bool:
    return isinstance(events[-1], Finished) and events[-1].reason in (FinishReason.STOP, FinishReason.LENGTH)


# 2. Large messages and slow calls never wedge a worker's pipe


def test_large_renders_beside_streaming_answers_never_wedge_the_pipe(tmp_path: Path) -> None:
    """Four 2 MB prompts rendered at once by a worker that is streaming two answers: every render
    returns its 2 MB, every answer ends."""
    registry = registry_for(tmp_path, 8000, PLAYGROUND_ENGINE_WORKERS="2")
    try:
        with registry.lease(registry.resolve(ONNX)) as lease:
            big = [Message("user", "word " * 400_000)]  # 2 MB of text each way
            answers: list[list[Chunk]] = [[], []]
            renders: list[str | None] = [None] * 4
            started = threading.Barrier(3)

            def stream(i: int) -> None:
                for chunk in lease.stream(STORY, GenerationOptions(temperature=0, max_new_tokens=120)):
                    answers[i].append(chunk)
                    if len(answers[i]) == 2:
                        started.wait(WATCHDOG_S)

            def render(i: int) -> None:
                renders[i] = lease.model.render_prompt(big)

            def storm() -> None:
                streams = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(2)]
                for t in streams:
                    t.start()
                started.wait(WATCHDOG_S)  # both answers are streaming now
                calls = [threading.Thread(target=render, args=(i,), daemon=True) for i in range(4)]
                for t in calls:
                    t.start()
                for t in calls + streams:
                    t.join()

            within(WATCHDOG_S, storm, "four 2 MB renders while two answers stream")
            assert all(r is not None and len(r) > 2 * MB for r in renders)
            assert all(finished(a) for a in answers), "an answer did not end"
    finally:
        registry.close_all()


def test_stop_during_a_slow_call_stops_the_answer_at_once(tmp_path: Path) -> None:
    """A Cancel reaches the engine while the worker computes a slow call (transformers counts 2 MB of
    prompt in about a second): the engine makes at most a token or two after the app sent it."""
    registry = registry_for(tmp_path, 8000, PLAYGROUND_ENGINE_WORKERS="1")
    try:
        with registry.lease(registry.resolve(HF)) as lease:
            model = lease.engine
            assert isinstance(model, ProcessModel)
            big = [Message("user", "word " * 400_000)]

            def stop_during_a_call() -> tuple[int, int]:
                stream = iter(lease.stream(STORY, LONG))
                for _ in range(3):
                    next(stream)
                counting = threading.Thread(target=model.count_prompt, args=(big,), daemon=True)
                counting.start()
                time.sleep(0.3)  # the call is computing in the worker now (it takes about a second)
                before = model.reports[-1] if model.reports else None
                at_stop = model.stats.tokens_generated
                stream.close()  # sends Cancel
                while not model.reports or model.reports[-1] is before:
                    time.sleep(0.01)
                after_stop = model.stats.tokens_generated - at_stop
                counting.join()
                return after_stop, model.reports[-1].after_cancel

            after_stop, after_cancel = within(WATCHDOG_S, stop_during_a_call, "Stop during a slow call")
            assert after_cancel <= 1, f"{after_cancel} tokens after the worker received the Cancel"
            assert after_stop <= 3, f"{after_stop} tokens after Stop: the Cancel waited behind the call"
    finally:
        registry.close_all()


# 3. The memory budget holds, and settles


class RssSampler:
    """Every 100 ms: the resident memory of every worker of the registry's models, together (workers
    being closed included: a pid seen once is counted for as long as it lives)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.pids: set[int] = set()
        self.peak_total = 0
        self.peak_worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for model in self.registry.loaded():
                if isinstance(model, ProcessModel):
                    self.pids.update(w.pid for w in model.workers())
            sizes = [_rss(pid) for pid in list(self.pids)]
            self.peak_total = max(self.peak_total, sum(sizes))
            self.peak_worker = max([self.peak_worker, *sizes])


def _rss(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def _rounds(registry: Registry, rounds: int, per_model: int) -> list[Counter[str]]:
    """Rounds of answers at once (`per_model` to each of the two models, each leased as it is asked),
    each round under the watchdog; the loads of each round. Every answer must end."""
    specs = [registry.resolve(ONNX), registry.resolve(HF)] * per_model

    def one_round() -> Counter[str]:
        before = Counter(registry.loads)
        results: list[list[Chunk]] = [[] for _ in specs]

        def ask(i: int) -> None:
            with registry.lease(specs[i]) as lease:
                results[i] = answer(lease, ASK, GenerationOptions(temperature=0, max_new_tokens=16))

        threads = [threading.Thread(target=ask, args=(i,), daemon=True) for i in range(len(specs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(finished(r) for r in results), "an answer did not end"
        return Counter(registry.loads) - before

    return [within(WATCHDOG_S, one_round, f"round {n + 1} of {len(specs)} answers") for n in range(rounds)]


def test_workers_memory_stays_within_the_budget_plus_one_worker(tmp_path: Path) -> None:
    """500 MB, ONNX (about 250 MB a worker) and transformers (about 1 GB: more than the budget, so it
    loads alone): up to two workers each, four answers at once, three rounds."""
    registry = registry_for(tmp_path, 500, PLAYGROUND_ENGINE_WORKERS="2")
    try:
        with RssSampler(registry) as sampler:
            loads = _rounds(registry, 3, 2)
        bound = registry.cache_budget_bytes + sampler.peak_worker
        assert sampler.peak_worker > 0 and len(sampler.pids) >= 2
        assert sampler.peak_total <= bound, (
            f"workers held {sampler.peak_total / MB:.0f} MB at once; budget {registry.cache_budget_bytes / MB:.0f}"
            f" MB + largest worker {sampler.peak_worker / MB:.0f} MB"
        )
        assert all(count <= 1 for round_ in loads for count in round_.values()), loads
    finally:
        registry.close_all()


def test_models_that_fit_together_are_loaded_once(tmp_path: Path) -> None:
    """A budget of two ONNX workers and one transformers worker, as measured: three rounds of four
    answers at once load each model once (nothing is evicted, nothing reloaded), and ONNX gets its
    second worker."""
    registry = registry_for(tmp_path, 8000, PLAYGROUND_ENGINE_WORKERS="2")
    try:
        sizes = {}
        for model_id in (ONNX, HF):
            with registry.lease(registry.resolve(model_id)):
                sizes[model_id] = registry.memory_bytes(model_id)
        registry.scheduler.budget_bytes = 2 * sizes[ONNX] + sizes[HF] + 100 * MB  # room for measuring noise
        _rounds(registry, 3, 2)
        assert registry.loads == Counter({ONNX: 1, HF: 1})
        onnx = next(m for m in registry.loaded() if m.spec.id == ONNX)
        assert isinstance(onnx, ProcessModel) and len(onnx.workers()) == 2
    finally:
        registry.close_all()


def test_a_dead_worker_leaves_the_accounting(tmp_path: Path) -> None:
    """Room for exactly two ONNX workers: one is killed mid-answer; afterwards two answers at once
    still get two workers (the dead one holds no room), and both end."""
    registry = registry_for(tmp_path, 8000, PLAYGROUND_ENGINE_WORKERS="2")
    spec = registry.resolve(ONNX)
    try:
        with registry.lease(spec) as lease:
            model = lease.engine
            assert isinstance(model, ProcessModel)
            registry.scheduler.budget_bytes = int(2.5 * registry.memory_bytes(ONNX))

            def kill_mid_answer() -> list[Chunk]:
                chunks, stream = [], iter(lease.stream(STORY, LONG))
                for chunk in stream:
                    chunks.append(chunk)
                    if len(chunks) == 3:
                        next(w for w in model.workers() if w.busy).kill()
                return chunks

            killed = within(WATCHDOG_S, kill_mid_answer, "an answer whose worker is killed")
            assert (
                killed[-1].metrics is not None
                and killed[-1].metrics.finish_reason == FinishReason.INTERRUPTED
            )

            def two_at_once() -> list[list[Chunk]]:
                streams = [iter(lease.stream(STORY, SHORT)) for _ in range(2)]
                firsts = [next(s) for s in streams]  # both answering at once: two live workers
                return [[f, *s] for f, s in zip(firsts, streams, strict=True)]

            answers = within(WATCHDOG_S, two_at_once, "two answers after a worker died")
            assert all(finished(a) for a in answers)
            assert len([w for w in model.workers() if w.alive]) == 2
    finally:
        registry.close_all()


# 4 and 5. Leases, eviction and reload, in worker processes and in-process


@pytest.mark.parametrize("processes", ["1", "0"], ids=["worker", "in-process"])
def test_a_leased_model_is_never_evicted_and_an_evicted_one_comes_back(
    tmp_path: Path, processes: str
) -> None:
    """300 MB: ONNX fits, transformers (larger than the budget) only alone. ONNX leased as a request
    waiting in a provider's line holds it: the transformers load waits (or, stopped, raises
    StoppedError) and ONNX stays; once released, ONNX is evicted for it, and reloads on its next
    lease."""
    registry = registry_for(tmp_path, 300, PLAYGROUND_ENGINE_PROCESSES=processes)
    onnx, hf = registry.resolve(ONNX), registry.resolve(HF)
    try:
        waiting = registry.lease(onnx)  # in line, not streaming
        stopped = threading.Event()
        stopped.set()
        with pytest.raises(StoppedError, match="waiting for memory"):
            registry.lease(hf, stop=stopped)
        later = threading.Event()
        threading.Timer(0.5, later.set).start()
        started = time.monotonic()
        with pytest.raises(StoppedError):
            within(WATCHDOG_S, lambda: registry.lease(hf, stop=later), "a load stopped while it waits")
        assert 0.4 < time.monotonic() - started < 5

        got: list[Lease] = []
        loader = threading.Thread(target=lambda: got.append(registry.lease(hf)), daemon=True)
        loader.start()
        loader.join(1.5)
        assert loader.is_alive(), "the load did not wait for the leased model"
        assert registry.is_loaded(ONNX) and not registry.is_loaded(HF)
        assert "Paris" in text_of(answer(waiting)), "the leased model answers, never evicted"
        waiting.release()
        loader.join(WATCHDOG_S)
        assert not loader.is_alive() and got, "the load never went ahead after the lease ended"
        assert [m.spec.id for m in registry.loaded()] == [HF], "ONNX, idle, was evicted for it"
        with got[0] as lease:
            assert text_of(answer(lease))
        with registry.lease(onnx) as again:  # evicted idle: loaded again on its next lease
            assert "Paris" in text_of(answer(again))
        assert registry.loads[ONNX] == 2 and registry.loads[HF] == 1
    finally:
        registry.close_all()


def test_in_process_answers_are_not_limited_to_one_at_a_time(tmp_path: Path) -> None:
    """In-process models go through the same leases, but two answers of one model stream together."""
    registry = registry_for(tmp_path, 8000, PLAYGROUND_ENGINE_PROCESSES="0")
    try:
        with registry.lease(registry.resolve(ONNX)) as lease:
            assert not isinstance(lease.engine, ProcessModel)
            marks: list[str] = []

            def both() -> None:
                def side(name: str) -> None:
                    for chunk in lease.stream(STORY, GenerationOptions(temperature=0, max_new_tokens=60)):
                        if chunk.text:
                            marks.append(name)
                    marks.append(f"{name}:end")

                sides = [threading.Thread(target=side, args=(n,), daemon=True) for n in ("a", "b")]
                for t in sides:
                    t.start()
                for t in sides:
                    t.join()

            within(WATCHDOG_S, both, "two in-process answers at once")
            first_end = min(i for i, m in enumerate(marks) if m.endswith(":end"))
            assert set(marks[:first_end]) == {"a", "b"}, "one answer waited for the other"
            assert registry.busy(ONNX)
        assert not registry.busy(ONNX)
    finally:
        registry.close_all()


def test_unload_of_a_leased_model_waits_for_its_last_lease(tmp_path: Path) -> None:
    """Unload closes an idle model at once; a leased one is closed when its last lease ends."""
    registry = registry_for(tmp_path, 8000)
    onnx = registry.resolve(ONNX)
    try:
        lease = registry.lease(onnx)
        model = lease.engine
        assert isinstance(model, ProcessModel)
        pids = [w.pid for w in model.workers()]
        registry.unload(ONNX)
        assert registry.is_loaded(ONNX) and "Paris" in text_of(answer(lease))
        lease.release()
        lease.release()  # idempotent
        assert not registry.is_loaded(ONNX)
        assert not any(psutil.pid_exists(pid) and _rss(pid) for pid in pids), "its workers were left"
    finally:
        registry.close_all()
