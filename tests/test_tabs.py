"""The Instruct, Vision and MoE tabs' handlers with the demo models (real engines, structure not words):
one chat region, three configurations; images reach the model and the history; the expert map streams,
is saved and comes back when the conversation is opened from the History tab, in the tab it came from."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest

from playground.context import AppContext
from playground.conversations import ConversationService
from playground.history import HistoryStore, new_browser_id
from playground.history.quota import Quota
from playground.moe_view import unpack
from playground.ui.chat_parts import add_question, attach_photo, box_parts
from playground.ui.chat_region import ChatRegion, RegionUI
from playground.ui.delta import DeltaPage
from playground.ui.history_tab import HistoryTab
from playground.ui.instruct import InstructTab
from playground.ui.moe_tab import MoeTab, card_markdown, map_html
from playground.ui.vision_tab import VisionTab
from playground.vision_examples import IMAGES_DIR, load_vision_examples
from tests.support import make_settings

MOE_DEMO = "tiny-phimoe-demo@transformers"
VISION_DEMO = "tiny-vision-demo@transformers"
EMBEDDED = "smollm2-135m-instruct@onnx"
GREEDY = (0.0, 1.0, 0, 12, 1.0, -1, "")  # temperature, top-p, top-k, max new tokens, penalty, seed, stop
ROW = re.compile(r'<tr><th class="moe-token"')


def answer(
    region: ChatRegion,
    conversation: list[dict[str, Any]],
    owner: str,
    model: str,
    *,
    conversation_id: str | None = None,
    incognito: bool = False,
    num_crops: float | None = None,
    session: str = "test-session",
    address: str | None = None,
    token_view: bool = False,
    response_format: tuple[str, str] = ("Text", ""),
    options: tuple[Any, ...] = GREEDY,
) -> list[tuple[Any, ...]]:
    """Every update `respond` yields for the last question, as the page would receive them (from
    this client address, when given)."""
    client = None if address is None else SimpleNamespace(host=address)

    async def run() -> list[tuple[Any, ...]]:
        stream: AsyncIterator[tuple[Any, ...]] = region.respond(
            gr.Request(session_hash=session, client=client),
            conversation,
            conversation_id,
            owner,
            {},
            incognito,
            token_view,
            *response_format,
            model,
            "",
            *options,
            num_crops,
        )
        return [update async for update in stream]

    with ThreadPoolExecutor(1) as pool:  # a loop of its own (a browser test may hold this thread's loop)
        return pool.submit(asyncio.run, run()).result()


def ask(value: Any, conversation: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    _, conversation, _, _ = add_question(value, conversation or [], False)
    return conversation


def build(ctx: AppContext) -> tuple[HistoryTab, list[RegionUI], dict[str, ChatRegion]]:
    """The three chat tabs and the History tab wired as the app wires them."""
    regions = {"instruct": InstructTab(ctx), "vision": VisionTab(ctx), "moe": MoeTab(ctx)}
    history = HistoryTab(ctx)
    with gr.Blocks():
        owner = gr.State(None)
        with gr.Tabs() as tabs:
            uis = []
            for name, region in regions.items():
                with gr.Tab(name, id=name):
                    uis.append(region.build(owner))
            with gr.Tab("History", id="history"):
                history.build(owner, tabs)
    return history, uis, regions


@pytest.fixture(scope="module")
def tabs(ctx: AppContext) -> tuple[HistoryTab, list[RegionUI], dict[str, ChatRegion]]:
    return build(ctx)


def test_the_three_tabs_are_one_region_with_their_own_ids(tabs: Any) -> None:
    _, uis, regions = tabs
    assert [ui.tab for ui in uis] == ["instruct", "vision", "moe"]
    assert [ui.chatbot.elem_id for ui in uis] == ["instruct-chat", "vision-chat", "moe-chat"]
    assert all(isinstance(region, ChatRegion) for region in regions.values())
    vision_choices = [value for _, value in regions["vision"].choices]
    moe_choices = [value for _, value in regions["moe"].choices]
    assert VISION_DEMO in vision_choices and EMBEDDED not in vision_choices
    assert MOE_DEMO in moe_choices and VISION_DEMO not in moe_choices
    assert regions["instruct"].default_model == EMBEDDED
    assert regions["vision"].default_model == VISION_DEMO, "a ready model is picked first"
    assert regions["moe"].default_model == MOE_DEMO
    assert len(uis[2].shows) == 4, "the MoE tab shows its map and load, the branches, the token view"
    assert [ui.shows[-1].elem_id for ui in uis] == ["instruct-tokens", "vision-tokens", "moe-tokens"]
    assert [ui.shows[-2].elem_id for ui in uis] == ["instruct-branches", "vision-branches", "moe-branches"]


def test_a_question_with_images_keeps_them_in_order(tmp_path: Path) -> None:
    value = {"text": "Compare them.", "files": ["/a/one.png", {"path": "/a/two.png"}]}
    box, conversation, chat, editing = add_question(value, [], False)
    assert box == {"text": "", "files": []} and not editing
    assert conversation[-1]["images"] == ["/a/one.png", "/a/two.png"]
    parts = chat[-1]["content"]
    assert [p["path"] for p in parts[:2]] == ["/a/one.png", "/a/two.png"] and parts[2] == "Compare them."
    assert [p["alt_text"] for p in parts[:2]] == ["image 1", "image 2"]
    assert box_parts({"text": "", "files": []}) == ("", [])
    _, unchanged, _, _ = add_question({"text": "  ", "files": []}, conversation, False)
    assert unchanged == conversation, "an empty box sends nothing"


def test_a_webcam_photo_joins_the_question_being_written() -> None:
    value, camera = attach_photo("/tmp/photo.png", {"text": "What is this?", "files": ["/tmp/a.png"]})
    assert value == {"text": "What is this?", "files": ["/tmp/a.png", "/tmp/photo.png"]}
    assert camera is None, "the camera is cleared for the next photo"


def test_vision_demo_answers_about_an_image_and_keeps_it(ctx: AppContext, tabs: Any) -> None:
    history, uis, regions = tabs
    owner = new_browser_id()
    image = str(IMAGES_DIR / "chart.png")
    updates = answer(regions["vision"], ask({"text": "What is this?", "files": [image]}), owner, VISION_DEMO)
    conversation, conversation_id, chat, meter, notice = updates[-1][:5]
    assert conversation[-1]["role"] == "assistant" and conversation[-1]["finish"] in ("stop", "length")
    assert conversation[-1]["metrics"]["completion_tokens"] > 0
    assert "⚠" not in notice
    assert "tokens" in meter
    stored = ctx.history.conversations.get_conversation(owner, conversation_id)
    assert stored.summary.tab == "vision"
    assert len(stored.messages[0].images) == 1, "the image is kept with the question"
    assert (
        ctx.history.images.image_path(stored.messages[0].images[0]).read_bytes() == Path(image).read_bytes()
    )

    # A second turn with two more images: the model sees all three, numbered across the conversation.
    follow = ask(
        {"text": "And these?", "files": [str(IMAGES_DIR / "frame-1.png"), str(IMAGES_DIR / "frame-2.png")]},
        conversation,
    )
    updates = answer(regions["vision"], follow, owner, VISION_DEMO, conversation_id=conversation_id)
    conversation, _, chat, _, notice = updates[-1][:5]
    assert conversation[-1]["finish"] in ("stop", "length"), notice
    user_parts = [m["content"] for m in chat if m["role"] == "user"]
    assert [p["alt_text"] for p in user_parts[1][:2]] == ["image 2", "image 3"]

    # Opened from the History tab: the Vision tab, with the images shown again.
    outputs = history.open(uis, conversation_id, owner)
    assert outputs[-1].selected == "vision"
    vision_values = outputs[len(uis[0].opened) : len(uis[0].opened) + len(uis[1].opened)]
    turns = vision_values[0]
    assert [len(t.get("images", [])) for t in turns if t["role"] == "user"] == [1, 2]
    assert all(Path(p).read_bytes() for t in turns for p in t.get("images", []))
    assert all(isinstance(v, dict) and v.get("__type__") == "update" for v in outputs[: len(uis[0].opened)])


def test_a_text_only_model_refuses_an_attached_image_with_a_message(ctx: AppContext, tabs: Any) -> None:
    _, _, regions = tabs
    conversation = ask({"text": "What is this?", "files": [str(IMAGES_DIR / "sign.png")]})
    updates = answer(regions["vision"], conversation, new_browser_id(), EMBEDDED, incognito=True)
    conversation, _, _, _, notice = updates[-1][:5]
    assert notice.startswith("⚠") and "does not take images" in notice and "vision model" in notice
    box, editing = updates[-1][-2:]
    assert conversation == [] and not editing, "the conversation is as it was before the attempt"
    assert box == {"text": "What is this?", "files": [str(IMAGES_DIR / "sign.png")]}, "nothing typed is lost"


def test_a_refused_image_leaves_the_conversation_answering_and_stores_nothing(
    ctx: AppContext, tabs: Any, tmp_path: Path
) -> None:
    """A damaged image in the second question of a kept conversation: refused, and then a plain question
    in the same conversation is answered (it failed with the same refusal every time before); neither
    the refused question nor its file reaches the history."""
    _, _, regions = tabs
    vision, owner = regions["vision"], new_browser_id()
    first = answer(
        vision, ask({"text": "What is this?", "files": [str(IMAGES_DIR / "chart.png")]}), owner, VISION_DEMO
    )
    conversation, conversation_id = first[-1][0], first[-1][1]
    stored_images = sorted(ctx.history.images.root.rglob("*"))
    broken = tmp_path / "broken.png"
    broken.write_bytes((IMAGES_DIR / "sign.png").read_bytes()[:300])
    refused = answer(
        vision,
        ask({"text": "And this?", "files": [str(broken)]}, conversation),
        owner,
        VISION_DEMO,
        conversation_id=conversation_id,
    )
    after, kept_id, _, _, notice = refused[-1][:5]
    assert notice.startswith("⚠") and "broken.png" in notice
    assert after == conversation and kept_id == conversation_id
    assert refused[-1][-2] == {"text": "And this?", "files": [str(broken)]}
    messages = ctx.history.conversations.get_conversation(owner, conversation_id).messages
    assert [m.text for m in messages if m.role == "user"] == ["What is this?"]
    assert sorted(ctx.history.images.root.rglob("*")) == stored_images, "the refused file is not kept"
    plain = answer(
        vision,
        ask({"text": "Describe it in one word.", "files": []}, after),
        owner,
        VISION_DEMO,
        conversation_id=conversation_id,
    )
    final = plain[-1][0]
    assert final[-1]["role"] == "assistant" and final[-1]["finish"] != "error", plain[-1][4]
    messages = ctx.history.conversations.get_conversation(owner, conversation_id).messages
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]


def test_regenerate_asks_again_without_storing_the_question_twice(ctx: AppContext, tabs: Any) -> None:
    _, _, regions = tabs
    instruct, owner = regions["instruct"], new_browser_id()
    first = answer(instruct, ask("Say hello."), owner, EMBEDDED)
    conversation, conversation_id = first[-1][0], first[-1][1]
    conversation, _ = instruct.regenerate(conversation, conversation_id, owner)
    again = answer(instruct, conversation, owner, EMBEDDED, conversation_id=conversation_id)
    assert again[-1][0][-1]["role"] == "assistant" and again[-1][1] == conversation_id
    messages = ctx.history.conversations.get_conversation(owner, conversation_id).messages
    assert [(m.role, m.text if m.role == "user" else "") for m in messages] == [
        ("user", "Say hello."),
        ("assistant", ""),
    ]


def test_a_damaged_image_is_refused_before_anything_is_sent(tmp_path: Path, tabs: Any) -> None:
    _, _, regions = tabs
    broken = tmp_path / "broken.png"
    broken.write_bytes((IMAGES_DIR / "sign.png").read_bytes()[:300])
    conversation = ask({"text": "Read it.", "files": [str(broken)]})
    updates = answer(regions["vision"], conversation, new_browser_id(), VISION_DEMO, incognito=True)
    notice = updates[-1][4]
    assert notice.startswith("⚠") and "broken.png" in notice


def test_num_crops_is_offered_where_the_backend_takes_it(ctx: AppContext, tabs: Any) -> None:
    _, _, regions = tabs
    assert ctx.registry.resolve("phi-3.5-vision@transformers").takes_num_crops
    assert not ctx.registry.resolve("phi-3.5-vision@onnx").takes_num_crops
    assert not ctx.registry.resolve(VISION_DEMO).takes_num_crops
    vision = regions["vision"]
    (note,), slider = (
        vision.describe_extra("phi-3.5-vision@transformers"),
        vision.describe_model("phi-3.5-vision@transformers")[-1],
    )
    assert slider.visible is True and "num_crops" in note
    (note,), slider = vision.describe_extra(VISION_DEMO), vision.describe_model(VISION_DEMO)[-1]
    assert slider.visible is False and "Random weights" in note


def test_the_vision_examples_have_their_images() -> None:
    examples = load_vision_examples()
    assert len(examples) >= 4
    assert all(p.is_file() for e in examples for p in e.images)


def test_moe_card_explains_the_model_and_labels_the_demo(ctx: AppContext) -> None:
    real = card_markdown(ctx.registry.resolve("phi-3.5-moe@transformers"))
    assert "16 experts, 2 active per token" in real and "6.6B active of 42B" in real
    assert "Arena" in real and "Random weights" not in real
    demo = card_markdown(ctx.registry.resolve(MOE_DEMO))
    assert "Random weights: this shows the mechanism, not learned specialisation." in demo
    cloud = card_markdown(ctx.registry.resolve("phi-3.5-moe@nvidia"))
    assert "needs the model run locally with transformers" in cloud


def test_moe_map_streams_is_saved_and_comes_back_in_the_moe_tab(ctx: AppContext, tabs: Any) -> None:
    history, uis, regions = tabs
    owner = new_browser_id()
    updates = answer(regions["moe"], ask("Tell me about the sea."), owner, MOE_DEMO)
    page = DeltaPage()  # what the page holds: each update's value applied as the browser's script does
    rows = []
    for update in updates:
        page.apply(update[5])
        rows.append(len(ROW.findall(page.html)))
    assert rows == sorted(rows), "the map only grows while the answer streams"
    assert len(set(rows)) > 1, "the map is drawn while the answer streams, not only at its end"
    assert not page.missed
    conversation, conversation_id, _, _, notice, _, load = updates[-1][:7]
    turn = conversation[-1]
    tokens = turn["metrics"]["completion_tokens"]
    records = unpack(turn["experts"])
    assert len(records) == tokens == rows[-1], notice
    layers, top_k = len(records[0].layers), len(records[0].layers[0].experts)
    assert int(load["count"].sum()) == tokens * layers * top_k
    final_map = page.html
    assert final_map.count('class="moe-cell"') == tokens * layers
    assert f'"count">{tokens} tokens</span> × {layers} layers' in final_map
    hover = re.search(r'<td class="moe-cell"[^>]*title="([^"]*)"', final_map)
    assert hover and "layer 0" in hover.group(1) and "weight" in hover.group(1)
    sent = [len(json.loads(u[5]).get("rows", [])) for u in updates]
    assert sum(sent[: sent.index(max(sent)) + 1]) <= tokens, "no update repeats the rows already sent"

    stored = ctx.history.conversations.get_conversation(owner, conversation_id)
    assert stored.summary.tab == "moe" and stored.messages[-1].experts

    outputs = history.open(uis, conversation_id, owner)
    assert outputs[-1].selected == "moe"
    start = len(uis[0].opened) + len(uis[1].opened)
    moe_values = outputs[start : start + len(uis[2].opened)]
    reopened = DeltaPage()
    reopened.apply(moe_values[5])
    assert reopened.html == final_map, "the reopened conversation shows the same map, drawn at once"
    assert moe_values[6]["count"].tolist() == load["count"].tolist()


def test_a_map_escapes_tokens_and_says_when_it_is_empty() -> None:
    from playground.moe_view import routing_map
    from playground.types import ExpertRecord, LayerRoute

    record = ExpertRecord(
        0, 1, '<img src=x onerror="alert(1)">', 4, (LayerRoute((1, 2), (0.6, 0.4), (0.5, 0.3)),)
    )
    shown = map_html(routing_map([record]))
    assert "<img" not in shown and "&lt;img" in shown
    assert "No expert map yet" in map_html(None)
    assert "fills in as the answer streams" in map_html(None, waiting=True)


def test_stop_in_one_tab_leaves_another_tab_streaming(ctx: AppContext, tabs: Any) -> None:
    _, _, regions = tabs
    instruct, moe = regions["instruct"], regions["moe"]
    session = "two-tabs"
    signals = ctx.answers.signals  # one for the app: each tab is its own pane
    instruct_event = signals.begin(session, instruct.config.tab)
    moe_event = signals.begin(session, moe.config.tab)
    moe.stop(gr.Request(session_hash=session))
    assert moe_event.is_set() and not instruct_event.is_set()
    signals.end(session, instruct_event, instruct.config.tab)
    signals.end(session, moe_event, moe.config.tab)


def test_new_conversation_empties_the_map(tabs: Any) -> None:
    _, _, regions = tabs
    values = regions["moe"].new_conversation()
    assert values[:6] == ([], None, [], "", "", False)
    assert "No expert map yet" in values[6] and values[7] is None


def test_editing_a_question_with_images_replaces_them_in_the_history(ctx: AppContext, tabs: Any) -> None:
    _, _, regions = tabs
    vision = regions["vision"]
    owner = new_browser_id()
    first = str(IMAGES_DIR / "sign.png")
    updates = answer(vision, ask({"text": "Read it.", "files": [first]}), owner, VISION_DEMO)
    conversation, conversation_id = updates[-1][0], updates[-1][1]
    box, conversation, _, editing = vision.edit_last(conversation)
    assert box == {"text": "Read it.", "files": [first]} and editing and conversation == []
    second = str(IMAGES_DIR / "chart.png")
    _, conversation, _, _ = add_question({"text": "Read this one.", "files": [second]}, conversation, editing)
    answer(vision, conversation, owner, VISION_DEMO, conversation_id=conversation_id)
    messages = ctx.history.conversations.get_conversation(owner, conversation_id).messages
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[0].text == "Read this one."
    assert [ctx.history.images.image_path(r).read_bytes() for r in messages[0].images] == [
        Path(second).read_bytes()
    ]


def test_tabs_reach_engines_only_through_services() -> None:
    """No module of the UI imports a provider package: models, conversions and endpoints go through the
    services (models_service, providers_service, chat, conversations)."""
    import ast

    folder = Path(__file__).resolve().parent.parent / "playground" / "ui"
    offenders = []
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and "providers" in (node.module or "").split("."):
                offenders.append(f"{path.name}: from {'.' * node.level}{node.module}")
    assert not offenders


def test_conversion_and_provider_status_are_services(ctx: AppContext, tmp_path: Path) -> None:
    from playground.errors import PlaygroundError
    from playground.models_service import ModelManager
    from playground.providers_service import statuses

    manager = ModelManager(ctx)
    for name in ("", "../escape", ".hidden", "a/b"):
        with pytest.raises(PlaygroundError, match="plain folder name"):
            manager.convert(str(tmp_path), name)
    with pytest.raises(PlaygroundError, match="Nothing to convert"):
        manager.convert(str(tmp_path / "missing"), "x")
    rows = {s.name: s for s in statuses(ctx.registry)}
    assert {"onnx", "transformers"} <= set(rows)
    assert "smollm2-135m-instruct@onnx" in rows["onnx"].models


@pytest.mark.parametrize("public", ["0", "1"])
def test_the_models_tabs_refresh_fills_exactly_its_lists(
    ctx: AppContext, tmp_path: Path, public: str
) -> None:
    """A public page has no unload picker, and Refresh sends no value for it (Gradio only warned)."""
    from playground.ui.models_tab import ModelsTab

    here = replace(ctx, settings=make_settings(tmp_path, PLAYGROUND_PUBLIC=public))
    tab = ModelsTab(here)
    with gr.Blocks():
        ui = tab.build()
    assert (ui.unloading is None) == (public == "1")
    values, outputs = tab.current(), tab.listed(ui)
    assert len(values) == len(outputs) == (4 if public == "1" else 5)
    assert any(row[0] == EMBEDDED for row in values[0]), "the catalog lists the embedded model"


def test_a_full_history_still_answers_in_the_tab_and_says_it_was_not_saved(
    ctx: AppContext, tmp_path: Path
) -> None:
    """Public mode's per-visitor quota: the real answer streams, the notice says it was not saved."""
    with HistoryStore(tmp_path / "full.db", quota=Quota(conversations=1)) as store:
        owner = new_browser_id()
        store.conversations.create_conversation(owner, "instruct", "the only one")
        full = replace(ctx, history=store, conversations=ConversationService(store))
        updates = answer(InstructTab(full), ask("Say hello."), owner, EMBEDDED)
        conversation, conversation_id, _, _, notice = updates[-1][:5]
        assert conversation[-1]["role"] == "assistant" and conversation[-1]["content"].strip()
        assert conversation_id is None
        assert "Not saved: Your history holds 1 conversation(s)" in notice
        assert [c.title for c in store.conversations.list_conversations(owner)] == ["the only one"]


def test_a_question_over_the_length_limit_stays_in_the_box_and_is_not_kept(tmp_path: Path) -> None:
    """Step one refuses it (the session keeps nothing of it: 100 sessions sending 2 MB each grew the
    server by 264 MB before); a question within the limit is shown as before."""
    ctx = AppContext.create(make_settings(tmp_path / "data", PLAYGROUND_PROMPT_CHARS="100"))
    try:
        region = InstructTab(ctx)
        box, conversation, _, _ = region.add_question("x" * 101, [], False)
        assert conversation == [] and box == gr.update(), "the box keeps the text; nothing is added"
        box, conversation, _, _ = region.add_question("What is an SLM?", [], False)
        assert box == "" and conversation[-1]["content"] == "What is an SLM?"
    finally:
        ctx.close()
