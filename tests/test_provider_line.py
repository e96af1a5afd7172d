"""The provider's line (PLAYGROUND_PROVIDER_CONCURRENCY): arrival order, one slot per visitor at a
time, and a visitor whose long answers held a slot for long lets the others go first. A fake clock
stands for the minutes of usage (the real-server tests are in tests/cloud/test_public_concurrency.py;
the arena round beside a visitor runs on the embedded model at the end)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from playground.answers import Answer, Finished, Request, Text, Waiting
from playground.context import AppContext
from playground.options import GenerationOptions
from playground.public.concurrency import HEAVY_S, USAGE_WINDOW_S, ProviderSlots, Slots, Ticket
from playground.types import Message
from tests.support import make_settings

EMBEDDED = "smollm2-135m-instruct@onnx"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def granted(*tickets: Ticket) -> list[bool]:
    return [t.granted.is_set() for t in tickets]


def test_light_visitors_start_in_arrival_order() -> None:
    line = Slots("nvidia", 1, per_owner=1, clock=Clock())
    first, second, third = line.ticket("a"), line.ticket("b"), line.ticket("c")
    assert granted(first, second, third) == [True, False, False]
    assert (second.ahead(), third.ahead()) == (0, 1)
    first.release()
    assert granted(second, third) == [True, False]
    second.release()
    assert third.granted.is_set()


def test_one_visitor_holds_one_slot_even_when_it_asks_first() -> None:
    """An abusive session that joins two long answers before anyone else gets one slot, not both."""
    line = Slots("nvidia", 2, per_owner=1, clock=Clock())
    long_one, long_two = line.ticket("abuser"), line.ticket("abuser")
    assert granted(long_one, long_two) == [True, False], "the second waits although a slot is free"
    assert long_two.held_by_owner() and long_two.ahead() == 0
    visitor = line.ticket("visitor")
    assert visitor.granted.is_set(), "the free slot goes to the visitor behind it"
    long_one.release()
    assert long_two.granted.is_set() and not long_two.held_by_owner()


def test_a_heavy_visitor_goes_after_the_others_but_never_leaves_a_slot_idle() -> None:
    clock = Clock()
    line = Slots("onnx", 1, per_owner=1, clock=clock)
    long_answer = line.ticket("heavy")
    clock.now += HEAVY_S + 1  # one long answer: more slot time than HEAVY_S in the window
    long_answer.release()
    blocker = line.ticket("someone")
    again, light = line.ticket("heavy"), line.ticket("light")  # the heavy one asked first
    blocker.release()
    assert granted(again, light) == [False, True], "the light visitor goes first"
    light.release()
    assert again.granted.is_set(), "alone in line, the heavy visitor gets the slot"
    again.release()
    clock.now += USAGE_WINDOW_S + 1  # its usage is forgotten after the window
    blocker = line.ticket("someone")
    late, other = line.ticket("heavy"), line.ticket("other")
    blocker.release()
    assert granted(late, other) == [True, False], "light again: arrival order"


def test_tickets_without_an_owner_are_served_in_arrival_order() -> None:
    line = Slots("azure", 2, per_owner=1, clock=Clock())
    tickets = [line.ticket() for _ in range(3)]
    assert granted(*tickets) == [True, True, False]


def test_provider_slots_cap_each_owner_at_one_by_default() -> None:
    slots = ProviderSlots({"*": 2})
    one, two = slots.ticket("nvidia", "me"), slots.ticket("nvidia", "me")
    assert one is not None and two is not None and granted(one, two) == [True, False]
    elsewhere = slots.ticket("azure-openai", "me")
    assert elsewhere is not None and elsewhere.granted.is_set(), "each provider has its own line"
    assert ProviderSlots({}).ticket("nvidia", "me") is None, "no limit: no line"


def test_the_page_says_what_a_waiting_answer_waits_for() -> None:
    import threading

    from playground.answers import _wait_in_line

    line = Slots("nvidia", 2, per_owner=1, clock=Clock())
    line.ticket("me")
    mine, someone = line.ticket("me"), line.ticket("someone")
    full = Slots("azure", 1, per_owner=1, clock=Clock())
    full.ticket("x")
    behind = full.ticket("y")

    def first_notice(ticket: Ticket) -> str:
        stop = threading.Event()
        for waiting in _wait_in_line(ticket, stop):
            stop.set()
            return waiting.notice
        return ""

    assert someone.granted.is_set()
    assert "Waiting for your other answer on nvidia to end" in first_notice(mine)
    assert "Waiting for a free slot on azure: 0 question(s) ahead of yours" in first_notice(behind)


def test_an_arena_rounds_second_side_waits_behind_another_visitor() -> None:
    """Both sides of a round on one provider (owners `v/a`, `v/b`): the second takes a second slot
    only when no other visitor waits (a visitor's 16-token answer waited 9 s behind such rounds)."""
    line = Slots("onnx", 2, per_owner=1, clock=Clock())
    alone_a, alone_b = line.ticket("v/a"), line.ticket("v/b")
    assert granted(alone_a, alone_b) == [True, True], "nobody else waits: both sides at once"
    alone_a.release(), alone_b.release()
    blocker, side_a = line.ticket("z"), line.ticket("v/a")
    side_b, visitor = line.ticket("v/b"), line.ticket("w")  # the second side asked first
    assert granted(blocker, side_a, side_b, visitor) == [True, True, False, False]
    blocker.release()
    assert granted(side_b, visitor) == [False, True], "the visitor goes before the round's second side"
    side_a.release()
    assert side_b.granted.is_set(), "then the second side, alone in line"


def test_on_the_real_engine_a_visitor_goes_before_an_arena_rounds_second_side(tmp_path: Path) -> None:
    """The finding, through the answer pipeline with the embedded model in public mode (2 answers at
    once on a provider): a long answer holds one slot, an arena round's first side the other; its
    second side and then a visitor wait. When the long answer stops, the visitor starts, not the
    round's second side (which asked first); each side's timings count from its own start."""
    ctx = AppContext.create(make_settings(tmp_path / "data", PLAYGROUND_PUBLIC="1"))
    events: dict[str, list[object]] = {}
    starts: list[str] = []
    lock = threading.Lock()

    def drive(owner: str, tokens: int) -> tuple[Answer, threading.Thread]:
        options = GenerationOptions(temperature=0.0, max_new_tokens=tokens)
        request = Request(EMBEDDED, [Message("user", "Tell a long story.")], options, owner=owner)
        answer = ctx.answers.ask(request)
        events[owner] = []

        def draw() -> None:
            for event in answer:
                with lock:
                    events[owner].append(event)
                    if isinstance(event, Text) and owner not in starts:
                        starts.append(owner)  # its first text: it holds a slot (Started comes before)

        thread = threading.Thread(target=draw, name=owner)
        thread.start()
        return answer, thread

    def until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 120
        while not condition():
            assert time.monotonic() < deadline, (
                starts,
                {o: [type(e).__name__ for e in e_] for o, e_ in events.items()},
            )
            time.sleep(0.02)

    def waits(owner: str) -> bool:
        with lock:
            return any(isinstance(e, Waiting) for e in events[owner])

    try:
        long, long_thread = drive("z", 4096)  # far longer than the setup below: it ends by Stop
        until(lambda: starts == ["z"])
        side_a, a_thread = drive("v/a", 4096)
        until(lambda: starts == ["z", "v/a"])
        _, b_thread = drive("v/b", 8)
        until(lambda: waits("v/b"))
        _, visitor_thread = drive("w", 8)
        until(lambda: waits("w"))
        long.stop()
        visitor_thread.join(timeout=120)
        assert starts[:3] == ["z", "v/a", "w"], starts
        side_a.stop()
        for thread in (long_thread, a_thread, b_thread):
            thread.join(timeout=120)
        assert starts == ["z", "v/a", "w", "v/b"]
        finished = {o: next(e for e in reversed(es) if isinstance(e, Finished)) for o, es in events.items()}
        assert all(f.metrics.finish_reason is not None for f in finished.values())
        assert finished["w"].metrics.completion_tokens == 8 and finished["v/b"].metrics.completion_tokens == 8
    finally:
        ctx.close()
