"""Answers at once per provider (PLAYGROUND_PROVIDER_CONCURRENCY): against a real HTTP OpenAI-compatible
server, at most n requests are out at once and they start in arrival order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from playground.answers import AnswerService, Finished, Request, Text, Waiting
from playground.chat import ChatService
from playground.options import GenerationOptions
from playground.providers.cloud import CloudProvider
from playground.public.concurrency import ProviderSlots
from playground.registry import Registry
from playground.types import FinishReason, Message
from tests.cloud.fake_server import FakeServer
from tests.cloud.helpers import served_model


def _wait(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _posted(fake: FakeServer, scenario: str) -> list[Any]:
    """The questions the server received (the model list it is asked for too does not count)."""
    return [r for r in fake.requests(scenario) if r.method == "POST"]


def _count_is(fake: FakeServer, scenario: str, count: int) -> bool:
    return len(_posted(fake, scenario)) == count


def _pipeline(cloud: CloudProvider) -> AnswerService:
    return AnswerService(ChatService(Registry([cloud])), provider_concurrency={"*": 1})


def _in_line(answers: AnswerService, count: int) -> Callable[[], bool]:
    """Whether `count` questions hold a slot or wait for one, on the only provider limited here."""
    return lambda: sum(s.active + s.waiting for s in answers.slots._slots.values()) == count


def test_one_slot_per_provider_serves_questions_in_arrival_order(
    provider: Callable[..., CloudProvider], fake: FakeServer
) -> None:
    scenario = "fifo~concurrency"
    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url(scenario))
    model = served_model(cloud, "alpha")
    answers = _pipeline(cloud)
    release = {i: threading.Event() for i in range(4)}
    texts: dict[int, str] = {}

    def ask(i: int) -> None:
        request = Request(
            model.spec.id, [Message("user", f"question {i}")], GenerationOptions(max_new_tokens=8)
        )
        text = ""
        for event in answers.ask(request):
            text += event.text if isinstance(event, Text) else ""
            if text and not release[i].is_set():
                release[i].wait(20)  # holds its slot until released
        texts[i] = text

    threads = []
    for i in range(4):
        threads.append(threading.Thread(target=ask, args=(i,), daemon=True))
        threads[-1].start()
        _wait(_in_line(answers, i + 1))  # in line before the next one asks
    _wait(partial(_count_is, fake, scenario, 1))
    time.sleep(0.3)
    assert len(_posted(fake, scenario)) == 1, "one slot: the others wait"
    for i in range(4):
        release[i].set()
        threads[i].join(20)
        if i < 3:
            _wait(partial(_count_is, fake, scenario, i + 2))
    asked = [r.body["messages"][-1]["content"] for r in _posted(fake, scenario)]
    assert asked == [f"question {i}" for i in range(4)], "first come, first served"
    assert all("Paris" in texts[i] for i in range(4))


def test_a_question_that_leaves_the_line_gives_its_place_up() -> None:
    slots = ProviderSlots({"*": 1})
    first, second, third = (slots.ticket("alpha") for _ in range(3))
    assert first is not None and second is not None and third is not None
    assert (first.granted.is_set(), second.ahead(), third.ahead()) == (True, 0, 1)
    second.release()  # the visitor pressed Stop while waiting
    assert third.ahead() == 0
    first.release()
    assert third.granted.is_set() and not second.granted.is_set()
    third.release()


def test_stop_while_waiting_in_line_ends_the_answer_cancelled_without_a_request(
    provider: Callable[..., CloudProvider], fake: FakeServer
) -> None:
    """The arena's panes stream in threads that read nothing until their slot comes: Stop reaches them,
    and the answer ends `cancelled` (what the history would store too)."""
    scenario = "fifo~stop"
    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url(scenario))
    model = served_model(cloud, "alpha")
    answers = _pipeline(cloud)
    holder = answers.slots.ticket(model.spec.provider)
    assert holder is not None and holder.granted.is_set()
    answer = answers.ask(
        Request(model.spec.id, [Message("user", "waits")], GenerationOptions(max_new_tokens=8))
    )
    got: list[object] = []
    waiting = threading.Thread(target=lambda: got.extend(answer), daemon=True)
    waiting.start()
    _wait(lambda: any(isinstance(e, Waiting) for e in got))
    assert waiting.is_alive(), "in line behind the holder"
    answer.stop()
    waiting.join(5)
    assert not waiting.is_alive(), "Stop ended the wait"
    assert not any(isinstance(e, Text) for e in got)
    assert isinstance(got[-1], Finished) and got[-1].reason == FinishReason.CANCELLED
    holder.release()
    time.sleep(0.3)
    assert _posted(fake, scenario) == [], "and it never reached the provider"
    after = answers.slots.ticket(model.spec.provider)
    assert after is not None and after.granted.is_set(), "its place was given up"
