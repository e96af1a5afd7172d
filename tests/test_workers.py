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

from playground.context import AppContext
from playground.errors import ProviderError, StoppedError
from playground.options import GenerationOptions
from playground.providers.local.process import ProcessModel
from playground.types import Chunk, FinishReason, Message
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
    prepared = ctx.chat.prepare(ONNX, STORY, LONG)
    stream = ctx.conversations.record(owner, conversation, prepared, ctx.chat.stream(prepared))
    chunks: list[Chunk] = []
    for chunk in stream:
        chunks.append(chunk)
        if len([c for c in chunks if c.text]) == 8:
            busy = [w for w in model.workers() if w.busy]
            assert len(busy) == 1
            os.kill(busy[0].pid, signal.SIGKILL)
            victim = busy[0].pid
            break
    chunks += list(stream)  # the rest: what was in the pipe, then the end
    metrics = chunks[-1].metrics
    assert metrics is not None and metrics.finish_reason == FinishReason.INTERRUPTED
    assert "SIGKILL" in metrics.note and "Ask again" in metrics.note
    partial = "".join(c.text for c in chunks)
    assert len(partial) > 10
    stored = ctx.history.get_conversation(owner, conversation).messages[-1]
    assert stored.finish_reason == FinishReason.INTERRUPTED and stored.text == partial
    # the app is up, and the next request gets a fresh worker
    again = list(ctx.chat.stream(ctx.chat.prepare(ONNX, [Message("user", QUESTION)], GREEDY)))
    assert "Paris" in "".join(c.text for c in again)
    assert victim not in [w.pid for w in model.workers()]


def _timeline(stream: Iterator[Chunk], marks: list[tuple[str, float]], name: str) -> None:
    for chunk in stream:
        if chunk.text:
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
    streams = [
        ctx.chat.stream(ctx.chat.prepare(model_id, STORY, options)) for model_id in pair
    ]  # both prepared first, so both are queued before either runs
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
    prepared = tight.chat.prepare(ONNX, STORY, LONG.model_copy(update={"max_new_tokens": 300}))
    stream = tight.chat.stream(prepared)
    assert next(iter(stream)).text is not None
    onnx = worker_model(tight, ONNX)
    stopped = threading.Event()
    stopped.set()  # the load would wait for the answer to end: a visitor who pressed Stop does not
    with pytest.raises(StoppedError, match="waiting for memory"):
        tight.registry.lease(tight.registry.resolve(HF), stop=stopped)
    assert onnx.workers() and all(w.alive for w in onnx.workers()), "the streaming model was closed"
    rest = list(stream)
    assert rest[-1].metrics is not None and rest[-1].metrics.finish_reason == FinishReason.LENGTH
    pids = [w.pid for w in onnx.workers()]
    with tight.registry.lease(tight.registry.resolve(HF)) as hf:  # ONNX is idle now: evicted for room
        assert [m.spec.id for m in tight.registry.loaded()] == [HF]
        assert wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), 10), "workers left"
        assert "Paris" in "".join(c.text for c in hf.stream([Message("user", QUESTION)], GREEDY))


@pytest.mark.parametrize("processes", ["1", "0"], ids=["worker", "in-process"])
def test_engine_errors_are_recorded_as_error(tmp_path: Path, processes: str) -> None:
    """Before the loop, on both engines: an over-long prompt (ONNX Runtime GenAI refuses it) and an
    empty conversation (transformers' ValueError, not one of ours)."""
    context = AppContext.create(make_settings(tmp_path, PLAYGROUND_ENGINE_PROCESSES=processes))
    try:
        owner = "b" * 32
        cases = [
            (ONNX, [Message("user", "word " * 9000)], "exceeds max length"),
            (HF, [], "empty conversation"),
        ]
        for model_id, messages, expected in cases:
            model = loaded(context.registry, model_id)
            assert isinstance(model, ProcessModel) == (processes == "1")
            conversation = context.conversations.ask(owner, None, "a question", model_id)
            prepared = _prepared(context, model_id, messages)
            stream = context.conversations.record(
                owner, conversation, prepared, context.chat.stream(prepared)
            )
            with pytest.raises(ProviderError, match=expected):
                list(stream)
            stored = context.history.get_conversation(owner, conversation).messages[-1]
            assert stored.finish_reason == FinishReason.ERROR
            assert expected in str((stored.metrics or {}).get("error"))
    finally:
        context.close()


def test_engine_error_mid_stream_is_recorded_as_error(tmp_path: Path) -> None:
    """In-process, a real engine whose tokenizer fails after a few tokens: a foreign exception mid-answer
    is stored as `error` with its message, the text so far kept (workers send the same as Failed)."""
    context = AppContext.create(make_settings(tmp_path, PLAYGROUND_ENGINE_PROCESSES="0"))
    try:
        model = loaded(context.registry, HF)
        decode, calls = model._tokenizer.decode, [0]  # type: ignore[attr-defined]

        def failing(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] > 6:
                raise ValueError("the tokenizer broke")
            return decode(*args, **kwargs)

        model._tokenizer.decode = failing  # type: ignore[attr-defined]
        owner = "c" * 32
        conversation = context.conversations.ask(owner, None, "story", HF)
        prepared = _prepared(context, HF, STORY)
        stream = context.conversations.record(owner, conversation, prepared, context.chat.stream(prepared))
        text = ""
        with pytest.raises(ProviderError, match="the tokenizer broke"):
            for chunk in stream:
                text += chunk.text
        stored = context.history.get_conversation(owner, conversation).messages[-1]
        assert stored.finish_reason == FinishReason.ERROR and stored.text == text and text
        assert "the tokenizer broke" in str((stored.metrics or {}).get("error"))
    finally:
        context.close()


def _prepared(context: AppContext, model_id: str, messages: list[Message]) -> Any:
    """A request as the chat service makes it, without its trimming (to reach the engine's own checks)."""
    from playground.chat import Prepared

    return Prepared(loaded(context.registry, model_id), tuple(messages), SHORT, None)


def test_models_tab_lists_workers_and_unloads_them(tight: AppContext) -> None:
    from playground.models_service import ModelManager
    from playground.ui.models_tab import loaded_rows, unload

    model = worker_model(tight, ONNX)
    pids = [w.pid for w in model.workers()]
    rows = loaded_rows(ModelManager(tight))
    row = next(r for r in rows if r[0] == ONNX)
    assert row[2] == "idle" and str(pids[0]) in row[4]
    assert f"of up to {model.max_workers}" in row[4]
    message, rows = unload(tight, ONNX)
    assert message.startswith("⏏ Unloaded") and all(r[0] != ONNX for r in rows)
    assert wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), 10)
    message, _ = unload(tight, ONNX)
    assert "is not loaded" in message


def test_the_page_is_told_when_a_model_is_loading(tmp_path: Path) -> None:
    context = AppContext.create(make_settings(tmp_path))
    try:
        notice = context.chat.loading_notice(ONNX)
        assert notice is not None and notice.startswith("Loading SmolLM2") and "ONNX Runtime GenAI" in notice
        loaded(context.registry, ONNX)
        assert context.chat.loading_notice(ONNX) is None
        assert context.chat.loading_notice("no-such-model") is None  # prepare() says what is wrong
    finally:
        context.close()
