"""The Vision and MoE tabs in a real browser (Debian's Chromium through Playwright), with the demo models:
an attached image gets an answer, the expert map renders as the answer streams, and a conversation opened
from the History tab lands in the tab it came from.

Screenshots of both tabs go to a temporary folder; with SCREENSHOTS_DIR set (docs/ for the README) they
are saved there too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from playground.vision_examples import IMAGES_DIR

pytestmark = pytest.mark.browser
VISION_BOT = '#vision-chat [data-testid="bot"]'
MOE_BOT = '#moe-chat [data-testid="bot"]'


@pytest.fixture(autouse=True)
def _gradio_temp() -> None:
    """Not conftest's per-test GRADIO_TEMP_DIR here: the app checks that an uploaded file lies in the upload
    folder that variable names, and the running app put the uploads where it started."""


def open_tab(page: Page, url: str, name: str, prefix: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1100})
    page.goto(url)
    page.wait_for_selector("#instruct-input textarea")
    page.get_by_role("tab", name=name, exact=True).click()
    page.wait_for_selector(f"#{prefix}-input textarea")


def set_slider(page: Page, prefix: str, name: str, value: str) -> None:
    box = page.locator(f"#{prefix}-{name} input[type=number]")
    box.fill(value)
    box.press("Enter")


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.evaluate("window.scrollTo(0, 0)")
    for chat in page.locator(".bubble-wrap").all():  # each chat from its top: the question and its images
        chat.evaluate("e => e.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 10_000, "the screenshot shows the page"
    folder = os.environ.get("SCREENSHOTS_DIR")
    if folder:
        shutil.copyfile(path, Path(folder) / name)


def test_a_visitor_asks_about_attached_images(page: Page, app_url: str, tmp_path: Path) -> None:
    open_tab(page, app_url, "Vision", "vision")
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
    expect(page.locator("#vision-notice")).not_to_contain_text("⚠")
    for img in user.locator("img").all():  # the images are served by the app itself, and load
        assert img.evaluate("i => i.complete && i.naturalWidth > 0")
        assert "/gradio_api/file=" in (img.get_attribute("src") or "")
    screenshot(page, tmp_path, "vision-tab.png")


def test_a_text_only_model_says_it_takes_no_images(page: Page, app_url: str) -> None:
    open_tab(page, app_url, "Vision", "vision")
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
    expect(page.locator('#vision-chat [data-testid="user"] img')).to_have_count(1)


def test_the_moe_map_renders_and_comes_back_from_the_history(
    page: Page, app_url: str, tmp_path: Path
) -> None:
    open_tab(page, app_url, "MoE", "moe")
    expect(page.locator("#moe-card")).to_contain_text("Random weights: this shows the mechanism")
    set_slider(page, "moe", "max-new-tokens", "24")
    set_slider(page, "moe", "temperature", "0")
    marker = "Tell me about lighthouses and the sea."
    page.fill("#moe-input textarea", marker)
    page.press("#moe-input textarea", "Enter")
    expect(page.locator(MOE_BOT).nth(1)).to_contain_text("tok/s", timeout=90_000)
    cells = page.locator("#moe-map td.moe-cell")
    expect(cells.first).to_be_visible(timeout=15_000)
    rows = page.locator("#moe-map tbody tr").count()
    assert rows > 0 and cells.count() == rows * 2, "one cell per token and layer (2 layers)"
    hover = cells.first.get_attribute("title") or ""
    assert "layer 0" in hover and "weight" in hover
    expect(page.locator("#moe-load canvas, #moe-load svg").first).to_be_visible(timeout=15_000)
    screenshot(page, tmp_path, "moe-tab.png")

    # A fresh page: the conversation opens from the History tab into the MoE tab, with its map.
    page.goto(app_url)
    page.wait_for_selector("#instruct-input textarea")
    page.get_by_role("tab", name="History", exact=True).click()
    page.click("#history-refresh")
    page.locator("#history-list [role=gridcell]").filter(has_text=marker[:30]).first.click()
    page.click("#history-open")
    expect(page.locator("#moe-chat")).to_be_visible(timeout=15_000)
    expect(page.locator('#moe-chat [data-testid="user"]').first).to_contain_text(marker, timeout=15_000)
    expect(page.locator("#moe-map tbody tr")).to_have_count(rows, timeout=15_000)
    expect(page.locator("#moe-notice")).to_contain_text("Continuing")


def test_a_pasted_image_is_attached(page: Page, app_url: str) -> None:
    open_tab(page, app_url, "Vision", "vision")
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
