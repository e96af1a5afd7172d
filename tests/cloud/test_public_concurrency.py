"""Answers at once per provider (PLAYGROUND_PROVIDER_CONCURRENCY): against a real HTTP OpenAI-compatible
server, at most n requests are out at once and they start in arrival order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

from playground.chat import ChatService, Prepared
from playground.options import GenerationOptions
from playground.providers.cloud import CloudProvider
from playground.public.concurrency import Ticket
from playground.registry import Registry
from playground.types import Message
from tests.cloud.fake_server import FakeServer
from tests.cloud.helpers import served_model


def _wait(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _count_is(fake: FakeServer, scenario: str, count: int) -> bool:
    return len(fake.requests(scenario)) == count


def test_one_slot_per_provider_serves_questions_in_arrival_order(
    provider: Callable[..., CloudProvider], fake: FakeServer
) -> None:
    scenario = "fifo~concurrency"
    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url(scenario))
    model = served_model(cloud, "alpha")
    chat = ChatService(Registry([cloud]), provider_concurrency={"*": 1})
    release = {i: threading.Event() for i in range(4)}
    texts: dict[int, str] = {}
    tickets: list[Ticket | None] = []

    def ask(i: int) -> None:
        prepared = Prepared(
            model, (Message("user", f"question {i}"),), GenerationOptions(max_new_tokens=8), None
        )
        stream = chat.stream(prepared, tickets[i])
        first = next(stream)  # holds its slot until released
        release[i].wait(20)
        texts[i] = first.text + "".join(c.text for c in stream)

    threads = []
    for i in range(4):
        tickets.append(chat.reserve(model.spec))
        threads.append(threading.Thread(target=ask, args=(i,), daemon=True))
        threads[-1].start()
    assert [t.ahead() for t in tickets if t is not None] == [0, 0, 1, 2], "first granted, the rest in line"
    _wait(lambda: len(fake.requests(scenario)) == 1)
    time.sleep(0.3)
    assert len(fake.requests(scenario)) == 1, "one slot: the others wait"
    for i in range(4):
        release[i].set()
        threads[i].join(20)
        if i < 3:
            _wait(partial(_count_is, fake, scenario, i + 2))
    asked = [r.body["messages"][-1]["content"] for r in fake.requests(scenario)]
    assert asked == [f"question {i}" for i in range(4)], "first come, first served"
    assert all("Paris" in texts[i] for i in range(4))


def test_a_question_that_leaves_the_line_gives_its_place_up(
    provider: Callable[..., CloudProvider], fake: FakeServer
) -> None:
    scenario = "fifo~leave"
    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url(scenario))
    model = served_model(cloud, "alpha")
    chat = ChatService(Registry([cloud]), provider_concurrency={"*": 1})
    first, second, third = (chat.reserve(model.spec) for _ in range(3))
    assert first is not None and second is not None and third is not None
    assert (first.granted.is_set(), second.ahead(), third.ahead()) == (True, 0, 1)
    second.release()  # the visitor pressed Stop while waiting
    assert third.ahead() == 0
    first.release()
    assert third.granted.is_set() and not second.granted.is_set()
    third.release()


def test_stop_while_waiting_in_line_ends_the_stream_without_a_request(
    provider: Callable[..., CloudProvider], fake: FakeServer
) -> None:
    """The arena's panes stream in threads that read nothing until their slot comes: Stop reaches them."""
    scenario = "fifo~stop"
    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url(scenario))
    model = served_model(cloud, "alpha")
    chat = ChatService(Registry([cloud]), provider_concurrency={"*": 1})
    holder = chat.reserve(model.spec)
    assert holder is not None and holder.granted.is_set()
    prepared = Prepared(model, (Message("user", "waits"),), GenerationOptions(max_new_tokens=8), None)
    stop = threading.Event()
    got: list[str] = []
    waiting = threading.Thread(
        target=lambda: got.extend(c.text for c in chat.stream(prepared, stop=stop)), daemon=True
    )
    waiting.start()
    time.sleep(0.5)
    assert waiting.is_alive(), "in line behind the holder"
    stop.set()
    waiting.join(2)
    assert not waiting.is_alive() and got == [], "Stop ended the wait, with no answer"
    holder.release()
    time.sleep(0.3)
    assert fake.requests(scenario) == [], "and it never reached the provider"
    after = chat.reserve(model.spec)
    assert after is not None and after.granted.is_set(), "its place was given up"
