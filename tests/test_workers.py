"""Local engines in worker processes: the same answers as in-process, Stop within one token, a killed
worker ends one answer as interrupted, parallel answers, leases under a small budget, errors as `error`.

All on the embedded model through real engines and real processes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from playground.answers import Event, Finished, Recording, Request, Started, Text, Waiting
from playground.context import AppContext
from playground.errors import ProviderError, StoppedError
from playground.options import GenerationOptions
from playground.providers.local.process import ProcessModel
from playground.types import FinishReason, Message
from tests.support import QUESTION, loaded, make_settings

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
GREEDY = GenerationOptions(temperature=0, max_new_tokens=48)
SHORT = GenerationOptions(temperature=0, max_new_tokens=40)
LONG = GenerationOptions(temperature=0.8, seed=3, max_new_tokens=1500)
STORY = [Message("user", "Write a very long story about a lighthouse keeper and the sea.")]


def worker_model(ctx: AppContext, model_id: str) -> ProcessModel:
    model = loaded(ctx.registry, model_id)
    assert isinstance(model, ProcessModel), "local models run in worker processes by default"
    return model


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("model_id", [ONNX, HF])
def test_worker_answers_as_the_engine_in_process(
    ctx: AppContext, in_process: Callable[..., Any], model_id: str
) -> None:
    """Greedy text, the streamed deltas one by one, and the token counts are those of the engine itself."""
    model = worker_model(ctx, model_id)
    engine = in_process(model_id, model.threads)  # the same thread count as the workers
    messages = [Message("user", QUESTION)]
    with ctx.registry.lease(model.spec) as lease:
        ours = list(lease.stream(messages, GREEDY))
    theirs = list(engine.stream(messages, GREEDY))
    assert [c.text for c in ours] == [c.text for c in theirs]
    assert "Paris" in "".join(c.text for c in ours)
    mine, engines = ours[-1].metrics, theirs[-1].metrics
    assert mine is not None and engines is not None
    assert (mine.prompt_tokens, mine.completion_tokens, mine.finish_reason) == (
        engines.prompt_tokens,
        engines.completion_tokens,
        engines.finish_reason,
    )
    assert model.render_prompt(messages) == engine.render_prompt(messages)
    assert model.count_tokens("The capital of France") == engine.count_tokens("The capital of France")
    workers = model.describe()
    assert workers and all(w.pid != os.getpid() and w.memory_bytes > 0 for w in workers)


@pytest.mark.parametrize("model_id", [ONNX, HF])
def test_stop_ends_the_worker_within_one_token(ctx: AppContext, model_id: str) -> None:
    """Counted in the worker: after it receives the Stop, its engine makes at most one more token."""
    model = worker_model(ctx, model_id)
    lease = ctx.registry.lease(model.spec)
    stream = lease.stream(STORY, LONG)
    texts = 0
    for chunk in stream:
        texts += bool(chunk.text)
        if texts == 5:
            break
    before = model.reports[-1] if model.reports else None  # the last 64 are kept: compare, not count
    stream.close()
    lease.release()
    assert wait_for(lambda: bool(model.reports) and model.reports[-1] is not before), (
        "the worker never reported the end of the answer"
    )
    report = model.reports[-1]
    assert report.after_cancel <= 1, f"{report.after_cancel} tokens after the worker received the Stop"
    assert report.tokens < 100, "the answer ran on"
    assert wait_for(lambda: model.stats.running == 0)
    count = model.stats.tokens_generated
    time.sleep(0.5)
    assert model.stats.tokens_generated == count, "tokens were produced after Stop"


def test_killed_worker_ends_the_answer_interrupted_and_the_next_gets_a_new_one(ctx: AppContext) -> None:
    model = worker_model(ctx, ONNX)
    owner = "a" * 32
    conversation = ctx.conversations.ask(owner, None, "Tell me a long story.", ONNX)
    record = Recording(ctx.history.conversations, owner, conversation)
    answer = ctx.answers.ask(Request(ONNX, STORY, LONG, record=record))
    texts = 0
    for event in answer:
        texts += isinstance(event, Text)
        if texts == 8:
            busy = [w for w in model.workers() if w.busy]
            assert len(busy) == 1
            os.kill(busy[0].pid, signal.SIGKILL)
            victim = busy[0].pid
            break
    rest = list(answer)  # what was in the pipe, then the end
    ended = rest[-1]
    assert isinstance(ended, Finished) and ended.reason == FinishReason.INTERRUPTED
    assert "SIGKILL" in ended.metrics.note and "Ask again" in ended.metrics.note
    stored = ctx.history.conversations.get_conversation(owner, conversation).messages[-1]
    assert stored.finish_reason == FinishReason.INTERRUPTED and len(stored.text) > 10
    assert stored.text.endswith("".join(e.text for e in rest if isinstance(e, Text)))
    # the app is up, and the next request gets a fresh worker
    assert "Paris" in ctx.answers.complete(Request(ONNX, [Message("user", QUESTION)], GREEDY)).text
    assert victim not in [w.pid for w in model.workers()]


def _timeline(answer: Iterator[Event], marks: list[tuple[str, float]], name: str) -> None:
    for event in answer:
        if isinstance(event, Text):
            marks.append((name, time.monotonic()))
    marks.append((f"{name}:end", time.monotonic()))


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppContext]:
    """An app of its own: the session's shared one may have filled its memory budget with the other
    tests' models by now, and then a model gets no second worker (it waits for the first, by design)."""
    context = AppContext.create(make_settings(tmp_path_factory.mktemp("roomy")))
    yield context
    context.close()


