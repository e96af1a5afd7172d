from __future__ import annotations

import threading
import time
from collections.abc import Generator

import pytest

from playground.errors import ProviderError
from playground.history import AnswerRecorder, HistoryStore
from playground.types import FinishReason, Metrics


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answer(store: HistoryStore, owner: str, **kwargs: object) -> tuple[str, AnswerRecorder]:
    conversations = store.conversations
    conversation = conversations.create_conversation(owner, "instruct", "t")
    conversations.add_message(owner, conversation.id, "user", "question")
    recorder = conversations.start_answer(owner, conversation.id, model="m@onnx", engine="onnx", **kwargs)  # type: ignore[arg-type]
    return conversation.id, recorder


def stored(store: HistoryStore, owner: str, conversation_id: str) -> tuple[str, FinishReason | None]:
    last = store.conversations.get_conversation(owner, conversation_id).messages[-1]
    return last.text, last.finish_reason


def test_the_answer_row_exists_before_the_first_token(store: HistoryStore, alice: str) -> None:
    conversation_id, _ = answer(store, alice)
    assert stored(store, alice, conversation_id) == ("", None)


def test_updates_are_written_at_most_once_per_interval(store: HistoryStore, alice: str) -> None:
    clock = Clock()
    conversation_id, _ = answer(store, alice)
    message_id = store.conversations.get_conversation(alice, conversation_id).messages[-1].id
    recorder = AnswerRecorder(store.conversations, alice, message_id, interval_s=1.0, clock=clock)
    written = []
    for i in range(30):  # 30 tokens, a quarter of a second apart
        clock.now = i * 0.25
        written.append(recorder.update("x" * (i + 1)))
    assert [i for i, w in enumerate(written) if w] == [0, 4, 8, 12, 16, 20, 24, 28]  # first, then 1/s
    assert stored(store, alice, conversation_id) == ("x" * 29, None)
    recorder.finish(Metrics(completion_tokens=30, finish_reason=FinishReason.LENGTH))
    assert stored(store, alice, conversation_id) == ("x" * 30, FinishReason.LENGTH)


def test_real_time_throttle(store: HistoryStore, alice: str) -> None:
    conversation_id, recorder = answer(store, alice)
    start = time.monotonic()
    text = ""
    while time.monotonic() - start < 2.5:
        text += "tok "
        recorder.update(text)
        time.sleep(0.005)
    assert 2 <= recorder.writes <= 4
    recorder.finish(finish_reason="stop")
    assert stored(store, alice, conversation_id) == (text, FinishReason.STOP)
    assert recorder.writes <= 5


def test_finish_takes_metrics_and_its_reason(store: HistoryStore, alice: str) -> None:
    conversation_id, recorder = answer(store, alice, parameters={"temperature": 0.1})
    recorder.update("Paris.")
    metrics = Metrics(prompt_tokens=3, completion_tokens=2, ttft_s=0.07, tokens_per_s=30.0, total_s=0.1)
    recorder.finish(metrics)
    recorder.close()  # a finally after a normal end changes nothing
    last = store.conversations.get_conversation(alice, conversation_id).messages[-1]
    assert (last.text, last.finish_reason, last.metrics) == ("Paris.", "stop", metrics.to_dict())
    assert last.parameters == {"temperature": 0.1}
    assert recorder.update("more") is False


def test_close_without_finish_is_cancelled_and_keeps_the_text(store: HistoryStore, alice: str) -> None:
    clock = Clock()
    conversation_id, first = answer(store, alice)
    recorder = AnswerRecorder(store.conversations, alice, first.message_id, clock=clock)
    recorder.update("The cap")
    recorder.update("The capital")  # not written yet: within the interval
    recorder.close()
    assert stored(store, alice, conversation_id) == ("The capital", FinishReason.CANCELLED)


def stream_into(recorder: AnswerRecorder, fail: bool = False) -> Generator[str, None, None]:
    """A chat handler in miniature: what the UI's generator will do."""
    text = ""
    with recorder:
        for word in ("The ", "capital ", "is ", "Paris."):
            text += word
            recorder.update(text)
            yield text
            if fail and word == "is ":
                raise ProviderError("the engine crashed")
        recorder.finish(Metrics(completion_tokens=4))


def test_a_closed_generator_records_cancelled(store: HistoryStore, alice: str) -> None:
    conversation_id, recorder = answer(store, alice)
    handler = stream_into(recorder)
    assert next(handler) == "The "
    assert next(handler) == "The capital "
    handler.close()  # what Gradio does on Stop
    assert stored(store, alice, conversation_id) == ("The capital ", FinishReason.CANCELLED)


def test_an_error_records_error_and_keeps_the_text(store: HistoryStore, alice: str) -> None:
    conversation_id, recorder = answer(store, alice)
    with pytest.raises(ProviderError):
        list(stream_into(recorder, fail=True))
    assert stored(store, alice, conversation_id) == ("The capital is ", FinishReason.ERROR)


def test_a_complete_stream_records_stop(store: HistoryStore, alice: str) -> None:
    conversation_id, recorder = answer(store, alice)
    assert list(stream_into(recorder))[-1] == "The capital is Paris."
    assert stored(store, alice, conversation_id) == ("The capital is Paris.", FinishReason.STOP)


def test_a_recorder_works_from_other_threads(store: HistoryStore, alice: str) -> None:
    """Gradio runs each step of a generator in a worker thread, not the one that made it."""
    conversation_id, recorder = answer(store, alice)
    errors: list[BaseException] = []

    def step(text: str) -> None:
        try:
            recorder.update(text)
            recorder.flush()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for i in range(5):
        thread = threading.Thread(target=step, args=("y" * (i + 1),))
        thread.start()
        thread.join()
    finisher = threading.Thread(target=recorder.cancel)
    finisher.start()
    finisher.join()
    assert errors == []
    assert stored(store, alice, conversation_id) == ("yyyyy", FinishReason.CANCELLED)


def test_concurrent_answers_share_one_store(store: HistoryStore, alice: str, bob: str) -> None:
    def run(owner: str) -> None:
        conversation_id, recorder = answer(store, owner, interval_s=0.0)
        for i in range(50):
            recorder.update(str(i))
        recorder.finish(finish_reason="stop")
        assert stored(store, owner, conversation_id) == ("49", FinishReason.STOP)

    threads = [threading.Thread(target=run, args=(owner,)) for owner in (alice, bob, alice, bob)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.conversations.list_conversations(alice)) == 2
    assert store.db.integrity_check() == "ok"
