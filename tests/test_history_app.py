"""History through the real app in a real browser: kept, continued, private to each visitor, incognito."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Browser, Page, expect

from playground.context import AppContext

pytestmark = pytest.mark.browser
BOT = '#instruct-chat [data-testid="bot"]'


def ask(page: Page, question: str) -> None:
    box = page.locator("#instruct-max-new-tokens input[type=number]")
    box.fill("16")
    box.press("Enter")
    before = page.locator(BOT).count()
    page.fill("#instruct-input textarea", question)
    page.press("#instruct-input textarea", "Enter")
    expect(page.locator(BOT)).to_have_count(before + 2, timeout=60_000)  # the answer and its metrics line
    expect(page.locator(BOT).last).to_contain_text("tokens", timeout=60_000)


def history_rows(page: Page) -> str:
    page.get_by_role("tab", name="History").click()
    page.click("#history-refresh")
    page.wait_for_timeout(800)
    return page.locator("#history-list").inner_text()


def test_each_visitor_sees_only_their_own_conversations(
    browser: Browser, app_url: str, ctx: AppContext
) -> None:
    marker = f"zebra-{uuid.uuid4().hex[:8]}"
    alice = browser.new_context().new_page()
    bob = browser.new_context().new_page()
    for page in (alice, bob):
        page.goto(app_url)
        page.wait_for_selector("#instruct-input textarea")
    ask(alice, f"Say hello to {marker}.")
    assert marker in history_rows(alice)
    assert marker not in history_rows(bob)
    bob.fill("#history-search textarea", marker)
    bob.press("#history-search textarea", "Enter")
    bob.wait_for_timeout(800)
    assert marker not in bob.locator("#history-list").inner_text()

    owners = {c.owner for c in ctx.history.conversations.list_all_conversations() if marker in c.title}
    assert len(owners) == 1, "the conversation belongs to one visitor id"


def test_a_visitor_comes_back_and_continues(page: Page, app_url: str, ctx: AppContext) -> None:
    marker = f"walrus-{uuid.uuid4().hex[:8]}"
    page.goto(app_url)
    page.wait_for_selector("#instruct-input textarea")
    ask(page, f"Remember the word {marker}.")
    page.reload()  # the tab is closed and opened again: same browser, same id
    page.wait_for_selector("#instruct-input textarea")
    assert marker in history_rows(page)
    page.locator("#history-list [role=gridcell]").filter(has_text=marker).first.click()
    expect(page.locator("#history-preview")).to_contain_text(marker, timeout=10_000)
    page.click("#history-open")
    expect(page.locator('#instruct-chat [data-testid="user"]').first).to_contain_text(marker, timeout=10_000)
    ask(page, "And one more question.")
    stored = next(c for c in ctx.history.conversations.list_all_conversations() if marker in c.title)
    assert stored.message_count == 4, "the continued conversation grew in the store"


def test_incognito_conversations_are_never_written(page: Page, app_url: str, ctx: AppContext) -> None:
    marker = f"okapi-{uuid.uuid4().hex[:8]}"
    page.goto(app_url)
    page.wait_for_selector("#instruct-input textarea")
    page.locator("#instruct-incognito input").check()
    ask(page, f"A secret about {marker}.")
    assert page.locator(BOT).first.inner_text().strip(), "the answer streamed"
    assert not [c for c in ctx.history.conversations.list_all_conversations() if marker in c.title]
    assert marker not in history_rows(page)
