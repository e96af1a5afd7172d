"""FoldedStreams (the arena's two panes in one page update per tick) and Stop per (session, pane)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from playground.answers import Event, Finished, Request, Text
from playground.context import AppContext
from playground.options import GenerationOptions
from playground.stops import StopSignals
from playground.types import Message
from playground.ui.streaming import FoldedStreams, PaneUpdate
from tests.test_streaming import run_loop


def paced(n: int, pause_s: float, closed: list[str] | None = None, name: str = "") -> Iterator[int]:
    try:
        for i in range(n):
            time.sleep(pause_s)
            yield i
    finally:
        if closed is not None:
            closed.append(name)


def fold(folded: FoldedStreams[int], on_update: object = None) -> list[PaneUpdate[int]]:
    async def run() -> list[PaneUpdate[int]]:
        updates = []
        async for update in folded:
            updates.append(update)
            if callable(on_update):
                on_update(update)
        return updates

    return run_loop(run())


def items_of(updates: list[PaneUpdate[int]], pane: str) -> list[int]:
    return [i for u in updates for i in u.items.get(pane, [])]


def ended_at(updates: list[PaneUpdate[int]], pane: str) -> int:
    return next(n for n, u in enumerate(updates) if pane in u.ended)


def test_a_slow_side_never_holds_back_the_fast_one() -> None:
    folded = FoldedStreams({"a": paced(20, 0.01), "b": paced(3, 0.4)}, min_interval_s=0.02)
    updates = fold(folded)
    assert items_of(updates, "a") == list(range(20)) and items_of(updates, "b") == [0, 1, 2]
    a_end, b_end = ended_at(updates, "a"), ended_at(updates, "b")
    assert a_end < b_end
    b_before_a_end = items_of(updates[: a_end + 1], "b")
    assert len(b_before_a_end) <= 1, "the fast side waited for the slow one"
    assert updates[a_end].ended["a"] is None


def test_one_update_per_tick_holds_both_sides() -> None:
    folded = FoldedStreams({"a": paced(100, 0.002), "b": paced(100, 0.002)}, min_interval_s=0.05)
    updates = fold(folded)
    assert items_of(updates, "a") == list(range(100)) and items_of(updates, "b") == list(range(100))
    assert len(updates) < 60, "an update per item instead of per tick"
    assert any(len(u.items) == 2 for u in updates), "the two sides never went out together"


def test_stop_on_one_pane_leaves_the_other_streaming() -> None:
    closed: list[str] = []
    stops = {"a": threading.Event(), "b": threading.Event()}
    folded = FoldedStreams(
        {"a": paced(200, 0.01, closed, "a"), "b": paced(60, 0.01, closed, "b")},
        stops=stops,
        min_interval_s=0.02,
    )

    def press_stop(update: PaneUpdate[int]) -> None:
        if "a" in update.items:
            stops["a"].set()

    updates = fold(folded, press_stop)
    assert len(items_of(updates, "a")) < 20, "pane a kept streaming after its Stop"
    assert items_of(updates, "b") == list(range(60)), "Stop on pane a stopped pane b"
    assert closed[0] == "a" and ended_at(updates, "a") < ended_at(updates, "b")


def test_an_error_ends_its_pane_alone() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("side a broke")

    updates = fold(FoldedStreams({"a": failing(), "b": paced(10, 0.01)}, min_interval_s=0.01))
    error = next(u.ended["a"] for u in updates if "a" in u.ended)
    assert isinstance(error, ValueError) and "side a broke" in str(error)
    assert items_of(updates, "b") == list(range(10))


def test_two_local_engines_stream_in_both_panes_at_once(ctx: AppContext) -> None:
    """The embedded model on ONNX Runtime GenAI and on transformers, in worker processes: both panes
    receive text before either finishes."""
    options = GenerationOptions(temperature=0, max_new_tokens=60)
    story = [Message("user", "Write a long story about a lighthouse keeper.")]
    streams = {
        pane: ctx.answers.ask(Request(model_id, story, options))
        for pane, model_id in (
            ("a", "smollm2-135m-instruct@onnx"),
            ("b", "smollm2-135m-instruct@transformers"),
        )
    }
    updates: list[PaneUpdate[Event]] = run_loop(_collect(FoldedStreams(streams, ends_itself=True)))
    first_end = min(ended_at(updates, "a"), ended_at(updates, "b"))  # type: ignore[arg-type]
    before = {
        pane
        for u in updates[: first_end + 1]
        for pane, items in u.items.items()
        if any(isinstance(e, Text) for e in items)
    }
    assert before == {"a", "b"}, "one pane waited for the other"
    for pane in "ab":
        events = [e for u in updates for e in u.items.get(pane, [])]
        assert isinstance(events[-1], Finished) and events[-1].metrics.completion_tokens == 60


async def _collect(folded: FoldedStreams[Event]) -> list[PaneUpdate[Event]]:
    return [update async for update in folded]


def test_stop_signals_are_per_session_and_pane() -> None:
    signals = StopSignals()
    a, b = signals.begin("s1", "a"), signals.begin("s1", "b")
    other = signals.begin("s2", "a")
    assert signals.stop("s1", "a") and a.is_set() and not b.is_set() and not other.is_set()
    again = signals.begin("s1", "a")  # a new round on pane a leaves pane b's answer stoppable
    assert signals.stop("s1", ["a", "b"]) and again.is_set() and b.is_set() and not other.is_set()
    signals.end("s1", again, "a")
    signals.end("s1", b, "b")
    assert not signals.stop("s1", ["a", "b"]) and len(signals) == 1
    single = signals.begin("s3")
    assert signals.stop("s3") and single.is_set()
