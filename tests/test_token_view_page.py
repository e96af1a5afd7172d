"""The token view in a real browser (Debian's Chromium through Playwright): tick Token view, ask, and the
answer's tokens appear under it, tinted; hovering one opens its alternatives, and picking one branches
the answer there (the switch brings the first answer back). The screenshots go to
.test-artifacts/screenshots/token-view.png (and token-branch.png), and to SCREENSHOTS_DIR when set (docs/ for the README)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import WIDE, open_page, screenshot, set_slider

pytestmark = pytest.mark.browser


def test_the_token_view_shows_each_token_and_its_alternatives(page: Page, app_url: str) -> None:
    open_page(page, app_url, viewport=WIDE)
    set_slider(page, "instruct", "max-new-tokens", "16")
    set_slider(page, "instruct", "temperature", "0")
    view = page.locator("#instruct-tokens")
    expect(view).to_be_hidden()
    page.locator("#instruct-token-view input").check()
    expect(view).to_be_visible()
    page.fill("#instruct-input textarea", "What is the capital of France?")
    page.press("#instruct-input textarea", "Enter")
    expect(page.locator("#instruct-chat")).to_contain_text("tok/s", timeout=90_000)
    tokens = view.locator(".tv-tok")
    expect(tokens.first).to_be_visible(timeout=15_000)
    assert tokens.count() == 16
    expect(view).to_contain_text("distribution the token was drawn from")
    alternatives = tokens.nth(5).locator(".tv-alts")
    expect(alternatives).to_be_hidden()
    tokens.nth(5).hover()
    expect(alternatives).to_be_visible()
    expect(alternatives).to_contain_text("entropy")
    assert alternatives.locator(".tv-alt").count() == 10
    tokens.nth(5).focus()  # a tap: the alternatives stay open for the picture
    view.scroll_into_view_if_needed()
    box = view.bounding_box()
    assert box is not None
    area = {"x": 0, "y": max(0, box["y"] - 330), "width": 900, "height": box["height"] + 330 + 300}
    screenshot(page, "token-view.png", clip=area)  # type: ignore[arg-type]

    # Branch: pick the alternative below the chosen one; the answer streams again from that token
    chat = page.locator("#instruct-chat")
    first = chat.locator(".message.bot").first.inner_text()
    tokens.nth(5).hover()
    picked = alternatives.locator("button.tv-alt").first
    picked.click()
    expect(chat).to_contain_text("branch from token 6", timeout=90_000)
    expect(view.locator(".tv-tok.tv-forced")).to_have_count(1, timeout=15_000)
    switch = page.locator("#instruct-branches")
    expect(switch).to_be_visible()
    expect(switch).to_contain_text("at token 6")
    chat.scroll_into_view_if_needed()
    top, bottom = chat.bounding_box(), view.bounding_box()
    assert top is not None and bottom is not None
    shown = {"x": 0, "y": top["y"], "width": 850, "height": bottom["y"] + bottom["height"] - top["y"] + 8}
    screenshot(page, "token-branch.png", clip=shown)  # type: ignore[arg-type]
    branched = chat.locator(".message.bot").first.inner_text()
    assert branched != first, (first, branched)
    switch.get_by_text("1. the first answer").click()
    expect(chat.locator(".message.bot").first).to_have_text(first, timeout=15_000)
    expect(chat).not_to_contain_text("branch from token 6")

    page.locator("#instruct-token-view input").uncheck()
    expect(view).to_be_hidden()
