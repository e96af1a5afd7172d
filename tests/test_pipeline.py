"""The one answer pipeline (answers.py) through its callers: the arena's sides record like every chat
(an MoE side's expert map included), a pane stopped while it waits stores and shows `cancelled`, and the
finish reason a caller sees is the one the history stores.

Real components: the embedded SmolLM2 and the tiny Phi-MoE demo in worker processes, a real SQLite file.
"""

from __future__ import annotations

import threading
import time

from playground.answers import AnswerService, Finished, Recording, Request, Started, Text, Waiting
from playground.arena.pairing import Side, named
from playground.arena.service import ArenaService
from playground.context import AppContext
from playground.history import new_browser_id
from playground.options import GenerationOptions
from playground.types import FinishReason, Message

ONNX = "smollm2-135m-instruct@onnx"
MOE = "tiny-phimoe-demo@transformers"
SHORT = GenerationOptions(temperature=0, max_new_tokens=24)


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
