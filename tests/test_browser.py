"""The Instruct tab in a real browser (Debian's Chromium through Playwright): Get code.

A visitor's chat, its streaming and Stop are in the end-to-end tests (tests/test_e2e.py)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import open_page
from tests.support import QUESTION

pytestmark = pytest.mark.browser


def test_get_code_writes_a_runnable_script_for_the_request(page: Page, app_url: str) -> None:
    open_page(page, app_url)
    page.fill("#instruct-input textarea", QUESTION)
    page.get_by_text("Get code").click()
    page.click("#instruct-get-code")
    code = page.locator("#instruct-code")
    expect(code).to_contain_text("import onnxruntime_genai", timeout=15_000)
    expect(code).to_contain_text("capital of France")
