"""Branch from a token (issue 18): an answer continued from one of its tokens with an alternative forced
there, on both local engines with the real embedded model; kept beside the answer in the history (the
turn shows one of them, the conversation continues from it), in the export and back from an import."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from playground.answers import Recording, Request, Result
from playground.branching import Branch, branch_from, branch_options
from playground.context import AppContext
from playground.errors import HistoryError, InvalidOptionsError
from playground.history import new_browser_id
from playground.history.export import export_json, import_json
from playground.options import GenerationOptions
from playground.structured import ResponseFormat
from playground.types import Message
from tests.support import QUESTION

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
