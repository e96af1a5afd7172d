"""The prompt view, as a student reads it: the text the engine receives for the answer on screen, counted
as the context meter counts it, saying where a system prompt nobody typed comes from; empty (never stale)
while closed, filled when opened."""

from __future__ import annotations

import re

from playground.answers import Request
from playground.context import AppContext
from playground.options import GenerationOptions
from playground.prompt_view import EMPTY, prompt_view
from playground.types import Message
from playground.ui.chat_parts import AnswerView
from playground.ui.instruct import InstructTab
from tests.support import QUESTION

ONNX = "smollm2-135m-instruct@onnx"
GREEDY = GenerationOptions(temperature=0.0, max_new_tokens=12)
# temperature, top-p, top-k, max new tokens, repetition penalty, seed, stop: as the page sends them
PAGE_VALUES = (0.0, 1.0, 0, 12, 1.0, -1, "")


def meter_count(meter: str) -> str:
    found = re.search(r"([\d,]+) / ([\d,]+) tokens", meter)
    assert found, meter
    return found.group(0)


def test_the_prompt_views_count_is_the_context_meters(ctx: AppContext) -> None:
    view = AnswerView([{"role": "user", "content": QUESTION}], None)
    for event in ctx.answers.ask(Request(ONNX, [Message("user", QUESTION)], GREEDY)):
        view.take(event)
    assert view.turn is not None and view.finished
    shown = InstructTab(ctx).show_prompt(view.conversation, "", ONNX, "", *PAGE_VALUES)
    assert meter_count(view.meter) in shown, (view.meter, shown[-300:])
    assert "the context meter's count" in shown
    assert QUESTION in shown and view.turn["content"] not in shown, "the prompt of the answer on screen"


def test_a_system_prompt_nobody_typed_is_said_to_be_the_templates_default(ctx: AppContext) -> None:
    ask = [Message("user", QUESTION)]
    default = prompt_view(ctx.chat, ONNX, ask, GREEDY)
    assert default is not None and default.template_system
    assert "<|im_start|>system" in default.text and "chat template's default" in default.render()
    typed = prompt_view(ctx.chat, ONNX, [Message("system", "Be brief."), *ask], GREEDY)
    assert typed is not None and not typed.template_system and "Be brief." in typed.text
    assert "default" not in typed.render().split("---", 1)[1]
    assert prompt_view(ctx.chat, ONNX, [Message("system", "Be brief.")], GREEDY) is None


def test_the_view_is_filled_when_opened_and_never_stale_while_closed(ctx: AppContext) -> None:
    tab = InstructTab(ctx)
    conversation = [{"role": "user", "content": QUESTION}]
    shown, text = tab.expand_prompt([], QUESTION, ONNX, "", *PAGE_VALUES)
    assert shown is True and QUESTION in text, "the question in the box, when opened"
    assert tab.refresh_prompt(False, conversation, "", ONNX, "", *PAGE_VALUES) == ""
    assert QUESTION in tab.refresh_prompt(True, conversation, "", ONNX, "", *PAGE_VALUES)
    assert tab.refresh_prompt(True, [], "", ONNX, "", *PAGE_VALUES) == EMPTY, "a new conversation"
