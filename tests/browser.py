"""Helpers of the browser tests (Debian's Chromium through Playwright): open the page on a tab, set a
slider, watch an answer stream, and save a screenshot as a test artifact.

Screenshots go to `.test-artifacts/screenshots/` (gitignored; CI keeps the folder, and the run's summary
prints its path); with SCREENSHOTS_DIR set (docs/ for the README) each one is copied there too.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import FloatRect, Page, ViewportSize

from playground.context import AppContext
from playground.conversations import ConversationService
from playground.history import HistoryStore
from playground.ui.widgets import model_label
from tests.support import ROOT

ARTIFACTS = Path(os.environ.get("PLAYGROUND_TEST_ARTIFACTS") or ROOT / ".test-artifacts") / "screenshots"
WIDE: ViewportSize = {"width": 1400, "height": 1100}
TALL: ViewportSize = {"width": 1400, "height": 1300}


def open_page(
    page: Page,
    url: str,
    tab: str | None = None,
    prefix: str | None = None,
    viewport: ViewportSize | None = None,
) -> None:
    """The page at `url`, on the tab named `tab` (whose input box is `#<prefix>-input`)."""
    if viewport is not None:
        page.set_viewport_size(viewport)
    page.goto(url)
    page.wait_for_selector("#instruct-input textarea")
    if tab is not None:
        page.get_by_role("tab", name=tab, exact=True).click()
        page.wait_for_selector(f"#{prefix or tab.lower()}-input textarea")


def set_slider(page: Page, prefix: str, name: str, value: str) -> None:
    """Type a value into a parameter's number box (`#<prefix>-<name>`), as a visitor does."""
    box = page.locator(f"#{prefix}-{name} input[type=number]")
    box.fill(value)
    box.press("Enter")


def pick_model(page: Page, ctx: AppContext, model_id: str, prefix: str = "instruct") -> None:
    """Choose a model in a tab's picker as a visitor does: type part of its name, click its label."""
    row = next(r for r in ctx.registry.rows() if r.spec.id == model_id)
    box = page.locator(f"#{prefix}-model input")
    box.click()
    box.fill(row.spec.name[:7])
    page.get_by_role("option", name=model_label(row)).click()


def screenshot(
    page: Page,
    name: str,
    *,
    full_page: bool = False,
    chats_from_top: bool = True,
    clip: FloatRect | None = None,
) -> Path:
    """The page from its top (each chat from its top too, or its end: the question and its images) as
    ARTIFACTS/<name>, copied to SCREENSHOTS_DIR when that is set; `clip`: that part of the page only,
    as it is scrolled now."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    if clip is None:
        page.evaluate("window.scrollTo(0, 0)")
        for chat in page.locator(".bubble-wrap").all():
            if chat.is_visible():
                chat.evaluate("(e, top) => e.scrollTo(0, top ? 0 : e.scrollHeight)", chats_from_top)
    page.wait_for_timeout(300)
    page.screenshot(path=str(path), full_page=full_page, clip=clip)
    assert path.stat().st_size > 10_000, "the screenshot shows the page"
    folder = os.environ.get("SCREENSHOTS_DIR")
    if folder:
        shutil.copyfile(path, Path(folder) / name)
    return path


# Streaming, seen from the page: every change of one answer bubble, recorded in the browser itself (no
# polling round trips, so a quick answer's intermediate states are not missed).
_WATCH = """([chat, index]) => {
    const root = document.querySelector(chat);
    const seen = [];
    window.__answerSeen = seen;
    const note = () => {
        const bot = root.querySelectorAll('[data-testid="bot"]')[index];
        const text = bot ? bot.innerText.trim() : "";
        if (text && (seen.length === 0 || seen[seen.length - 1] !== text)) seen.push(text);
    };
    new MutationObserver(note).observe(root, {subtree: true, childList: true, characterData: true});
}"""


def watch_answer(page: Page, chat: str, index: int) -> None:
    """Start recording each text the `index`-th bot bubble of `chat` (a CSS selector) shows."""
    page.evaluate(_WATCH, [chat, index])


def answer_states(page: Page) -> list[str]:
    """The successive texts recorded since `watch_answer`."""
    seen: Any = page.evaluate("window.__answerSeen || []")
    return [str(s) for s in seen]


def with_settings(ctx: AppContext, data_dir: Path, **changes: Any) -> AppContext:
    """The session's loaded models with other settings and an empty history of its own in `data_dir`
    (closed by the caller: `ctx.history.close()`)."""
    settings = dataclasses.replace(ctx.settings, data_dir=data_dir, history_path_override=None, **changes)
    store = HistoryStore(settings.history_path)
    return dataclasses.replace(
        ctx, settings=settings, history=store, conversations=ConversationService(store)
    )
