"""The Evaluate tab in a real browser (Debian's Chromium through Playwright): two models of the embedded
SmolLM2 (ONNX Runtime GenAI and transformers) over a bundled prompt set, run from the page; the table of
models, the chart and every answer are drawn from that run. Its screenshot goes to
.test-artifacts/screenshots/evaluate-tab.png, and to SCREENSHOTS_DIR when set (docs/ for the README).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import WIDE, open_page, screenshot

pytestmark = pytest.mark.browser
MODELS = ("SmolLM2-135M-Instruct · ONNX Runtime GenAI", "SmolLM2-135M-Instruct · transformers")


def test_an_evaluation_runs_from_the_page_and_draws_its_table_and_chart(page: Page, app_url: str) -> None:
    open_page(page, app_url, None, None, WIDE)
    page.get_by_role("tab", name="Evaluate", exact=True).click()
    box = page.locator("#evaluate-models input")
    for name in MODELS:
        box.click()
        page.get_by_role("option", name=name, exact=False).first.click()
    page.locator("#evaluate-set input").click()
    page.get_by_role("option", name="json", exact=True).click()
    page.click("#evaluate-run")
    table = page.locator("#evaluate-table")
    expect(table).to_contain_text("smollm2-135m-instruct@onnx", timeout=180_000)
    expect(table).to_contain_text("smollm2-135m-instruct@transformers")
    expect(table).to_contain_text("worker (measured)")  # the peak memory of each model's worker
    expect(page.locator("#evaluate-progress")).to_contain_text("6 of 6 answers, done")
    expect(
        page.locator("#evaluate-chart img, #evaluate-chart svg, #evaluate-chart canvas").first
    ).to_be_visible(timeout=30_000)
    page.get_by_text("Every answer", exact=True).click()
    items = page.locator("#evaluate-items")
    expect(items).to_contain_text("smollm2-135m-instruct@transformers", timeout=15_000)
    shown = items.inner_text()
    assert shown.count("✓") + shown.count("✗") == 6, "a check's mark for each of the 6 answers"
    screenshot(page, "evaluate-tab.png", full_page=True)
