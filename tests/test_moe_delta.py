"""The expert map streams by delta: each update carries only the new tokens' rows, so what the handler
returns per update, and the work it does for it, is the same at token 512 as at token 64.

The demo MoE model (random weights) answers through the real pipeline; its events are drawn by the MoE
tab's own code (`MoeTab.shown`, what `respond` calls per update). The page's side is delta.DeltaPage
(the browser's script, in Python) here, and the real page in tests/test_browser_tabs.py.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gradio as gr
import pytest

from playground.answers import Event, Experts, Request
from playground.context import AppContext
from playground.history import new_browser_id
from playground.moe_view import pack, routing_map, unpack
from playground.options import GenerationOptions
from playground.types import ExpertRecord, LayerRoute, Message
from playground.ui import delta
from playground.ui.chat_parts import AnswerView, add_question
from playground.ui.moe_map import map_html
from playground.ui.moe_tab import MoeTab

MOE = "tiny-phimoe-demo@transformers"
QUESTION = [Message("user", "Tell me about the sea.")]
GREEDY = (0.0, 1.0, 0, 512, 1.0, -1, "")  # the handler's parameters: temperature ... max new tokens ... stop


def events_of(ctx: AppContext, tokens: int) -> list[Event]:
    answer = ctx.answers.ask(Request(MOE, QUESTION, GenerationOptions(temperature=0, max_new_tokens=tokens)))
    return list(answer)


def update_size(value: str, load: Any) -> int:
    """The bytes of the map's part of an update: the map's value and the load's rows."""
    rows = "" if load is None else load.to_json(orient="values")
    return len(value.encode()) + len(rows.encode())


def one_token_per_update(tab: MoeTab, events: Sequence[Event]) -> tuple[list[int], list[int], AnswerView]:
    """Each update's size and the rows drawn for it, when every token is an update of its own."""
    state = AnswerView([{"role": "user", "content": QUESTION[0].content}], None)
    sizes, drawn = [], []
    for event in events:
        state.take(event)
        if isinstance(event, Experts):
            value, load = tab.shown(state.conversation, state)
            sizes.append(update_size(value, load))
            drawn.append(state.views["moe"].drawn)
    return sizes, drawn, state


def time_update(tab: MoeTab, state: AnswerView, records: Sequence[ExpertRecord], at: int) -> float:
    """Seconds `shown` takes for the update that adds record `at`, after updates that drew the map up to
    it (the whole map up to `at - 1`, then record `at - 1` alone, as while streaming)."""
    live = AnswerView(state.conversation, None, records=list(records[: at - 1]))
    tab.shown(live.conversation, live)
    live.records.append(records[at - 1])
    tab.shown(live.conversation, live)
    live.records.append(records[at])
    began = time.perf_counter()
    tab.shown(live.conversation, live)
    return time.perf_counter() - began


@pytest.fixture(scope="module")
def tab(ctx: AppContext) -> MoeTab:
    return MoeTab(ctx)


def test_an_update_costs_the_same_at_token_512_as_at_token_64(ctx: AppContext, tab: MoeTab) -> None:
    short, long = events_of(ctx, 64), events_of(ctx, 512)
    sizes64, drawn64, _ = one_token_per_update(tab, short)
    sizes512, drawn512, state = one_token_per_update(tab, long)
    assert len(sizes64) == 64 and len(sizes512) == 512
    # The work per update, counted: one row each time, whatever the answer's length.
    assert set(drawn64) == set(drawn512) == {1}
    # The bytes per update (deterministic): the last 32 updates of each answer, within 20%.
    late64, late512 = statistics.median(sizes64[-32:]), statistics.median(sizes512[-32:])
    assert abs(late512 - late64) < 0.2 * late64, (late64, late512)
    assert max(sizes512) < 2 * max(sizes64), "no update of the long answer is much larger"
    # The server time per update: medians of many, the two lengths interleaved so a busy machine slows
    # both alike; the bound is generous (drawn whole, the update at 512 takes about 8 times longer).
    records = state.records
    times: dict[int, list[float]] = {63: [], 511: []}
    for _ in range(31):
        for at in times:
            times[at].append(time_update(tab, state, records, at))
    t64, t512 = statistics.median(times[63]), statistics.median(times[511])
    assert t512 < 1.5 * t64 + 0.0005, (t64, t512)


def respond(tab: MoeTab, conversation: list[Any], session: str) -> Any:
    """The MoE tab's `respond` for the last question, greedy, incognito, no token view or format."""
    return tab.respond(
        gr.Request(session_hash=session), conversation, None, new_browser_id(), {}, True, False, "Text", "",
        MOE, "", *GREEDY,
    )  # fmt: skip


