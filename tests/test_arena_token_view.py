"""The token view per Arena pane (issue 18): with Token view ticked, each pane shows its side's answer as its
tokens, streamed by delta (each update only the new tokens' rows; the page appends them), emptied on a new
battle; a side whose provider gives no probabilities says so; a blind round's views name nobody. Real
components: the embedded model on ONNX Runtime GenAI and transformers, and the cloud tests' HTTP server
for an OpenAI-compatible provider that returns no logprobs."""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from playwright.sync_api import Page, expect

from playground.context import AppContext
from playground.history import new_browser_id
from playground.token_view import LOCAL_NOTE, TOKEN_VIEW_K, token_note, token_span
from playground.types import TokenChoice, TokenRecord
from playground.ui.arena_display import BLIND_NOTE, LivePane, tokens_note
from playground.ui.arena_tab import BLIND, NAMED, OUTPUT_NAMES, ArenaTab
from playground.ui.delta import DeltaPage
from tests.browser import WIDE, open_page, set_slider
from tests.cloud.fake_server import ANSWER, FakeServer
from tests.support import QUESTION, make_settings
from tests.test_arena import mentioned
from tests.test_streaming import run_loop

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
REMOTE = "alpha@openai-compatible"  # the fake server's "plain" scenario: an answer, no logprobs
PANE = ("", 0.0, 1.0, 0, 16, 1.0, -1, "")  # system, temperature, top-p, top-k, max new, penalty, seed, stop
Update = tuple[Any, ...]
TOKEN = re.compile(r'<span class="tv-tok"[^>]*>(.*?)<span class="tv-alts">', re.S)


def out(update: Update, name: str) -> Any:
    return update[OUTPUT_NAMES.index(name)]


def play(
    tab: ArenaTab, owner: str, *, a: str = ONNX, b: str = HF, mode: str = NAMED, token_view: bool = True
) -> list[Update]:
    """Every update `play` yields, as the page would receive them (the toggle is its last input)."""

    async def run() -> list[Update]:
        request = gr.Request(session_hash=f"tokens-{owner}")
        values: tuple[Any, ...] = (owner, None, [], mode, "", a, b, QUESTION, True, *PANE, *PANE, token_view)
        return [update async for update in tab.play(request, *values)]

    return run_loop(run())


def payloads(updates: list[Update], side: str) -> list[str]:
    """What the pane's token view was sent (a dict is gr.update(): nothing sent)."""
    return [value for value in (out(u, f"tokens_{side}") for u in updates) if isinstance(value, str)]


def page_of(sent: list[str]) -> DeltaPage:
    page = DeltaPage()
    for payload in sent:
        page.apply(payload)
    return page


def token_texts(view_html: str) -> list[str]:
    """The tokens' texts as the view shows them (↵ and <br> for a newline, ∅: empty)."""
    return [html.unescape(m.replace("↵<br>", "\n")).replace("∅", "") for m in TOKEN.findall(view_html)]


def check_answer(view_html: str, answer: str) -> None:
    """The view's tokens put back together are the side's answer: every token once, in order (the last
    may be the end-of-text token the model chose, which the answer's text leaves out)."""
    texts = token_texts(view_html)
    whole = "".join(texts)
    assert whole == answer or (texts and "".join(texts[:-1]) == answer and texts[-1].startswith("<|")), (
        whole,
        answer,
    )


@pytest.fixture(scope="module")
def tab(ctx: AppContext) -> ArenaTab:
    return ArenaTab(ctx)


