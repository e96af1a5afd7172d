"""The Instruct tab in a real browser (Debian's Chromium through Playwright)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from playground.context import AppContext
from tests.support import QUESTION

pytestmark = pytest.mark.browser
BOT = '#instruct-chat [data-testid="bot"]'


def open_tab(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#instruct-input textarea")


def set_slider(page: Page, name: str, value: str) -> None:
    box = page.locator(f"#instruct-{name} input[type=number]")
    box.fill(value)
    box.press("Enter")


def test_a_visitor_chats_with_the_embedded_model(page: Page, app_url: str) -> None:
    open_tab(page, app_url)
    set_slider(page, "temperature", "0")
    page.fill("#instruct-input textarea", QUESTION)
    page.press("#instruct-input textarea", "Enter")
    answer = page.locator(BOT).first
    expect(answer).to_contain_text("Paris", timeout=60_000)
    expect(page.locator(BOT).nth(1)).to_contain_text("tok/s", timeout=30_000)
    expect(page.locator(BOT).nth(1)).to_contain_text("ONNX Runtime GenAI")
    expect(page.locator("#instruct-meter")).to_contain_text("/ 8,192 tokens")

    page.click("#instruct-show-prompt")
    prompt = page.locator("#instruct-prompt")
    expect(prompt).to_contain_text("<|im_start|>user", timeout=15_000)
    expect(prompt).to_contain_text(QUESTION)


def test_stop_ends_the_engine_and_keeps_the_partial_answer(page: Page, app_url: str, ctx: AppContext) -> None:
    stats = ctx.registry.get("smollm2-135m-instruct@onnx").stats  # type: ignore[attr-defined]
    open_tab(page, app_url)
    set_slider(page, "max-new-tokens", "4096")
    set_slider(page, "temperature", "0")  # greedy: this story runs to the token limit
    page.fill("#instruct-input textarea", "Write a very long story about a lighthouse keeper and the sea.")
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
    partial = page.locator(BOT).first.inner_text()
    assert len(partial) > 5
    expect(page.locator(BOT).nth(1)).to_contain_text("stopped", timeout=10_000)


def test_get_code_writes_a_runnable_script_for_the_request(page: Page, app_url: str) -> None:
    open_tab(page, app_url)
    page.fill("#instruct-input textarea", QUESTION)
    page.get_by_text("Get code").click()
    page.click("#instruct-get-code")
    code = page.locator("#instruct-code")
    expect(code).to_contain_text("import onnxruntime_genai", timeout=15_000)
    expect(code).to_contain_text("capital of France")
