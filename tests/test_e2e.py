"""The whole page end to end in a real browser (Debian's Chromium through Playwright), as one visitor:
the page loads; a question to the embedded model streams a real answer that ends with its metrics; Stop
ends a long answer and keeps its partial text; an image attached in the Vision tab gets an answer with the
image in the chat; an arena round is played, voted and moves the leaderboard; after a reload the History
tab finds the conversation and continues it. Then a visitor of a public deployment chats the same way.

The tests of this module run in order on one browser page (one visitor: the History step finds what the
steps before it wrote). Each step saves a screenshot under `.test-artifacts/screenshots/` (see
tests/browser.py); instruct-tab.png, vision-tab.png and arena-tab.png are the README's images
(`SCREENSHOTS_DIR=docs pytest tests/test_e2e.py` refreshes them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from playground.context import AppContext
from playground.vision_examples import IMAGES_DIR
from tests.browser import (
    TALL,
    WIDE,
    answer_states,
    open_page,
    screenshot,
    set_slider,
    watch_answer,
)
from tests.support import QUESTION, loaded, make_settings, serving

pytestmark = pytest.mark.browser
BOT = '#instruct-chat [data-testid="bot"]'
VISION_BOT = '#vision-chat [data-testid="bot"]'
BOT_A, BOT_B = '#arena-chat-a [data-testid="bot"]', '#arena-chat-b [data-testid="bot"]'
ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
FOLLOW_UP = "Explain what a small language model is, in three bullet points."
STORY = "Write a very long story about a lighthouse keeper and the sea."
DONE: set[str] = set()  # the steps that passed: the History step needs what the steps before it wrote


def needs(*steps: str) -> None:
    missing = [s for s in steps if s not in DONE]
    if missing:
        pytest.skip(f"needs the earlier step(s) {missing} of this module (run the whole module)")


@pytest.fixture(autouse=True)
def _gradio_temp() -> None:
    """Not conftest's per-test GRADIO_TEMP_DIR here: the app checks that an uploaded file lies in the upload
    folder that variable names, and the running app put the uploads where it started."""


@pytest.fixture(scope="module")
def visitor(browser: Browser) -> Iterator[Page]:
    """One visitor's page for the whole module: the steps share its browser storage (its visitor id)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    page = context.new_page()
    yield page
    context.close()


def streamed(page: Page, chat: str, index: int, final: str) -> list[str]:
    """The texts the answer bubble showed before its final one: assert it grew while streaming."""
    states = answer_states(page)
    assert states and states[-1].startswith(final[:20]), (states[-3:], final)
    before = [s for s in states[:-1] if len(s) < len(final)]
    assert len(before) >= 2, f"the answer came in {len(states)} update(s), not streamed: {states}"
    assert len(before[0]) < len(before[-1]) < len(final), "the text grew across the observations"
    return before


def test_the_page_loads_with_every_tab(visitor: Page, app_url: str) -> None:
    open_page(visitor, app_url)
    expect(visitor).to_have_title("SLM Playground")
    for tab in ("Instruct", "Vision", "MoE", "Arena", "History", "Models", "Providers"):
        expect(visitor.get_by_role("tab", name=tab, exact=True)).to_be_visible()
    expect(visitor.locator("#instruct-model input")).to_have_value(
        "SmolLM2-135M-Instruct · ONNX Runtime GenAI"
    )
    screenshot(visitor, "e2e-01-loaded.png")
    DONE.add("loaded")


def test_a_visitor_chats_and_sees_the_answer_stream(visitor: Page) -> None:
    needs("loaded")
    page = visitor
    set_slider(page, "instruct", "temperature", "0")
    page.fill("#instruct-input textarea", QUESTION)
    page.press("#instruct-input textarea", "Enter")
    answer = page.locator(BOT).first
    expect(answer).to_contain_text("Paris", timeout=60_000)
    expect(page.locator(BOT).nth(1)).to_contain_text("tok/s", timeout=30_000)
    expect(page.locator(BOT).nth(1)).to_contain_text("ONNX Runtime GenAI")
    expect(page.locator("#instruct-meter")).to_contain_text("/ 8,192 tokens")

    # A longer answer, watched as it streams: the bubble grows, then the metrics line follows it.
    set_slider(page, "instruct", "max-new-tokens", "48")
    watch_answer(page, "#instruct-chat", 2)
    page.fill("#instruct-input textarea", FOLLOW_UP)
    page.click("#instruct-send")
    metrics = page.locator(BOT).nth(3)
    expect(metrics).to_contain_text("tok/s", timeout=60_000)
    expect(metrics).to_contain_text("ms to first token")
    expect(metrics).to_contain_text("tokens")
    final = page.locator(BOT).nth(2).inner_text().strip()
    assert len(final) > 40, final
    streamed(page, "#instruct-chat", 2, final)

    page.click("#instruct-show-prompt")
    prompt = page.locator("#instruct-prompt")
    expect(prompt).to_contain_text("<|im_start|>user", timeout=15_000)
    expect(prompt).to_contain_text(QUESTION)
    expect(prompt).to_contain_text(FOLLOW_UP)
    screenshot(page, "instruct-tab.png", full_page=True, chats_from_top=False)
    DONE.add("chat")