@pytest.mark.parametrize("pair", [(ONNX, ONNX), (ONNX, HF)], ids=["onnx+onnx", "onnx+transformers"])
def test_two_answers_at_once_make_progress_together(roomy: AppContext, pair: tuple[str, str]) -> None:
    ctx = roomy
    options = GenerationOptions(temperature=0, max_new_tokens=120)
    for model_id in pair:  # both loaded first: neither streams while the other is still loading
        loaded(ctx.registry, model_id)
    streams = [ctx.answers.ask(Request(model_id, STORY, options)) for model_id in pair]
    marks: list[tuple[str, float]] = []
    threads = [threading.Thread(target=_timeline, args=(s, marks, f"side{i}")) for i, s in enumerate(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    order = [name for name, _ in sorted(marks, key=lambda m: m[1])]
    first_end = min(i for i, name in enumerate(order) if name.endswith(":end"))
    before = set(order[:first_end])
    assert before == {"side0", "side1"}, "one side waited for the other to finish"
    if pair[0] == pair[1]:
        pids = {w.pid for w in worker_model(ctx, pair[0]).workers()}
        assert len(pids) == 2, "two answers from one model ran in two workers"


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppContext]:
    """An app whose model budget holds one small model at a time."""
    settings = make_settings(tmp_path_factory.mktemp("tight"), PLAYGROUND_MODEL_CACHE_MB="300")
    context = AppContext.create(settings)
    yield context
    context.close()


def test_a_model_is_never_evicted_mid_answer(tight: AppContext) -> None:
    answer = tight.answers.ask(Request(ONNX, STORY, LONG.model_copy(update={"max_new_tokens": 300})))
    assert any(isinstance(event, Text) for event in answer), "it streams"
    onnx = worker_model(tight, ONNX)
    stopped = threading.Event()
    stopped.set()  # the load would wait for the answer to end: a visitor who pressed Stop does not
    with pytest.raises(StoppedError, match="waiting for memory"):
        tight.registry.lease(tight.registry.resolve(HF), stop=stopped)
    assert onnx.workers() and all(w.alive for w in onnx.workers()), "the streaming model was closed"
    rest = list(answer)
    assert isinstance(rest[-1], Finished) and rest[-1].reason == FinishReason.LENGTH
    pids = [w.pid for w in onnx.workers()]
    with tight.registry.lease(tight.registry.resolve(HF)) as hf:  # ONNX is idle now: evicted for room
        assert [m.spec.id for m in tight.registry.loaded()] == [HF]
        assert wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), 10), "workers left"
        assert "Paris" in "".join(c.text for c in hf.stream([Message("user", QUESTION)], GREEDY))