def test_each_pane_holds_its_sides_tokens_once_sent_by_delta(tab: ArenaTab, ctx: AppContext) -> None:
    owner = new_browser_id()
    updates = play(tab, owner)
    final = out(updates[-1], "rounds")[-1]
    for side in ("a", "b"):
        sent = payloads(updates, side)
        parsed = [json.loads(p) for p in sent]
        shells = [i for i, payload in enumerate(parsed) if "shell" in payload]
        assert shells == list(range(len(shells))) and all(not parsed[i].get("rows") for i in shells), (
            "the view is drawn empty (the battle is new, then its round starts) before any token"
        )
        held = 0
        for payload, raw in zip(parsed[len(shells) :], sent[len(shells) :], strict=True):
            rows = payload.get("rows") or []
            assert "shell" not in payload and payload.get("start", held) == held, "only the new tokens"
            carried = json.dumps({"rows": rows, "parts": payload.get("parts") or {}}, ensure_ascii=False)
            assert len(raw) <= len(carried) + 40, "a payload is its new rows and the note, nothing more"
            held += len(rows)
        page = page_of(sent)
        answer = str(final[side]["text"])
        count = final[side]["metrics"]["completion_tokens"]
        assert page.html.count('class="tv-tok"') == held == count, (side, held, count)
        check_answer(page.html, answer)
        assert page.parts["note"] == LOCAL_NOTE
        # The records the page drew are those kept with the side's answer in the history.
        battle = ctx.history.battles.get_battle(owner, out(updates[-1], "battle"))
        conversation = battle.conversation_a if side == "a" else battle.conversation_b
        stored = ctx.history.conversations.get_conversation(owner, conversation).messages[-1]
        assert stored.tokens is not None and len(stored.tokens) == count
        assert all(len(t["top"]) == TOKEN_VIEW_K for t in stored.tokens)  # type: ignore[arg-type]
        assert page.rows == [token_span(t) for t in stored.tokens]
    # Asked again: each view starts again from its shell; a new battle empties both.
    rounds = out(updates[-1], "rounds")

    async def regenerate() -> list[Update]:
        request = gr.Request(session_hash="tokens-regenerate")
        return [u async for u in tab.regenerate(owner, out(updates[-1], "battle"), rounds, request, True)]

    again = run_loop(regenerate())
    for side in ("a", "b"):
        sent = payloads(again, side)
        assert "shell" in json.loads(sent[0]) and all("shell" not in json.loads(p) for p in sent[1:])
        answer = str(out(again[-1], "rounds")[-1][side]["text"])
        check_answer(page_of(sent).html, answer)
    emptied = tab.new_round()
    for side in ("a", "b"):
        page = page_of([*payloads(updates, side), out(emptied, f"tokens_{side}")])
        assert 'class="tv-tok"' not in page.html and page.rows == [] and not page.parts.get("note")
    assert [u["visible"] for u in tab.toggle_tokens(True)] == [True, True]
    assert [u["visible"] for u in tab.toggle_tokens(False)] == [False, False]


def test_an_update_costs_the_same_at_64_and_512_tokens(ctx: AppContext) -> None:
    """A pane's view by delta: an update carries only the new token's row, whatever came before."""
    spec = ctx.registry.resolve(ONNX)
    top = tuple(TokenChoice(f"w{i}", i, math.log(0.5 / (i + 1))) for i in range(TOKEN_VIEW_K))
    pane = LivePane()
    sizes = {}
    for n in range(513):
        pane.records.append(TokenRecord(n, " word", 7, math.log(0.5), top, 1.2))
        payload = pane.token_view(spec, ended=False, blind=False)
        if n in (64, 512):
            sizes[n] = len(payload.encode())
            assert json.loads(payload)["start"] == n and len(json.loads(payload)["rows"]) == 1
    assert abs(sizes[512] - sizes[64]) <= 0.2 * sizes[64], sizes
    assert isinstance(pane.token_view(spec, ended=False, blind=False), dict), "nothing new: nothing sent"
    end = json.loads(pane.token_view(spec, ended=True, blind=False))
    assert end == {"start": 513, "rows": [], "parts": {"note": LOCAL_NOTE}}, "the note, once, at the end"
    assert isinstance(pane.token_view(spec, ended=True, blind=False), dict)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def remote_ctx(fake: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppContext]:
    data: Path = tmp_path_factory.mktemp("remote-arena")
    context = AppContext.create(make_settings(data, OPENAI_BASE_URL=fake.url("plain")))
    yield context
    context.close()


