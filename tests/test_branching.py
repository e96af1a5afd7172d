"""Branch from a token (issue 18): an answer continued from one of its tokens with an alternative forced
there, on both local engines with the real embedded model; kept beside the answer in the history (the
turn shows one of them, the conversation continues from it), in the export and back from an import."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from playground.answers import Recording, Request, Result
from playground.branching import Branch, branch_from, branch_options
from playground.context import AppContext
from playground.errors import HistoryError, InvalidOptionsError
from playground.history import new_browser_id
from playground.history.export import export_json, export_markdown, import_json
from playground.options import GenerationOptions
from playground.settings import Settings
from playground.structured import ResponseFormat
from playground.types import Message
from playground.ui import render
from playground.ui.delta import DeltaPage
from tests.support import QUESTION
from tests.test_cli import cli

ENGINES = ["smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"]
GREEDY = GenerationOptions(max_new_tokens=24, logprobs=10, temperature=0.0)


def ask(ctx: AppContext, model: str, branch: Branch | None = None, record: Recording | None = None) -> Result:
    return ctx.answers.complete(
        Request(model, [Message("user", QUESTION)], GREEDY, record=record, branch=branch)
    )


def prefix_text(result: Result, at: int) -> str:
    return "".join(t.text for t in result.tokens[:at])


@pytest.mark.parametrize("model", ENGINES)
@pytest.mark.parametrize("at", [0, 3])
def test_a_forced_alternative_is_at_its_place_after_the_unchanged_prefix(
    ctx: AppContext, model: str, at: int
) -> None:
    first = ask(ctx, model)
    assert len(first.tokens) > at + 1, first.text
    alternative = first.tokens[at].top[1]  # the second likeliest: greedy decoding never picks it
    assert alternative.id != first.tokens[at].id
    branch = ask(ctx, model, branch_from(first.tokens, at, int(alternative.id or 0)))
    assert not branch.error, branch.error
    assert [t.id for t in branch.tokens[:at]] == [t.id for t in first.tokens[:at]], "the prefix is kept"
    forced = branch.tokens[at]
    assert (forced.id, forced.text, forced.forced) == (alternative.id, alternative.text, True)
    assert forced.logprob == alternative.logprob and forced.top == first.tokens[at].top, "its distribution"
    assert not any(t.forced for t in branch.tokens[at + 1 :]), "the rest is the engine's"
    assert [t.index for t in branch.tokens] == list(range(len(branch.tokens)))
    assert len(branch.tokens) == at + 1 + branch.metrics.completion_tokens, "the engine drew the rest"
    assert branch.text.startswith(prefix_text(first, at) + alternative.text), (first.text, branch.text)
    assert branch.text != first.text


def test_forcing_the_chosen_token_on_transformers_gives_the_same_greedy_answer(ctx: AppContext) -> None:
    """The prompt and the given tokens in one pass, then greedy decoding: transformers float32 continues
    exactly as it had (ONNX int4 may differ after a few tokens: its batched and step-by-step arithmetic
    round differently)."""
    first = ask(ctx, ENGINES[1])
    same = ask(ctx, ENGINES[1], branch_from(first.tokens, 2, int(first.tokens[2].id or 0)))
    assert same.text == first.text


def test_both_branches_are_in_the_history_and_the_conversation_goes_on_from_the_shown_one(
    ctx: AppContext,
) -> None:
    store = ctx.history.conversations
    owner = new_browser_id()
    conversation = store.create_conversation(owner, "instruct", "branches").id
    store.add_message(owner, conversation, "user", QUESTION)
    first = ask(ctx, ENGINES[0], record=Recording(store, owner, conversation))
    picked = first.tokens[1].top[1]
    second = ask(
        ctx,
        ENGINES[0],
        branch_from(first.tokens, 1, int(picked.id or 0)),
        Recording(store, owner, conversation),
    )
    messages = store.get_conversation(owner, conversation).messages
    original, branch = messages[1], messages[2]
    assert (original.text, original.hidden, original.branch_at) == (first.text, True, None)
    assert (branch.text, branch.hidden, branch.branch_at) == (second.text, False, 1)
    assert branch.tokens is not None and branch.tokens[1]["forced"] is True
    assert "answer_prefix" not in branch.parameters, "the given ids are in the token records, once"
    assert [m.content for m in store.chat_messages(owner, conversation)] == [QUESTION, second.text]
    store.show_branch(owner, conversation, original.id)
    assert [m.content for m in store.chat_messages(owner, conversation)] == [QUESTION, first.text]
    store.add_message(owner, conversation, "user", "And of Italy?")
    with pytest.raises(HistoryError, match="only the last answer's branches"):
        store.show_branch(owner, conversation, branch.id)

    exported = json.loads(export_json(ctx.history, owner))["conversations"][0]["messages"]
    assert [(m["role"], m.get("branch_at"), m.get("hidden")) for m in exported] == [
        ("user", None, False),
        ("assistant", None, False),
        ("assistant", 1, True),
        ("user", None, False),
    ]
    markdown = export_markdown(ctx.history, owner)
    assert "· not shown (another branch is)" in markdown and "· branch from token 2" in markdown
    again = new_browser_id()
    (copy,) = import_json(ctx.history, again, export_json(ctx.history, owner)).conversation_ids
    imported = ctx.history.conversations.get_conversation(again, copy).messages
    assert [(m.text, m.branch_at, m.hidden) for m in imported] == [
        (m.text, m.branch_at, m.hidden) for m in store.get_conversation(owner, conversation).messages
    ]
    assert imported[2].tokens == branch.tokens, "an import keeps the token view"


def test_what_cannot_branch_is_one_clear_message(ctx: AppContext) -> None:
    first = ask(ctx, ENGINES[0])
    with pytest.raises(InvalidOptionsError, match="no alternative with id"):
        branch_from(first.tokens, 0, -5)
    with pytest.raises(InvalidOptionsError, match="There is no token 999"):
        branch_from(first.tokens, 998, 1)
    nameless = [replace(t, id=None) for t in first.tokens]
    with pytest.raises(InvalidOptionsError, match="have no ids"):
        branch_from(nameless, 1, int(first.tokens[1].top[0].id or 0))
    branch = branch_from(first.tokens, 1, int(first.tokens[1].top[1].id or 0))
    spec = ctx.registry.resolve(ENGINES[0])
    remote = replace(spec, provider="openai-compatible", continues_answer=False)
    with pytest.raises(InvalidOptionsError, match="OpenAI-compatible cannot continue an answer"):
        branch_options(remote, GREEDY, branch)
    held = GREEDY.model_copy(update={"response_format": ResponseFormat(kind="json")})
    refused = ctx.answers.complete(Request(ENGINES[0], [Message("user", QUESTION)], held, branch=branch))
    assert "set Response format to Text" in refused.error and refused.text == ""


# The page: a click on an alternative in the token view, the switch between branches, History


def branch_updates(region: Any, conversation: list[dict[str, Any]], conversation_id: str | None, owner: str,
                   at: int, token: int, fmt: tuple[str, str] = ("Text", "")) -> list[tuple[Any, ...]]:  # fmt: skip
    """Every update the page's `branch` event yields (its script sends the token's place and the
    alternative's id as the event's data)."""
    event = gr.EventData(None, {"at": at, "token": token})

    async def run() -> list[tuple[Any, ...]]:
        stream = region.branch(
            gr.Request(session_hash="branch-session"),
            event,
            conversation,
            conversation_id,
            owner,
            {},
            False,
            *fmt,
            "",
            *GREEDY_PAGE,
        )
        return [update async for update in stream]

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


GREEDY_PAGE = (0.0, 1.0, 0, 16, 1.0, -1, "")  # the Parameters: greedy, 16 new tokens


def test_the_page_branches_from_a_clicked_alternative_and_switches_back(ctx: AppContext) -> None:
    from tests.test_tabs import answer, build
    from tests.test_tabs import ask as question

    history, uis, regions = build(ctx)
    region, owner = regions["instruct"], new_browser_id()
    first = answer(region, question(QUESTION), owner, ENGINES[0], token_view=True, options=GREEDY_PAGE)
    conversation, conversation_id = first[-1][0], first[-1][1]
    original = conversation[-1]
    tokens = original["tokens"]
    at, alternative = 2, tokens[2]["top"][1]
    view = DeltaPage()
    for update in first:  # the outputs end with the token view, then the question box and its flag
        if isinstance(update[-3], str):
            view.apply(update[-3])
    assert f'data-at="{at}" data-token="{alternative["id"]}"' in view.html, "each alternative is a button"

    updates = branch_updates(region, conversation, conversation_id, owner, at, alternative["id"])
    after, chat, notice, picker = updates[-1][0], updates[-1][2], updates[-1][4], updates[-1][-4]
    shown = after[-1]
    assert [t.get("hidden", False) for t in after[-2:]] == [True, False] and after[-2]["content"] == original[
        "content"
    ]
    assert shown["branch_at"] == at and shown["tokens"][at]["forced"] is True
    assert shown["content"].startswith("".join(t["text"] for t in tokens[:at]) + alternative["text"])
    assert [m["content"] for m in chat if m["role"] == "assistant" and m["content"]] == [
        render.safe_markdown(shown["content"])
    ]
    assert "branch from token 3" in chat[-1]["metadata"]["title"] and not notice
    assert picker.visible is True and [c[1] for c in picker.choices] == ["1", "2"] and picker.value == "2"
    assert [c[0] for c in picker.choices][1] == f"2. {alternative['text']!r} at token 3"
    page = DeltaPage()
    for update in updates:
        if isinstance(update[-3], str):
            page.apply(update[-3])
    assert (
        page.html.count('<span class="tv-tok') == len(shown["tokens"]) and page.html.count("tv-forced") == 1
    )

    stored = ctx.history.conversations.get_conversation(owner, conversation_id).messages
    assert [(m.branch_at, m.hidden) for m in stored if m.role == "assistant"] == [(None, True), (at, False)]
    opened = history.open(uis, conversation_id, owner)
    reopened = opened[0]
    assert reopened[-1]["content"] == shown["content"] and reopened[-2]["hidden"] is True
    assert opened[len(uis[0].opened) - 2].value == "2", "History opens it on the branch shown"

    back = region.switch_branch("1", after, conversation_id, owner)
    assert back[0][-1]["content"] == original["content"] and back[0][-2]["hidden"] is True
    assert [m.content for m in ctx.history.conversations.chat_messages(owner, conversation_id)] == [
        QUESTION,
        original["content"],
    ], "the conversation goes on from the answer shown"


@pytest.mark.parametrize("model", ENGINES)
def test_get_code_for_a_branch_on_screen_prints_the_branch(
    ctx: AppContext, model: str, tmp_path: Path
) -> None:
    """The script feeds the branch's given tokens after the prompt's, as the page did, and so prints the
    branch (greedy), not the first answer; with the first answer switched back, the first answer's."""
    from tests.test_get_code import run_script
    from tests.test_tabs import answer, build
    from tests.test_tabs import ask as question

    _, _, regions = build(ctx)
    region, owner = regions["instruct"], new_browser_id()
    first = answer(region, question(QUESTION), owner, model, token_view=True, options=GREEDY_PAGE)
    conversation, conversation_id = first[-1][0], first[-1][1]
    at, alternative = 3, conversation[-1]["tokens"][3]["top"][1]
    after = branch_updates(region, conversation, conversation_id, owner, at, alternative["id"])[-1][0]
    shown = after[-1]
    assert shown["branch_at"] == at and shown["content"] != conversation[-1]["content"]
    code = region.get_code(after, None, model, "", "Text", "", *GREEDY_PAGE).value
    given = [t["id"] for t in shown["tokens"][: at + 1]]
    assert f"branch = {given}" in code, "the kept tokens and the forced one, by id"
    assert run_script(code, tmp_path) == shown["content"] + "\n"
    back = region.switch_branch("1", after, conversation_id, owner)[0]
    code = region.get_code(back, None, model, "", "Text", "", *GREEDY_PAGE).value
    assert "branch = " not in code and run_script(code, tmp_path) == conversation[-1]["content"] + "\n"