def test_the_handler_sends_each_row_once_and_the_page_holds_them_all(ctx: AppContext, tab: MoeTab) -> None:
    """The real handler (`respond`, batched by time as in the app): the first update redraws the map, every
    other one appends from where the last one ended; nothing is sent twice and nothing is missed."""
    _, conversation, _, _ = add_question("Tell me about the sea.", [], False)

    async def run() -> list[tuple[Any, ...]]:
        stream = respond(tab, conversation, "delta")
        return [update async for update in stream]

    with ThreadPoolExecutor(1) as pool:
        updates = pool.submit(asyncio.run, run()).result()
    payloads = [json.loads(u[5]) for u in updates]
    sent = 0
    page = delta.DeltaPage()
    previous = None
    for payload, update in zip(payloads, updates, strict=True):
        if update[5] == previous:  # no new record: the same value again, which Gradio does not send
            continue
        previous = update[5]
        rows = payload.get("rows", [])
        if "shell" in payload:
            assert sent == 0, "only the first updates redraw"
        elif rows:
            assert payload["start"] == sent, "each update starts where the last one ended"
        sent += len(rows)
        page.apply(update[5])
        assert update_size(update[5], update[6]) <= 600 + 1200 * len(rows), "an update's size is its rows'"
    turn = updates[-1][0][-1]
    tokens = turn["metrics"]["completion_tokens"]
    assert sent == tokens == 512 and not page.missed
    assert page.html == map_html(routing_map(unpack(turn["experts"]))), "the page holds the whole map"


def test_the_page_appends_skips_what_it_has_and_says_what_it_missed() -> None:
    page = delta.DeltaPage()
    shell = f'<p><span {delta.PART}="count"></span></p><ol {delta.ROWS}></ol>'
    page.apply(delta.redraw(shell, ["<li>a</li>"], {"count": "1 token"}))
    page.apply(delta.append(1, ["<li>b</li>", "<li>c</li>"], {"count": "3 tokens"}))
    page.apply(delta.append(1, ["<li>b</li>", "<li>c</li>"], {"count": "3 tokens"}))  # the same again
    assert (
        page.html
        == '<p><span data-part="count">3 tokens</span></p><ol data-rows><li>a</li><li>b</li><li>c</li></ol>'
    )
    page.apply(delta.append(5, ["<li>f</li>"]))  # rows 3 and 4 never arrived
    assert page.missed == 2 and page.rows[-1] == "<li>f</li>"
    page.apply(delta.redraw("<p>empty</p>"))
    assert page.html == "<p>empty</p>" and not page.rows
    page.apply("<b>plain</b>")
    assert page.html == "<b>plain</b>"


def test_a_new_answer_clears_the_map_and_an_opened_one_is_drawn_whole(tab: MoeTab) -> None:
    route = LayerRoute((1, 2), (0.6, 0.4), (0.5, 0.3))
    records = [ExpertRecord(i, i, f"t{i}", 4, (route, route)) for i in range(3)]
    before = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "experts": pack(records)},
    ]
    waiting = AnswerView([*before, {"role": "user", "content": "again"}], None)
    value, load = tab.shown(waiting.conversation, waiting)
    assert "fills in as the answer streams" in value and load is None, "a new question clears the map"
    assert tab.shown(waiting.conversation, waiting)[0] == value, "no change, the same value: nothing is sent"
    whole = tab.shown(before)[0]
    page = delta.DeltaPage()
    page.apply(whole)
    assert page.html == map_html(routing_map(records)) and page.html.count('<tr><th class="moe-token"') == 3


def test_a_stopped_answer_keeps_every_row_it_streamed(ctx: AppContext, tab: MoeTab) -> None:
    """Stop mid-answer: the last update adds the rows generated before the engine stopped, and the page
    then holds exactly the stopped answer's map, as the history keeps it."""
    _, conversation, _, _ = add_question("Tell me about the sea.", [], False)
    session = "delta-stop"

    async def run() -> list[tuple[Any, ...]]:
        updates = []
        stream = respond(tab, conversation, session)
        async for update in stream:
            updates.append(update)
            if json.loads(update[5]).get("rows"):
                tab.stop(gr.Request(session_hash=session))
        return updates

    with ThreadPoolExecutor(1) as pool:
        updates = pool.submit(asyncio.run, run()).result()
    turn = updates[-1][0][-1]
    assert turn["finish"] == "cancelled"
    page = delta.DeltaPage()
    for update in updates:
        page.apply(update[5])
    records = unpack(turn["experts"])
    assert 0 < len(records) < 512 and len(page.rows) == len(records) and not page.missed
    assert page.html == map_html(routing_map(records))
