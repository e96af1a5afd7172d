"""The one answer pipeline (answers.py) through its callers: the arena's sides record like every chat
(an MoE side's expert map included), a pane stopped while it waits stores and shows `cancelled`, and the
finish reason a caller sees is the one the history stores.

Real components: the embedded SmolLM2 and the tiny Phi-MoE demo in worker processes, a real SQLite file.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from playground.answers import Answer, AnswerService, Finished, Recording, Request, Started, Text, Waiting
from playground.arena.pairing import Side, named
from playground.arena.service import ArenaService
from playground.context import AppContext
from playground.history import new_browser_id
from playground.options import GenerationOptions
from playground.types import FinishReason, Message
from tests.support import make_settings

ONNX = "smollm2-135m-instruct@onnx"
MOE = "tiny-phimoe-demo@transformers"
SHORT = GenerationOptions(temperature=0, max_new_tokens=24)
ENDED = (FinishReason.STOP, FinishReason.LENGTH)  # an answer that ended by itself


def test_an_arena_side_waiting_for_its_slot_stops_as_cancelled_and_an_moe_side_keeps_its_map(
    ctx: AppContext,
) -> None:
    """Both sides on one engine that answers one at a time (PLAYGROUND_PROVIDER_CONCURRENCY): B waits
    behind A; Stop B while it waits. B shows and stores `cancelled`; A, an MoE model stopped after it,
    stores its map with its partial answer."""
    answers = AnswerService(ctx.chat, provider_concurrency={"transformers": 1})
    arena = ArenaService(answers, ctx.history)
    owner = new_browser_id()
    longer = SHORT.model_copy(update={"max_new_tokens": 4000})  # still streaming when B is stopped
    round_ = arena.start(owner, named(Side(MOE, options=longer), Side(MOE, options=SHORT)), "Hello")
    streams = arena.streams(owner, round_, session="arena-waits")
    seen: dict[str, list[object]] = {"a": [], "b": []}
    a_first_text = threading.Event()

    def drain(name: str) -> None:
        for event in streams[name]:
            seen[name].append(event)
            if isinstance(event, Text):
                a_first_text.set()

    threads = {name: threading.Thread(target=drain, args=(name,), daemon=True) for name in "ab"}
    threads["a"].start()
    assert a_first_text.wait(60), "side A never streamed"
    threads["b"].start()
    deadline = time.monotonic() + 30
    while not any(isinstance(e, Waiting) for e in seen["b"]):
        assert time.monotonic() < deadline, "side B never said it waits for the slot"
        time.sleep(0.02)
    assert answers.stop("arena-waits", "arena-b"), "B's Stop signal is held while it waits"
    threads["b"].join(30)
    assert not threads["b"].is_alive() and not isinstance(seen["a"][-1], Finished), "A still streams"
    assert answers.stop("arena-waits", "arena-a")
    threads["a"].join(30)
    ended = {name: seen[name][-1] for name in "ab"}
    assert isinstance(ended["b"], Finished) and ended["b"].reason == FinishReason.CANCELLED
    assert not any(isinstance(e, Text) for e in seen["b"]), "B never reached the engine"
    assert isinstance(ended["a"], Finished) and ended["a"].reason == FinishReason.CANCELLED
    view = arena.view(round_)
    assert (view.a.finish_reason, view.b.finish_reason) == ("cancelled", "cancelled")
    conversations = ctx.history.conversations
    stored_b = conversations.get_conversation(owner, round_.battle.conversation_b).messages[-1]
    stored_a = conversations.get_conversation(owner, round_.battle.conversation_a).messages[-1]
    assert stored_b.role == "assistant" and stored_b.finish_reason == FinishReason.CANCELLED
    assert stored_a.finish_reason == FinishReason.CANCELLED and stored_a.experts, "A's expert map is kept"
    assert stored_a.text == view.a.text
    assert len(answers.signals) == 0, "every Stop signal was given back"


def test_what_the_caller_sees_is_what_the_history_stores(ctx: AppContext) -> None:
    """A finished answer, a stopped one and a refused one: each caller's `Finished` against the row."""
    conversations = ctx.history.conversations
    owner = new_browser_id()
    cases: list[tuple[str, Request]] = []
    for model, options in ((ONNX, SHORT), (ONNX, SHORT.model_copy(update={"max_new_tokens": 400}))):
        conversation = ctx.conversations.ask(owner, None, "Tell me a story.", model)
        record = Recording(conversations, owner, conversation)
        cases.append(
            (conversation, Request(model, [Message("user", "Tell me a story.")], options, record=record))
        )
    finished = ctx.answers.complete(cases[0][1])
    assert finished.reason == FinishReason.LENGTH and finished.text
    stopped = ctx.answers.ask(cases[1][1])
    for event in stopped:
        if isinstance(event, Text):
            stopped.stop()
        last = event
    assert isinstance(last, Finished) and last.reason == FinishReason.CANCELLED
    assert last.metrics.completion_tokens >= 1 and last.metrics.ttft_s is not None, "its metrics are kept"
    for (conversation, _), reason, result_text in (
        (cases[0], FinishReason.LENGTH, finished.text),
        (cases[1], FinishReason.CANCELLED, None),
    ):
        stored = conversations.get_conversation(owner, conversation).messages[-1]
        assert stored.finish_reason == reason
        assert result_text is None or stored.text == result_text
    # refused before it streams (a chat, not an arena side): no answer row, the message in `Finished`
    conversation = ctx.conversations.ask(owner, None, "q", ONNX)
    refused = ctx.answers.complete(
        Request(
            "phi-3-mini-4k@onnx", [Message("user", "q")], record=Recording(conversations, owner, conversation)
        )
    )
    assert refused.reason == FinishReason.ERROR and "not ready" in refused.error
    assert [m.role for m in conversations.get_conversation(owner, conversation).messages] == ["user"]