def test_a_side_whose_provider_gives_no_probabilities_says_so(
    remote_ctx: AppContext, fake: FakeServer
) -> None:
    tab = ArenaTab(remote_ctx)
    owner = new_browser_id()
    updates = play(tab, owner, a=REMOTE, b=ONNX)
    final = out(updates[-1], "rounds")[-1]
    assert final["a"]["text"] == "".join(ANSWER) and final["b"]["text"]
    remote = remote_ctx.registry.resolve(REMOTE)
    without = page_of(payloads(updates, "a"))
    assert 'class="tv-tok"' not in without.html
    assert (
        without.parts["note"] == token_note(remote, False)
        and "gives no token probabilities" in (without.parts["note"])
    )
    assert remote.engine_label in without.parts["note"], "named mode: the chat tabs' words, as they are"
    check_answer(page_of(payloads(updates, "b")).html, final["b"]["text"])
    (body,) = [r.body for r in fake.requests("plain") if r.method == "POST"]
    assert body["logprobs"] is True and body["top_logprobs"] == TOKEN_VIEW_K, "the request asked for them"
    # Blind, the same words without the provider's name; with figures, one note for a server and a local
    # engine (the chat tabs' notes tell them apart).
    blind = tokens_note(remote, False, blind=True)
    assert "gives no token probabilities" in blind and remote.engine_label not in blind
    assert not mentioned(blind.lower(), [remote.id.lower(), "alpha", remote.provider.lower()])
    local = remote_ctx.registry.resolve(ONNX)
    assert token_note(remote, True) != token_note(local, True)
    assert tokens_note(remote, True, blind=True) == tokens_note(local, True, blind=True) == BLIND_NOTE


def test_a_blind_rounds_token_views_name_nobody(tab: ArenaTab, ctx: AppContext) -> None:
    from tests.test_arena_tab import secret_words

    owner = new_browser_id()
    updates = play(tab, owner, mode=BLIND)
    words = secret_words(ctx)
    for side in ("a", "b"):
        sent = payloads(updates, side)
        leaked = mentioned(json.dumps(sent, ensure_ascii=False).lower(), words)
        assert not leaked, (side, leaked)
        page = page_of(sent)
        check_answer(page.html, out(updates[-1], "rounds")[-1][side]["text"])
        assert page.parts["note"] == BLIND_NOTE, "the same note for either kind of side"
    assert out(updates[-1], "head_a") == "### Model A"


@pytest.mark.browser
def test_the_page_shows_each_panes_tokens_under_it(page: Page, app_url: str) -> None:
    """In a real browser: tick Token view, send, and each pane's tokens appear under it, tinted, with
    their alternatives on hover; a new battle empties both views."""
    open_page(page, app_url, tab="Arena", prefix="arena", viewport=WIDE)
    page.get_by_text("System prompts and parameters").click()
    for name, value in (("temperature", "0"), ("max-new-tokens", "12")):
        set_slider(page, "arena-a", name, value)
    page.get_by_text("System prompts and parameters").click()
    views = [page.locator(f"#arena-tokens-{side}") for side in ("a", "b")]
    expect(views[0]).to_be_hidden()
    page.locator("#arena-token-view input").check()
    for view in views:
        expect(view).to_be_visible()
    page.fill("#arena-input textarea", QUESTION)
    page.press("#arena-input textarea", "Enter")
    for side, view in zip(("a", "b"), views, strict=True):
        expect(page.locator(f"#arena-metrics-{side}")).to_contain_text("tok/s", timeout=90_000)
        expect(view).to_contain_text("distribution the token was drawn from", timeout=15_000)
        metrics = page.locator(f"#arena-metrics-{side}").inner_text()
        count = int(re.search(r"out (\d+) tokens", metrics).group(1))  # type: ignore[union-attr]
        assert view.locator(".tv-tok").count() == count, (side, metrics)
    alternatives = views[1].locator(".tv-tok").nth(1).locator(".tv-alts")
    views[1].locator(".tv-tok").nth(1).hover()
    expect(alternatives).to_be_visible()
    assert alternatives.locator(".tv-alt").count() == TOKEN_VIEW_K
    page.locator("#arena-new").click()
    for view in views:
        expect(view.locator(".tv-tok")).to_have_count(0)
