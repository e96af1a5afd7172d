"""The lesson's five demos walked in a real browser (Debian's Chromium through Playwright) as a student
who has just read it: each tab opens with the lesson's words; the chat streams with its metrics; Stop
keeps the text and the metrics; the prompt view counts what the context meter counts; Get code's script,
run outside the app, prints the answer the page showed (each local engine); an image question answers;
the expert map's cells lie inside the map's box; an Arena round runs exactly the pickers' models, in a
new round after a vote, and a not-ready preset runs nothing. Embedded and tiny demo models, few tokens.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from playground.context import AppContext
from playground.ui.arena_tab import DENSE_VS_MOE, ArenaTab
from playground.ui.widgets import model_label
from playground.vision_examples import IMAGES_DIR
from tests.browser import TALL, WIDE, open_page, pick_model, screenshot, set_slider
from tests.support import QUESTION, loaded
from tests.test_get_code import run_script

pytestmark = pytest.mark.browser
ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
BOT = '#instruct-chat [data-testid="bot"]'
STORY = "Write a very long story about a lighthouse keeper and the sea."
METER = re.compile(r"[\d,]+ / [\d,]+ tokens")
# The script in a Code box: CodeMirror draws only the lines in view, so the text is read from its state.
CODE_TEXT = """(root) => {
    const content = root.querySelector('.cm-content');
    if (!content) return null;
    const tile = content.cmView || content.cmTile;
    const view = tile && (tile.view || (tile.rootView && tile.rootView.view) || (tile.root && tile.root.view));
    return view ? view.state.doc.toString() : null;
}"""


@pytest.fixture(autouse=True)
def _gradio_temp() -> None:
    """Not conftest's per-test GRADIO_TEMP_DIR here: the app checks that an uploaded file lies in the upload
    folder that variable names, and the running app put the uploads where it started."""


def words(text: str) -> str:
    return " ".join(text.split())


def code_in(page: Page, selector: str) -> str:
    text = page.locator(selector).evaluate(CODE_TEXT)
    assert isinstance(text, str), "the code box's text"
    return text


@pytest.mark.parametrize("model", [ONNX, HF])
def test_a_student_chats_reads_the_prompt_and_runs_the_code(
    page: Page, app_url: str, ctx: AppContext, tmp_path: Path, model: str
) -> None:
    open_page(page, app_url, viewport=TALL)
    expect(page.locator("#instruct-lesson")).to_contain_text("small language model")
    if model != ONNX:
        pick_model(page, ctx, model)
    set_slider(page, "instruct", "temperature", "0")
    set_slider(page, "instruct", "max-new-tokens", "12")
    page.fill("#instruct-input textarea", QUESTION)
    page.press("#instruct-input textarea", "Enter")
    expect(page.locator(BOT).nth(1)).to_contain_text("tok/s", timeout=90_000)  # the metrics line
    shown = page.locator(BOT).first.inner_text()
    meter = METER.search(page.locator("#instruct-meter").inner_text())
    assert shown.strip() and meter, "an answer, and the context meter's count"

    page.get_by_role("button", name="Prompt as the engine receives it").click()  # opened: filled
    prompt = page.locator("#instruct-prompt")
    expect(prompt).to_contain_text(meter.group(0), timeout=30_000)
    expect(prompt).to_contain_text("chat template's default")

    page.get_by_role("button", name=re.compile(r"^Get code")).click()
    page.click("#instruct-get-code")
    expect(page.locator("#instruct-code")).to_contain_text("Get code", timeout=30_000)
    code = code_in(page, "#instruct-code")
    assert QUESTION in code and "HuggingFaceTB/SmolLM2-135M-Instruct" in code
    assert words(run_script(code, tmp_path)) == words(shown), "the script prints the page's answer"
    pick_model(page, ctx, HF if model == ONNX else ONNX)
    expect(page.locator("#instruct-code")).not_to_contain_text("Get code", timeout=15_000)  # never stale
    if model == ONNX:  # the History tab with this conversation, for the README
        page.get_by_role("tab", name="History", exact=True).click()
        page.click("#history-refresh")
        row = page.locator("#history-list [role=gridcell]").filter(has_text=QUESTION[:30]).first
        row.click()
        expect(page.locator("#history-preview")).to_contain_text("temperature 0.0", timeout=15_000)
        assert "None" not in page.locator("#history-preview").inner_text(), "no Python reprs"
        screenshot(page, "history-tab.png")


def test_stop_keeps_the_text_and_the_metrics(page: Page, app_url: str) -> None:
    open_page(page, app_url, viewport=WIDE)
    set_slider(page, "instruct", "max-new-tokens", "2000")
    set_slider(page, "instruct", "temperature", "0")
    page.fill("#instruct-input textarea", STORY)
    page.click("#instruct-send")
    answer = page.locator(BOT).first
    expect(answer).to_contain_text(" ", timeout=60_000)
    page.wait_for_function(
        "s => (document.querySelector(s)?.innerText || '').length > 40", arg=BOT, timeout=60_000
    )
    page.click("#instruct-stop")
    metrics = page.locator(BOT).nth(1)
    expect(metrics).to_contain_text("stopped", timeout=30_000)
    expect(metrics).to_contain_text("tokens")
    assert len(answer.inner_text()) > 40, "the text stays"


def test_an_image_question_answers(page: Page, app_url: str) -> None:
    open_page(page, app_url, "Vision", "vision", WIDE)
    expect(page.locator("#vision-lesson")).to_contain_text("image tokens")
    set_slider(page, "vision", "max-new-tokens", "8")
    page.locator("#vision-input input[type=file]").set_input_files([str(IMAGES_DIR / "scene-before.png")])
    expect(page.locator("#vision-input img")).to_have_count(1, timeout=15_000)
    page.fill("#vision-input textarea", "What is in this picture?")
    page.click("#vision-send")
    bot = page.locator('#vision-chat [data-testid="bot"]')
    expect(bot.nth(1)).to_contain_text("tok/s", timeout=90_000)
    assert bot.first.inner_text().strip(), "an answer"


def test_the_expert_maps_cells_lie_inside_its_box(page: Page, app_url: str) -> None:
    open_page(page, app_url, "MoE", "moe", WIDE)
    expect(page.locator("#moe-lesson")).to_contain_text("16 experts, 2 active per token")
    expect(page.locator("#moe-lesson")).to_contain_text("4 experts, 2 active per token")
    assert "NaN" not in page.locator("#moe-load").inner_text(), "an empty chart, not NaN"
    set_slider(page, "moe", "max-new-tokens", "10")
    set_slider(page, "moe", "temperature", "0")
    page.fill("#moe-input textarea", "Tell me about the sea and its extraordinarily long lighthouses.")
    page.press("#moe-input textarea", "Enter")
    expect(page.locator('#moe-chat [data-testid="bot"]').nth(1)).to_contain_text("tok/s", timeout=90_000)
    cells = page.locator("#moe-map td.moe-cell")
    expect(cells.first).to_be_visible(timeout=15_000)
    box = page.locator("#moe-map .moe-map").bounding_box()
    assert box is not None
    first_row = page.locator("#moe-map tbody tr").first.locator("td.moe-cell").all()
    for cell in cells.all():
        rect = cell.bounding_box()
        assert rect is not None and rect["width"] > 4, "a cell shows"
        assert box["x"] <= rect["x"] and rect["x"] + rect["width"] <= box["x"] + box["width"] + 0.5, rect
    for cell in first_row:
        rect = cell.bounding_box()
        assert rect is not None and box["y"] <= rect["y"] <= box["y"] + box["height"], rect
    label = page.locator("#moe-map th.moe-token").first
    assert (label.get_attribute("title") or "").startswith("0 "), "the whole token on hover"


# The lines a header's text takes (each line box has its own top)
HEADER_LINES = """(th) => {
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    const tops = new Set();
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!node.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(node);
        for (const rect of range.getClientRects()) {
            if (rect.width > 0 && rect.height > 0) tops.add(Math.round(rect.top));
        }
    }
    return tops.size;
}"""


def one_line_headers(page: Page, table: str) -> None:
    headers = page.locator(f"#{table} thead th").all()
    assert headers, table
    for th in headers:
        text = th.inner_text().strip()
        if text:
            assert th.evaluate(HEADER_LINES) == 1, f"{table}: {text!r} wraps"


def test_the_tables_headers_keep_to_one_line(page: Page, app_url: str, ctx: AppContext) -> None:
    """Models and Providers: no header wraps inside a word; the tabs pictured for the README."""
    open_page(page, app_url, viewport=WIDE)
    loaded(ctx.registry, ONNX)  # loaded after the page was drawn: opening the tab shows it
    page.get_by_role("tab", name="Models", exact=True).click()
    expect(page.locator("#models-catalog")).to_be_visible(timeout=15_000)
    for table in ("models-catalog", "models-loaded", "models-local"):
        one_line_headers(page, table)
    expect(page.locator("#models-loaded")).to_contain_text(ONNX, timeout=15_000)  # filled when opened
    screenshot(page, "models-tab.png")
    page.get_by_role("tab", name="Providers", exact=True).click()
    expect(page.locator("#providers-list")).to_contain_text("Azure AI Foundry", timeout=15_000)
    expect(page.locator("#providers-list")).to_contain_text("GitHub Models")
    one_line_headers(page, "providers-list")
    screenshot(page, "providers-tab.png")


def choose(page: Page, box_id: str, label: str) -> None:
    box = page.locator(f"#{box_id} input")
    box.click()
    box.fill(label[:7])
    page.locator(f"#{box_id}").get_by_role("option", name=label, exact=True).click()


def test_an_arena_round_runs_exactly_the_pickers_models(page: Page, app_url: str, ctx: AppContext) -> None:
    open_page(page, app_url, "Arena", "arena", TALL)
    lesson = page.locator("#arena-lesson")
    expect(lesson).to_contain_text("two engines")
    expect(lesson).to_contain_text("Phi-3-mini vs Phi-3.5-mini is not ready here")
    expect(lesson).to_contain_text("Same model, two engines")
    page.get_by_text("System prompts and parameters").click()
    for name, value in (("temperature", "0"), ("max-new-tokens", "8")):
        set_slider(page, "arena-a", name, value)
    page.get_by_text("System prompts and parameters").click()
    labels = {r.spec.id: model_label(r) for r in ctx.registry.rows()}
    preset = next(label for label, key in ArenaTab(ctx).preset_choices() if key == DENSE_VS_MOE)
    choose(page, "arena-preset", preset)
    expect(page.locator("#arena-preset-note")).to_contain_text("83.8 GB", timeout=15_000)
    page.fill("#arena-input textarea", QUESTION)
    page.click("#arena-send")
    expect(page.locator("#arena-notice")).to_contain_text("not ready", timeout=30_000)
    expect(page.locator('#arena-chat-a [data-testid="bot"]')).to_have_count(0)

    choose(page, "arena-preset", "(none: pick below)")
    choose(page, "arena-model-a", labels[HF])
    choose(page, "arena-model-b", labels[ONNX])
    page.fill("#arena-input textarea", QUESTION)
    page.click("#arena-send")
    expect(page.locator("#arena-metrics-b")).to_contain_text("tok/s", timeout=90_000)
    expect(page.locator("#arena-head-a")).to_contain_text(HF)
    expect(page.locator("#arena-head-b")).to_contain_text(ONNX)
    page.locator("#arena-vote-a").click()
    expect(page.locator("#arena-notice")).to_contain_text("Your vote", timeout=30_000)

    choose(page, "arena-model-a", labels[ONNX])  # other pickers after the vote: a battle of their own
    choose(page, "arena-model-b", labels[HF])
    page.fill("#arena-input textarea", "And of Italy?")
    page.click("#arena-send")
    expect(page.locator("#arena-head-a")).to_contain_text(ONNX, timeout=90_000)
    expect(page.locator("#arena-head-b")).to_contain_text(HF)
    expect(page.locator("#arena-metrics-a")).to_contain_text("tok/s", timeout=90_000)
    expect(page.locator('#arena-chat-a [data-testid="user"]')).to_have_count(1)
    expect(page.locator("#arena-vote-a")).to_be_enabled(timeout=15_000)