def test_an_answer_closed_before_it_starts_gives_its_stop_signal_back(ctx: AppContext) -> None:
    answers = AnswerService(ctx.chat)
    answer = answers.ask(Request(ONNX, [Message("user", "Hi")], SHORT, stop=("s", "instruct")))
    assert len(answers.signals) == 1
    answer.close()
    assert len(answers.signals) == 0
    events = list(answers.ask(Request(ONNX, [Message("user", "Hi")], SHORT, stop=("s", "instruct"))))
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    assert len(answers.signals) == 0


# The seeded stress test: many answers at once on two local models under a tight budget

HF = "smollm2-135m-instruct@transformers"
ROUNDS, AT_ONCE, QUIET_S = 10, 4, 30.0


@pytest.mark.parametrize("processes", ["1", "0"], ids=["worker", "in-process"])
def test_seeded_stress_every_answer_ends_as_stored(tmp_path: Path, processes: str) -> None:
    """Two local models (the embedded model on ONNX and on transformers), up to two workers each, a
    budget of two ONNX workers and one transformers worker as measured; 10 rounds of four answers at
    once, a fixed seed choosing each answer's model and whether and when it is stopped. A watchdog fails
    the test when no event arrives for 30 s. Every answer ends, and its `Finished` is what is stored."""
    rng = random.Random(20261203)
    ctx = AppContext.create(
        make_settings(tmp_path, PLAYGROUND_ENGINE_PROCESSES=processes, PLAYGROUND_ENGINE_WORKERS="2")
    )
    try:
        sizes = {}
        for model_id in (ONNX, HF):
            with ctx.registry.lease(ctx.registry.resolve(model_id)):
                sizes[model_id] = ctx.registry.memory_bytes(model_id)
        ctx.registry.scheduler.budget_bytes = 2 * sizes[ONNX] + sizes[HF] + 50 * 10**6  # measuring noise
        for round_number in range(ROUNDS):
            plan = [(rng.choice((ONNX, HF)), rng.choice((None, None, 1, 3))) for _ in range(AT_ONCE)]
            _stress_round(ctx, round_number, plan)
        assert all(count <= ROUNDS for count in ctx.registry.loads.values()), ctx.registry.loads
    finally:
        ctx.close()


