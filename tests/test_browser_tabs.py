"""The Vision and MoE tabs in a real browser (Debian's Chromium through Playwright), with the demo models:
a text-only model says it takes no images, a pasted image is attached, the expert map renders as the
answer streams, and a conversation opened from the History tab lands in the tab it came from.

An image attached in the Vision tab and its answer are in the end-to-end tests (tests/test_e2e.py). The
MoE screenshot goes to .test-artifacts/screenshots/moe-tab.png (tests/browser.py), and to
SCREENSHOTS_DIR when set (docs/ for the README).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from playground.vision_examples import IMAGES_DIR
from tests.browser import WIDE, open_page, screenshot, set_slider

pytestmark = pytest.mark.browser
MOE_BOT = '#moe-chat [data-testid="bot"]'


@pytest.fixture(autouse=True)
def _gradio_temp() -> None:
    """Not conftest's per-test GRADIO_TEMP_DIR here: the app checks that an uploaded file lies in the upload
    folder that variable names, and the running app put the uploads where it started."""


def test_a_text_only_model_says_it_takes_no_images(page: Page, app_url: str) -> None:
    open_page(page, app_url, "Vision", "vision", WIDE)
    box = page.locator("#vision-model input")
    box.click()
    box.fill("smollm2-135m")
    expect(page.get_by_role("option").first).to_be_visible()
    assert not page.get_by_role("option", name="SmolLM2-135M-Instruct · ONNX Runtime GenAI").count(), (
        "the picker lists vision models only"
    )
    box.fill("smollm2-135m-instruct@onnx")  # typed: the picker takes any model id
    box.press("Enter")
    page.locator("#vision-input input[type=file]").set_input_files(str(IMAGES_DIR / "sign.png"))
    expect(page.locator("#vision-input img")).to_have_count(1, timeout=15_000)
    page.fill("#vision-input textarea", "Read the sign.")
    page.click("#vision-send")
    notice = page.locator("#vision-notice")
    expect(notice).to_contain_text("does not take images", timeout=30_000)
    expect(notice).to_contain_text("pick a vision model")
    # Refused before any answer: the question and its image go back to the box, nothing is lost
    expect(page.locator("#vision-input textarea")).to_have_value("Read the sign.", timeout=15_000)
    expect(page.locator("#vision-input img")).to_have_count(1)
    expect(page.locator('#vision-chat [data-testid="user"]')).to_have_count(0)


def test_the_moe_map_renders_and_comes_back_from_the_history(page: Page, app_url: str) -> None:
    """The map streams by delta (each update appends the new tokens' rows): after the answer it holds a
    row for every token; a new question starts it again, New conversation empties it, and the
    conversation opened from the History tab draws it whole at once."""
    open_page(page, app_url, "MoE", "moe", WIDE)
    expect(page.locator("#moe-card")).to_contain_text("Random weights: this shows the mechanism")
    set_slider(page, "moe", "max-new-tokens", "24")
    set_slider(page, "moe", "temperature", "0")
    marker = "Tell me about lighthouses and the sea."
    page.fill("#moe-input textarea", marker)
    page.press("#moe-input textarea", "Enter")
    expect(page.locator(MOE_BOT).nth(1)).to_contain_text("24 tokens", timeout=90_000)
    cells = page.locator("#moe-map td.moe-cell")
    rows = page.locator("#moe-map tbody tr")
    expect(rows).to_have_count(24, timeout=15_000)
    assert cells.count() == 24 * 2, "one cell per token and layer (2 layers)"
    expect(rows.last.locator("th")).to_have_attribute("title", re.compile(r"^23 "))
    expect(page.locator("#moe-map")).to_contain_text("24 tokens × 2 layers")
    assert page.locator("#moe-map [data-missed]").count() == 0, "no update was missed"
    hover = cells.first.get_attribute("title") or ""
    assert "layer 0" in hover and "weight" in hover
    expect(page.locator("#moe-load canvas, #moe-load svg").first).to_be_visible(timeout=15_000)
    screenshot(page, "moe-tab.png")

    # A new question: the map starts again with the new answer's rows only.
    set_slider(page, "moe", "max-new-tokens", "16")
    page.fill("#moe-input textarea", "And about ships?")
    page.press("#moe-input textarea", "Enter")
    expect(page.locator(MOE_BOT).nth(3)).to_contain_text("16 tokens", timeout=90_000)
    expect(rows).to_have_count(16, timeout=15_000)
    expect(rows.first.locator("th")).to_have_attribute("title", re.compile(r"^0 "))
    page.click("#moe-new")
    expect(page.locator("#moe-map")).to_contain_text("No expert map yet", timeout=15_000)
    assert rows.count() == 0

    # A fresh page: the conversation opens from the History tab into the MoE tab, with its last map.
    page.goto(app_url)
    page.wait_for_selector("#instruct-input textarea")
    page.get_by_role("tab", name="History", exact=True).click()
    page.click("#history-refresh")
    page.locator("#history-list [role=gridcell]").filter(has_text=marker[:30]).first.click()
    page.click("#history-open")
    expect(page.locator("#moe-chat")).to_be_visible(timeout=15_000)
    expect(page.locator('#moe-chat [data-testid="user"]').first).to_contain_text(marker, timeout=15_000)
    expect(rows).to_have_count(16, timeout=15_000)
    expect(page.locator("#moe-map")).to_contain_text("16 tokens × 2 layers")
    expect(page.locator("#moe-notice")).to_contain_text("Continuing")


def test_a_pasted_image_is_attached(page: Page, app_url: str) -> None:
    open_page(page, app_url, "Vision", "vision", WIDE)
    data = list((IMAGES_DIR / "chart.png").read_bytes())
    page.locator("#vision-input textarea").evaluate(
        """(box, bytes) => {
            const file = new File([new Uint8Array(bytes)], "pasted.png", {type: "image/png"});
            const data = new DataTransfer();
            data.items.add(file);
            box.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
        }""",
        data,
    )
    expect(page.locator("#vision-input img")).to_have_count(1, timeout=15_000)