def test_a_branch_the_page_cannot_make_says_why_and_keeps_the_answer(ctx: AppContext) -> None:
    from tests.test_tabs import answer, build
    from tests.test_tabs import ask as question

    _, _, regions = build(ctx)
    region, owner = regions["instruct"], new_browser_id()
    first = answer(region, question(QUESTION), owner, ENGINES[0], token_view=True, options=GREEDY_PAGE)
    conversation, conversation_id = first[-1][0], first[-1][1]
    token = conversation[-1]["tokens"][1]["top"][1]["id"]
    for at, picked, fmt, words in [
        (1, -7, ("Text", ""), "has no alternative with id -7"),
        (1, token, ("JSON", ""), "set Response format to Text"),
    ]:
        updates = branch_updates(region, conversation, conversation_id, owner, at, picked, fmt)
        assert words in updates[-1][4], updates[-1][4]
        assert updates[-1][0] == conversation, "nothing lost: the answer is still there, shown"
    streaming = [*conversation[:-1], {**conversation[-1], "finish": None}]  # a click while it streams
    updates = branch_updates(region, streaming, conversation_id, owner, 1, token)
    assert "an answer that has ended: wait for it, or Stop it" in updates[-1][4]
    stored = ctx.history.conversations.get_conversation(owner, conversation_id).messages
    assert len(stored) == 2 and not stored[1].hidden