def test_stop_ends_the_engine_and_keeps_the_partial_answer(visitor: Page, ctx: AppContext) -> None:
    needs("loaded")
    page = visitor
    stats = loaded(ctx.registry, ONNX).stats
    page.click("#instruct-new")
    expect(page.locator(BOT)).to_have_count(0, timeout=10_000)
    set_slider(page, "instruct", "max-new-tokens", "4096")
    set_slider(page, "instruct", "temperature", "0")  # greedy: this story runs to the token limit
    page.fill("#instruct-input textarea", STORY)
    page.click("#instruct-send")
    expect(page.locator(BOT).first).to_contain_text(" ", timeout=60_000)
    deadline = time.monotonic() + 30
    while len(page.locator(BOT).first.inner_text()) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)  # a few words on the page first (the engine, in its own process, is quick)
    while stats.running == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats.running == 1, "the engine is generating when Stop is pressed"
    page.click("#instruct-stop")
    deadline = time.monotonic() + 15
    while stats.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats.running == 0, "Stop did not reach the engine"
    count = stats.tokens_generated
    time.sleep(1.0)
    assert stats.tokens_generated == count, "the engine kept generating after Stop"
    expect(page.locator(BOT).nth(1)).to_contain_text("stopped", timeout=10_000)
    partial = page.locator(BOT).first.inner_text()
    assert len(partial) > 5
    screenshot(page, "e2e-03-stopped.png")

    # The partial answer is kept, marked cancelled, in the history too.
    [summary] = [
        c for c in ctx.history.conversations.list_all_conversations(search=STORY) if c.model == ONNX
    ][:1]
    messages = ctx.history.conversations.get_conversation(
        ctx.history.conversations.owner_of(summary.id), summary.id
    ).messages
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].finish_reason == "cancelled"
    assert messages[1].text.split()[:3] == partial.split()[:3], (messages[1].text[:80], partial[:80])
    assert page.locator(BOT).first.inner_text() == partial, "the partial text stays on the page"
    DONE.add("stop")


def test_an_image_attached_in_the_vision_tab_gets_an_answer(visitor: Page) -> None:
    needs("loaded")
    page = visitor
    page.set_viewport_size(WIDE)
    page.get_by_role("tab", name="Vision", exact=True).click()
    page.wait_for_selector("#vision-input textarea")
    set_slider(page, "vision", "max-new-tokens", "16")
    page.locator("#vision-input input[type=file]").set_input_files(
        [str(IMAGES_DIR / "scene-before.png"), str(IMAGES_DIR / "scene-after.png")]
    )
    expect(page.locator("#vision-input img")).to_have_count(2, timeout=15_000)
    page.fill("#vision-input textarea", "List every difference between the two images.")
    page.click("#vision-send")
    user = page.locator('#vision-chat [data-testid="user"]')
    expect(user.locator("img")).to_have_count(2, timeout=15_000)
    expect(page.locator(VISION_BOT).nth(1)).to_contain_text("tok/s", timeout=90_000)
    expect(page.locator(VISION_BOT).nth(1)).to_contain_text("transformers")
    assert page.locator(VISION_BOT).first.inner_text().strip(), "an answer"
    expect(page.locator("#vision-notice")).not_to_contain_text("⚠")
    for img in user.locator("img").all():  # the images are served by the app itself, and load
        assert img.evaluate("i => i.complete && i.naturalWidth > 0")
        assert "/gradio_api/file=" in (img.get_attribute("src") or "")
    screenshot(page, "vision-tab.png")
    DONE.add("vision")


def test_an_arena_round_is_voted_and_moves_the_leaderboard(visitor: Page) -> None:
    needs("loaded")
    page = visitor
    page.set_viewport_size(TALL)
    page.get_by_role("tab", name="Arena", exact=True).click()
    page.wait_for_selector("#arena-input textarea")
    page.get_by_text("System prompts and parameters").click()
    for name, value in (("temperature", "0"), ("max-new-tokens", "48")):
        set_slider(page, "arena-a", name, value)
    page.get_by_text("System prompts and parameters").click()
    counts = page.locator("#arena-board-counts")
    before = counts.inner_text()
    page.fill("#arena-input textarea", QUESTION)
    page.press("#arena-input textarea", "Enter")
    expect(page.locator(BOT_A).first).to_contain_text("Paris", timeout=90_000)
    expect(page.locator(BOT_B).first).to_contain_text("Paris", timeout=90_000)
    expect(page.locator("#arena-metrics-a")).to_contain_text("tok/s", timeout=30_000)
    expect(page.locator("#arena-metrics-b")).to_contain_text("TTFT")
    expect(page.locator("#arena-head-a")).to_contain_text(ONNX)
    vote = page.locator("#arena-vote-a")
    expect(vote).to_be_enabled(timeout=15_000)
    vote.click()
    expect(page.locator("#arena-notice")).to_contain_text("Your vote: A is better", timeout=30_000)
    expect(counts).not_to_have_text(before, timeout=30_000)
    expect(page.locator("#arena-board")).to_contain_text(HF)
    expect(vote).to_be_disabled()
    screenshot(page, "arena-tab.png")


