"""Visitor identity through the real app: the signing secret never reaches the page, and a visitor
whose id the server no longer recognises gets a new one with their history restored from the browser."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from playground.context import AppContext
from playground.ui.app import BROWSER_COPY_KEY
from tests.browser import with_settings
from tests.support import serving

SECRET = "operator-secret-" + uuid.uuid4().hex
BOT = '#instruct-chat [data-testid="bot"]'


def app_context(ctx: AppContext, data_dir: Path, secret: str | None) -> AppContext:
    """The session's models, with this test's own settings and an empty history of its own."""
    return with_settings(ctx, data_dir, browser_secret=secret, browser_history=True)


@contextmanager
def serving_history(ctx: AppContext, port: int | None = None) -> Iterator[str]:
    """The app on `ctx`, whose own history store is closed with it."""
    try:
        with serving(ctx, port) as url:
            yield url
    finally:
        ctx.history.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_signing_secret_never_reaches_the_page(ctx: AppContext, tmp_path: Path) -> None:
    with serving_history(app_context(ctx, tmp_path, SECRET)) as url:
        for path in ("", "config", "gradio_api/info"):
            response = httpx.get(url + path, timeout=30)
            assert response.status_code == 200, path
            assert SECRET not in response.text, f"the secret is in /{path}"
            assert "operator-secret-" not in response.text


def ask(page: Page, question: str) -> None:
    box = page.locator("#instruct-max-new-tokens input[type=number]")
    box.fill("8")
    box.press("Enter")
    page.fill("#instruct-input textarea", question)
    page.press("#instruct-input textarea", "Enter")
    expect(page.locator(BOT).last).to_contain_text("tokens", timeout=60_000)


@pytest.mark.browser
def test_a_lost_key_restores_the_browser_copy_under_a_new_id(
    browser: Browser, ctx: AppContext, tmp_path: Path
) -> None:
    marker = f"heron-{uuid.uuid4().hex[:8]}"
    port = free_port()
    page = browser.new_context().new_page()
    first = app_context(ctx, tmp_path / "before", None)  # no secret: a key in the data folder
    with serving_history(first, port) as url:
        page.goto(url)
        page.wait_for_selector("#instruct-input textarea")
        ask(page, f"Say hello to {marker}.")
        page.wait_for_function(f"() => localStorage.getItem('{BROWSER_COPY_KEY}') !== null", timeout=30_000)
        [before] = [c for c in first.history.conversations.list_all_conversations() if marker in c.title]
        assert SECRET not in page.content()

    # The Space restarts on an empty disk without PLAYGROUND_BROWSER_SECRET: a new key, no history.
    second = app_context(ctx, tmp_path / "after", None)
    with serving_history(second, port) as url:
        page.goto(url)
        page.get_by_role("tab", name="History").click()
        expect(page.locator("#history-notice")).to_contain_text(
            "did not recognise this browser's visitor id", timeout=30_000
        )
        expect(page.locator("#history-notice")).to_contain_text("restored from this browser's copy")
        page.click("#history-refresh")
        expect(page.locator("#history-list")).to_contain_text(marker, timeout=10_000)
        [after] = [c for c in second.history.conversations.list_all_conversations() if marker in c.title]
        assert after.owner != before.owner, "a new id: the old one was signed with the lost key"
        assert before.owner not in page.content() and after.owner not in page.content()