def _stress_round(ctx: AppContext, round_number: int, plan: list[tuple[str, int | None]]) -> None:
    owner = new_browser_id()
    conversations = ctx.history.conversations
    last_event = [time.monotonic()]
    runs: list[tuple[str, list[object]]] = []
    threads = []
    for model_id, stop_after in plan:
        conversation = ctx.conversations.ask(owner, None, "Tell me a story.", model_id)
        options = GenerationOptions(temperature=0.7, seed=round_number, max_new_tokens=12)
        record = Recording(conversations, owner, conversation)
        answer = ctx.answers.ask(
            Request(model_id, [Message("user", "Tell me a story.")], options, record=record)
        )
        seen: list[object] = []
        runs.append((conversation, seen))
        threads.append(
            threading.Thread(target=_draw, args=(answer, seen, stop_after, last_event), daemon=True)
        )
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        quiet = time.monotonic() - last_event[0]
        assert quiet < QUIET_S, f"round {round_number}: no event for {quiet:.0f} s ({plan})"
        time.sleep(0.1)
    for conversation, seen in runs:
        ended = seen[-1]
        assert isinstance(ended, Finished), f"round {round_number}: an answer did not end ({seen[-3:]})"
        stored = conversations.get_conversation(owner, conversation).messages[-1]
        assert stored.role == "assistant" and stored.finish_reason == ended.reason, (ended, stored)


def _draw(answer: Answer, seen: list[object], stop_after: int | None, last_event: list[float]) -> None:
    texts = 0
    for event in answer:
        seen.append(event)
        last_event[0] = time.monotonic()
        texts += isinstance(event, Text)
        if stop_after is not None and texts == stop_after:
            answer.stop()


def test_a_request_waiting_in_its_providers_line_keeps_its_model(tmp_path: Path) -> None:
    """The lease is taken when the request is prepared, before its place in the provider's line: a
    model whose request waits in line is never evicted for another (that load waits, and Stop ends its
    wait), and an evicted idle model is loaded again on its next question."""
    ctx = AppContext.create(make_settings(tmp_path, PLAYGROUND_MODEL_CACHE_MB="300"))  # one model at a time
    answers = AnswerService(ctx.chat, provider_concurrency={"onnx": 1})
    story = [Message("user", "Write a long story about a lighthouse keeper.")]
    try:
        first = answers.ask(Request(ONNX, story, SHORT.model_copy(update={"max_new_tokens": 200})))
        assert any(isinstance(e, Text) for e in first), "the first answer streams (it holds ONNX's slot)"
        waiting = answers.ask(Request(ONNX, [Message("user", "Hi")], SHORT))
        assert isinstance(next(waiting), Started) and isinstance(next(waiting), Waiting), "in line"
        first.stop()
        assert isinstance(list(first)[-1], Finished)  # ONNX's slot goes to the waiting request...
        other = answers.ask(Request(HF, [Message("user", "Hi")], SHORT))
        blocked = threading.Thread(target=lambda: list(other), daemon=True)
        blocked.start()
        time.sleep(1.0)
        assert blocked.is_alive() and ctx.registry.is_loaded(ONNX), "...which keeps ONNX: HF's load waits"
        rest = list(waiting)
        assert isinstance(rest[-1], Finished) and rest[-1].reason in ENDED
        blocked.join(60)
        assert not blocked.is_alive() and isinstance(other.finished, Finished)
        assert other.finished.reason in ENDED and not ctx.registry.is_loaded(ONNX), "ONNX was evicted then"
        again = answers.complete(Request(ONNX, [Message("user", "Hi")], SHORT))
        assert again.reason in ENDED and ctx.registry.loads[ONNX] == 2, "and loaded again"
    finally:
        ctx.close()