# The CLI and the API


def test_the_cli_branches_an_answer_it_saved_and_one_it_asks_first(
    settings: Settings, tmp_path: Path
) -> None:
    base = ("chat", "-m", "smollm2-135m-instruct", "--temperature", "0", "--max-new-tokens", "8",
            "--logprobs", "3", "--json", QUESTION)  # fmt: skip
    first = cli(settings, *base)
    assert first.returncode == 0, first.stderr
    saved = tmp_path / "first.json"
    saved.write_text(first.stdout)
    tokens = json.loads(first.stdout)["tokens"]
    picked = tokens[2]["top"][1]
    for extra in (
        ("--tokens", str(saved)),
        (),
    ):  # from the saved answer; asked again first (greedy: the same)
        result = cli(settings, *base, "--branch", f"2:{picked['id']}", *extra)
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["branch"] == {"at": 2, "from_text": json.loads(first.stdout)["text"]}
        assert [t["id"] for t in out["tokens"][:2]] == [t["id"] for t in tokens[:2]]
        assert out["tokens"][2]["id"] == picked["id"] and out["tokens"][2]["forced"] is True
        assert out["text"].startswith("".join(t["text"] for t in tokens[:2]) + picked["text"])
    bad = cli(settings, *base, "--branch", "two")
    assert bad.returncode != 0 and "--branch takes TOKEN:ID" in bad.stderr and "Traceback" not in bad.stderr