@pytest.mark.parametrize("processes", ["1", "0"], ids=["worker", "in-process"])
def test_engine_errors_become_ours_and_are_recorded_as_error(tmp_path: Path, processes: str) -> None:
    """On both engines, in a worker or in this process, through the one translation (providers/guard):
    ONNX Runtime GenAI refusing an over-long prompt in its loop, and transformers' chat template failing
    on an empty conversation while the request is prepared (a ValueError, not one of ours): each is a
    ProviderError with the engine's words, and through the pipeline an answer stored as `error`."""
    context = AppContext.create(make_settings(tmp_path, PLAYGROUND_ENGINE_PROCESSES=processes))
    try:
        with context.registry.lease(context.registry.resolve(ONNX)) as lease:
            assert isinstance(lease.engine, ProcessModel) == (processes == "1")
            with pytest.raises(ProviderError, match="exceeds max length"):
                list(lease.stream([Message("user", "word " * 9000)], SHORT))
        owner = "b" * 32
        conversation = context.conversations.ask(owner, None, "a question", HF)
        record = Recording(context.history.conversations, owner, conversation)
        events = list(context.answers.ask(Request(HF, [], SHORT, record=record)))
        assert any(isinstance(e, Started) for e in events) and isinstance(events[-1], Finished)
        assert events[-1].reason == FinishReason.ERROR
        assert "transformers failed on SmolLM2-135M-Instruct" in events[-1].error, events[-1].error
        stored = context.history.conversations.get_conversation(owner, conversation).messages[-1]
        assert stored.role == "assistant" and stored.finish_reason == FinishReason.ERROR
        assert str((stored.metrics or {}).get("error")) == events[-1].error
    finally:
        context.close()


def test_engine_error_mid_stream_is_recorded_as_error(tmp_path: Path) -> None:
    """In-process, a real engine whose tokenizer fails after a few tokens: a foreign exception mid-answer
    is stored as `error` with its message, the text so far kept (workers send the same as Failed)."""
    context = AppContext.create(make_settings(tmp_path, PLAYGROUND_ENGINE_PROCESSES="0"))
    try:
        model = loaded(context.registry, HF)
        decode, calls = model._tokenizer.decode, [0]

        def failing(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] > 6:
                raise ValueError("the tokenizer broke")
            return decode(*args, **kwargs)

        model._tokenizer.decode = failing
        owner = "c" * 32
        conversation = context.conversations.ask(owner, None, "story", HF)
        record = Recording(context.history.conversations, owner, conversation)
        result = context.answers.complete(Request(HF, STORY, SHORT, record=record))
        assert result.reason == FinishReason.ERROR and "the tokenizer broke" in result.error
        stored = context.history.conversations.get_conversation(owner, conversation).messages[-1]
        assert stored.finish_reason == FinishReason.ERROR and stored.text == result.text and result.text
        assert "the tokenizer broke" in str((stored.metrics or {}).get("error"))
    finally:
        context.close()


def test_models_tab_lists_workers_and_unloads_them(tight: AppContext) -> None:
    from playground.models_service import ModelManager
    from playground.ui.models_tab import current, loaded_rows, unload

    model = worker_model(tight, ONNX)
    pids = [w.pid for w in model.workers()]
    rows = loaded_rows(ModelManager(tight))
    row = next(r for r in rows if r[0] == ONNX)
    assert row[2] == "idle" and str(pids[0]) in row[4]
    assert f"of up to {model.max_workers}" in row[4]
    assert ONNX in current(tight)[-1].choices[0], "picked from the loaded models, not typed"
    message, rows, picker = unload(tight, ONNX)
    assert message.startswith("⏏ Unloaded") and all(r[0] != ONNX for r in rows)
    assert ONNX not in [c[0] for c in picker.choices]
    assert wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), 10)
    message, _, _ = unload(tight, ONNX)
    assert "is not loaded" in message
    assert "Pick a loaded model" in unload(tight, None)[0]


def test_the_page_is_told_when_a_model_is_loading(tmp_path: Path) -> None:
    context = AppContext.create(make_settings(tmp_path))
    try:
        spec = context.registry.resolve(ONNX)
        notice = context.chat.loading_notice(spec)
        assert notice is not None and notice.startswith("Loading SmolLM2") and "ONNX Runtime GenAI" in notice
        first = list(context.answers.ask(Request(ONNX, [Message("user", QUESTION)], GREEDY)))
        assert isinstance(first[0], Waiting) and first[0].notice == f"⏳ {notice}", "the page is told"
        assert isinstance(first[1], Started) and "loaded in" in first[1].notice
        assert context.chat.loading_notice(spec) is None
    finally:
        context.close()