def test_after_a_reload_the_history_tab_finds_the_conversation(visitor: Page) -> None:
    needs("chat", "stop", "vision")
    page = visitor
    page.set_viewport_size(WIDE)
    page.reload()
    page.wait_for_selector("#instruct-input textarea")
    expect(page.locator(BOT)).to_have_count(0)  # a fresh page: the chat is empty
    page.get_by_role("tab", name="History", exact=True).click()
    rows = page.locator("#history-list div[role=row]")  # the table's body rows (a virtual list)
    expect(rows.filter(has_text="List every difference")).to_have_count(1, timeout=15_000)
    expect(rows.filter(has_text=STORY[:30])).to_have_count(1)
    page.fill("#history-search textarea, #history-search input", "three bullet points")
    page.press("#history-search textarea, #history-search input", "Enter")
    expect(rows).to_have_count(1, timeout=15_000)
    row = rows.first
    expect(row).to_contain_text(QUESTION[:30])
    expect(row).to_contain_text(ONNX)
    expect(row).to_contain_text("4")  # two questions, two answers
    row.locator("[role=gridcell]").first.click()
    expect(page.locator("#history-preview")).to_contain_text("Paris", timeout=15_000)
    screenshot(page, "e2e-06-history.png")
    page.click("#history-open")
    expect(page.locator("#instruct-chat")).to_be_visible(timeout=15_000)
    user = page.locator('#instruct-chat [data-testid="user"]')
    expect(user.first).to_contain_text(QUESTION, timeout=15_000)
    expect(user.nth(1)).to_contain_text(FOLLOW_UP)
    expect(page.locator(BOT).first).to_contain_text("Paris")


# A public deployment (a Space): the same chat, with public mode's limits on.


@pytest.fixture(scope="module")
def public_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app as a Space runs it (PLAYGROUND_PUBLIC=1: public mode's limits and model offer), with its
    own context: its registry is built for public mode."""
    settings = make_settings(
        tmp_path_factory.mktemp("public"), PLAYGROUND_PUBLIC="1", OLLAMA_HOST="http://127.0.0.1:9"
    )
    assert settings.public and settings.limits.rate_per_minute
    public = AppContext.create(settings)
    try:
        with serving(public) as url:
            yield url
    finally:
        public.close()


def test_a_visitor_of_a_public_deployment_chats(browser: Browser, public_url: str) -> None:
    page = browser.new_context(viewport={"width": 1440, "height": 1100}).new_page()
    open_page(page, public_url)
    set_slider(page, "instruct", "temperature", "0")
    set_slider(page, "instruct", "max-new-tokens", "64")
    watch_answer(page, "#instruct-chat", 0)
    page.fill("#instruct-input textarea", FOLLOW_UP)
    page.press("#instruct-input textarea", "Enter")
    expect(page.locator(BOT).nth(1)).to_contain_text("tok/s", timeout=60_000)
    expect(page.locator(BOT).nth(1)).to_contain_text("ONNX Runtime GenAI")
    final = page.locator(BOT).first.inner_text().strip()
    streamed(page, "#instruct-chat", 0, final)
    expect(page.locator("#instruct-notice")).not_to_contain_text("⚠")
    screenshot(page, "e2e-07-public-chat.png")
    # Public mode is on: the Models tab refuses downloads.
    page.get_by_role("tab", name="Models", exact=True).click()
    expect(page.get_by_role("button", name="Download", exact=True)).to_be_disabled(timeout=10_000)
    page.context.close()


def test_a_refused_question_says_why_in_the_page(browser: Browser, tmp_path: Path) -> None:
    """Public mode's door, seen by a visitor: past the rate (here one question a minute), the page shows
    the gate's message (Gradio's error toast), and the first answer stays."""
    settings = make_settings(tmp_path / "data", PLAYGROUND_PUBLIC="1", PLAYGROUND_RATE_PER_MINUTE="1")
    public = AppContext.create(settings)
    try:
        with serving(public) as url:
            page = browser.new_context(viewport={"width": 1440, "height": 1100}).new_page()
            open_page(page, url)
            set_slider(page, "instruct", "max-new-tokens", "16")
            page.fill("#instruct-input textarea", QUESTION)
            page.press("#instruct-input textarea", "Enter")
            expect(page.locator(BOT).nth(1)).to_contain_text("tok/s", timeout=60_000)  # the metrics line
            page.fill("#instruct-input textarea", FOLLOW_UP)
            page.press("#instruct-input textarea", "Enter")
            expect(page.get_by_text("asked 1 question in the last minute (at most 1)").first).to_be_visible(
                timeout=20_000
            )
            screenshot(page, "e2e-08-public-refused.png")
            expect(page.locator(BOT).first).to_contain_text("Paris")  # the first answer stays
            page.context.close()
    finally:
        public.close()