def test_api_callers_branch_a_chat_tokens_answer(ctx: AppContext) -> None:
    from gradio_client import Client

    from tests.support import serving

    with serving(ctx) as url:
        client = Client(url, verbose=False)
        first = client.predict(QUESTION, temperature=0, max_new_tokens=8, logprobs=3, api_name="/chat_tokens")
        picked = first["tokens"][1]["top"][2]
        branch = client.predict(QUESTION, first["tokens"], 1, picked["id"], temperature=0, max_new_tokens=8,
                                logprobs=3, api_name="/chat_branch")  # fmt: skip
        refused = None
        try:
            client.predict(QUESTION, first["tokens"], 1, 99999999, max_new_tokens=4, api_name="/chat_branch")
        except Exception as exc:  # gradio_client raises the app's message
            refused = str(exc)
    assert branch["tokens"][0] == first["tokens"][0]
    assert branch["tokens"][1]["id"] == picked["id"] and branch["tokens"][1]["forced"] is True
    assert branch["text"].startswith(first["tokens"][0]["text"] + picked["text"])
    assert refused is not None and "no alternative with id 99999999" in refused


def test_the_demo_vision_and_moe_models_branch_too(ctx: AppContext) -> None:
    """transformers with an image (the tiny vision demo) and with expert records (the tiny MoE demo): the
    branch keeps its prefix, and an MoE branch's expert map keeps the rows of the tokens it kept."""
    from playground.vision_examples import IMAGES_DIR

    image = str(next(iter(sorted(IMAGES_DIR.glob("*.png")) or sorted(IMAGES_DIR.glob("*")))))
    for model, message in [
        ("tiny-vision-demo@transformers", Message("user", "What is in the picture?", (image,))),
        ("tiny-phimoe-demo@transformers", Message("user", QUESTION)),
    ]:
        options = GenerationOptions(max_new_tokens=8, logprobs=5, temperature=0.0)
        first = ctx.answers.complete(Request(model, [message], options))
        assert not first.error and len(first.tokens) >= 4, (model, first.error)
        picked = first.tokens[2].top[1]
        branch = branch_from(first.tokens, 2, int(picked.id or 0), first.experts)
        second = ctx.answers.complete(Request(model, [message], options, branch=branch))
        assert not second.error, (model, second.error)
        assert [t.id for t in second.tokens[:3]] == [*(t.id for t in first.tokens[:2]), picked.id]
        assert [t.index for t in second.tokens] == list(range(len(second.tokens)))
        if first.experts:  # the MoE demo: one record per token, the kept ones as they were
            assert second.experts[:3] == first.experts[:3]
            assert [e.index for e in second.experts] == list(range(len(second.experts)))
            assert len(second.experts) == len(second.tokens)


