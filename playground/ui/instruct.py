"""The Instruct tab: streaming chat with any chat model, its metrics, its context and its raw prompt."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import gradio as gr

from ..chat import ChatService
from ..context import AppContext
from ..errors import PlaygroundError
from ..types import Chunk
from . import render, widgets
from .render import Turn
from .streaming import ThreadedStream

log = logging.getLogger(__name__)

Outputs = tuple[list[Turn], list[dict[str, Any]], str, str]


def add_question(text: str, conversation: list[Turn]) -> tuple[str, list[Turn], list[dict[str, Any]]]:
    """Step one of a submit: show the question at once and clear the box."""
    if not text.strip():
        return text, conversation, render.to_chatbot(conversation)
    conversation = [*_settled(conversation), {"role": "user", "content": text}]
    return "", conversation, render.to_chatbot(conversation)


def _settled(conversation: list[Turn]) -> list[Turn]:
    """Mark an answer that never got its finish (Stop pressed mid-stream) as cancelled."""
    return [
        {**t, "finish": "cancelled"} if t["role"] == "assistant" and t.get("finish") is None else t
        for t in conversation
    ]


async def respond(
    chat: ChatService, conversation: list[Turn], model_id: str, system_prompt: str, *option_values: Any
) -> AsyncIterator[Outputs]:
    """Step two: stream the answer to the last question, keeping whatever arrives."""
    if not conversation or conversation[-1]["role"] != "user":
        return
    meter, notice = "", ""
    try:
        options = widgets.options_from(*option_values)
        messages = render.to_messages(conversation, system_prompt)
        prepared = await asyncio.to_thread(chat.prepare, model_id, messages, options)
    except PlaygroundError as exc:
        gr.Warning(str(exc))
        yield conversation, render.to_chatbot(conversation), meter, f"⚠ {exc}"
        return
    spec = prepared.spec
    turn: Turn = {"role": "assistant", "content": "", "model": spec.id, "model_name": spec.name,
                  "engine": spec.engine_label, "metrics": None, "finish": None}  # fmt: skip
    conversation = [*conversation, turn]
    notice = f"ℹ {prepared.notice}" if prepared.notice else ""
    meter = render.context_meter(prepared.prompt_tokens, spec.context_window)
    yield conversation, render.to_chatbot(conversation, streaming=True), meter, notice
    try:
        async for batch in ThreadedStream(chat.stream(prepared)):
            _apply(turn, batch)
            if turn["finish"] is None:
                yield conversation, render.to_chatbot(conversation, streaming=True), meter, notice
    except PlaygroundError as exc:
        turn["finish"] = "error"
        notice = f"⚠ {exc}"
        gr.Warning(str(exc))
    used = (prepared.prompt_tokens or 0) + ((turn["metrics"] or {}).get("completion_tokens") or 0)
    meter = render.context_meter(used if prepared.prompt_tokens is not None else None, spec.context_window)
    yield conversation, render.to_chatbot(conversation), meter, notice


def _apply(turn: Turn, batch: list[Chunk]) -> None:
    turn["content"] += "".join(c.text for c in batch)
    for chunk in batch:
        if chunk.metrics is not None:
            turn["metrics"] = chunk.metrics.to_dict()
            turn["finish"] = str(chunk.metrics.finish_reason)


def stop(conversation: list[Turn]) -> tuple[list[Turn], list[dict[str, Any]]]:
    conversation = _settled(conversation)
    return conversation, render.to_chatbot(conversation)


def drop_last_answer(conversation: list[Turn]) -> tuple[list[Turn], list[dict[str, Any]]]:
    """Regenerate, step one: forget the last answer so the question is answered again."""
    while conversation and conversation[-1]["role"] == "assistant":
        conversation = conversation[:-1]
    return conversation, render.to_chatbot(conversation)


def clear() -> tuple[list[Turn], list[dict[str, Any]], str, str]:
    return [], [], "", ""


def show_prompt(chat: ChatService, conversation: list[Turn], pending: str, model_id: str,
                system_prompt: str) -> str:  # fmt: skip
    """The exact text the engine receives after the chat template, for the conversation so far."""
    turns = [*conversation, {"role": "user", "content": pending}] if pending.strip() else conversation
    messages = render.to_messages(turns, system_prompt)
    if not messages:
        return "(type a question first)"
    try:
        prompt, tokens = chat.render_prompt(model_id, messages)
    except PlaygroundError as exc:
        return f"⚠ {exc}"
    return f"{prompt}\n\n--- {tokens} tokens ---" if tokens is not None else prompt


def describe_model(ctx: AppContext, model_id: str) -> tuple[str, str]:
    try:
        spec = ctx.registry.resolve(model_id)
    except PlaygroundError as exc:
        return f"⚠ {exc}", ""
    return widgets.model_card(spec, ctx.registry), render.context_meter(None, spec.context_window)


def preset(ctx: AppContext, name: str | None) -> str:
    return ctx.prompts.system.get(name or "", "")


def build(ctx: AppContext) -> None:
    """Lay out the tab, then wire its events (in one place, at the bottom)."""
    choices = widgets.model_choices(ctx.registry)
    default = widgets.DEFAULT_MODEL if any(v == widgets.DEFAULT_MODEL for _, v in choices) else choices[0][1]
    conversation = gr.State([])
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(elem_id="instruct-chat", height=480, buttons=["copy", "copy_all"],
                                 show_label=False, placeholder="Ask the model anything.")  # fmt: skip
            notice = gr.Markdown(elem_id="instruct-notice")
            with gr.Row():
                question = gr.Textbox(elem_id="instruct-input", show_label=False, scale=6, lines=1,
                                      max_lines=8, placeholder="Type a message, Enter to send")  # fmt: skip
                send = gr.Button("Send", variant="primary", scale=1, elem_id="instruct-send")
                stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id="instruct-stop")
            with gr.Row():
                regenerate = gr.Button("↻ Regenerate", size="sm", elem_id="instruct-regenerate")
                clear_btn = gr.Button("🗑 Clear", size="sm", elem_id="instruct-clear")
                show = gr.Button("Show prompt", size="sm", elem_id="instruct-show-prompt")
            meter = gr.Markdown(elem_id="instruct-meter")
            with gr.Accordion("Prompt as the engine receives it", open=False) as prompt_box:
                prompt_view = gr.Code(language=None, elem_id="instruct-prompt", interactive=False)
            if ctx.prompts.examples:
                gr.Examples(ctx.prompts.examples, inputs=question, label="Try")
        with gr.Column(scale=2):
            model = gr.Dropdown(choices, value=default, label="Model", elem_id="instruct-model")
            card = gr.Markdown(widgets.model_card(ctx.registry.resolve(default), ctx.registry))
            presets = gr.Dropdown(list(ctx.prompts.system), value=None, label="System prompt preset")
            system = gr.Textbox(label="System prompt", lines=3, elem_id="instruct-system")
            with gr.Accordion("Parameters", open=True):
                options = widgets.option_inputs().components

    answer_inputs = [conversation, model, system, *options]
    answer_outputs = [conversation, chatbot, meter, notice]
    answer = {"fn": partial(respond, ctx.chat), "inputs": answer_inputs, "outputs": answer_outputs,
              "concurrency_limit": 4, "api_name": False}  # fmt: skip
    ask = {"fn": add_question, "inputs": [question, conversation], "outputs": [question, conversation, chatbot],
           "queue": False, "api_name": False}  # fmt: skip
    submitted = question.submit(**ask).then(**answer)
    clicked = send.click(**ask).then(**answer)
    regenerated = regenerate.click(drop_last_answer, conversation, [conversation, chatbot], queue=False,
                                   api_name=False).then(**answer)  # fmt: skip
    stop_btn.click(stop, conversation, [conversation, chatbot], cancels=[submitted, clicked, regenerated],
                   queue=False, api_name=False)  # fmt: skip
    clear_btn.click(clear, None, [conversation, chatbot, meter, notice], queue=False, api_name=False)
    show.click(partial(show_prompt, ctx.chat), [conversation, question, model, system], prompt_view,
               api_name=False).then(lambda: gr.Accordion(open=True), None, prompt_box)  # fmt: skip
    model.change(partial(describe_model, ctx), model, [card, meter], queue=False, api_name=False)
    presets.change(partial(preset, ctx), presets, system, queue=False, api_name=False)
    _api(ctx, answer_inputs)


def _api(ctx: AppContext, answer_inputs: list[Any]) -> None:
    """A plain API endpoint for scripts, tests and benchmarks: `/chat` streams the cumulative text."""
    api_question = gr.Textbox(visible=False)
    api_answer = gr.Textbox(visible=False)
    api_trigger = gr.Button(visible=False)
    api_trigger.click(
        fn=partial(api_chat, ctx.chat),
        inputs=[api_question, *answer_inputs[1:]],
        outputs=api_answer,
        api_name="chat",
        concurrency_limit=4,
    )


async def api_chat(chat: ChatService, question: str, model_id: str, system_prompt: str,
                   *option_values: Any) -> AsyncIterator[str]:  # fmt: skip
    """Stream one answer as cumulative text (no conversation state)."""
    conversation: list[Turn] = [{"role": "user", "content": question}]
    text = ""
    async for conv, _, _, notice in respond(chat, conversation, model_id, system_prompt, *option_values):
        if notice.startswith("⚠"):
            raise gr.Error(notice.removeprefix("⚠ "))
        text = conv[-1]["content"] if conv[-1]["role"] == "assistant" else ""
        yield text