@pytest.mark.parametrize("model", ENGINES)
def test_a_made_up_token_id_is_refused_in_words_by_the_engine(ctx: AppContext, model: str) -> None:
    """Ids from another model or made up (an API caller's `tokens`) never reach the engine: ONNX Runtime
    GenAI would decode nothing for one, transformers fail on it."""
    from playground.types import TokenChoice

    first = ask(ctx, model)
    tokens = list(first.tokens)
    tokens[1] = replace(tokens[1], top=(*tokens[1].top, TokenChoice("made up", 10**7, -1.0)))
    refused = ask(ctx, model, branch_from(tokens, 1, 10**7))
    assert "Token id 10000000 is not one of SmolLM2-135M-Instruct's (49,152 tokens" in refused.error
    assert refused.text == ""


@pytest.mark.parametrize("model", ENGINES)
def test_a_branch_inside_a_character_gives_whole_characters(ctx: AppContext, model: str) -> None:
    """An emoji is several byte-level tokens: kept tokens that end inside one are decoded with the next,
    never shown as a replacement character."""
    messages = [Message("user", "Reply with three emoji only: 🎉🐱🚀")]
    options = GenerationOptions(max_new_tokens=12, logprobs=3, temperature=0.0)
    first = ctx.answers.complete(Request(model, messages, options))
    assert first.tokens[0].text == "\ufffd" and first.text and "\ufffd" not in first.text, first.tokens[:3]
    same = branch_from(first.tokens, 1, int(first.tokens[1].id or 0))  # inside the first emoji
    second = ctx.answers.complete(Request(model, messages, options, branch=same))
    assert "\ufffd" not in second.text and second.text.startswith(first.text[0]), (first.text, second.text)
