"""The Instruct tab: streaming chat with any chat model, its metrics, its context and its raw prompt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..codegen import snippet
from ..context import AppContext
from ..errors import InvalidOptionsError, PlaygroundError
from ..history import check_owner_id
from ..text import valid_text
from ..types import Chunk
from . import render, widgets
from .render import Turn
from .signals import StopSignals
from .streaming import ThreadedStream

Chat = list[dict[str, Any]]


@dataclass
class InstructUI:
    """The components other tabs need (the History tab loads conversations into this one)."""

    conversation: gr.State
    conversation_id: gr.State
    chatbot: gr.Chatbot
    meter: gr.Markdown
    notice: gr.Markdown
    model: gr.Dropdown
    answered: list[Any] = field(default_factory=list)  # the events that end with an answer


def add_question(text: str, conversation: list[Turn], editing: bool) -> tuple[str, list[Turn], Chat, bool]:
    """Step one of a submit: show the question at once and clear the box."""
    text = valid_text(text or "")
    if not text.strip():
        return text, conversation, render.to_chatbot(conversation), editing
    conversation = [*settled(conversation), {"role": "user", "content": text, "edit": editing}]
    return "", conversation, render.to_chatbot(conversation), False


def settled(conversation: list[Turn]) -> list[Turn]:
    """Mark an answer that never got its finish (the page was left mid-stream) as cancelled."""
    return [
        {**t, "finish": "cancelled"} if t["role"] == "assistant" and t.get("finish") is None else t
        for t in conversation
    ]


def apply(turn: Turn, batch: list[Chunk]) -> None:
    """Add a batch of chunks to the answer being streamed."""
    turn["content"] += "".join(c.text for c in batch)
    for chunk in batch:
        if chunk.metrics is not None:
            turn["metrics"] = chunk.metrics.to_dict()
            turn["finish"] = str(chunk.metrics.finish_reason)


class InstructTab:
    """Handlers of the tab; one instance per app, per-visitor data only in Gradio state."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.signals = StopSignals()
        self.default_model = widgets.default_model(ctx.registry)

    # Streaming an answer

    async def respond(
        self,
        conversation: list[Turn],
        conversation_id: str | None,
        owner_value: Any,
        keys: dict[str, str],
        incognito: bool,
        model_id: str,
        system_prompt: str,
        temperature: float,
        top_p: float,
        top_k: int,
        max_new_tokens: int,
        repetition_penalty: float,
        seed: float | None,
        stop: str,
        request: gr.Request,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Step two: stream the answer to the last question, keeping whatever arrives."""
        if not conversation or conversation[-1]["role"] != "user":
            return
        stop_event = self.signals.begin(request.session_hash)
        system_prompt = valid_text(system_prompt or "")
        values = (temperature, top_p, top_k, max_new_tokens, repetition_penalty, seed, valid_text(stop or ""))
        state = _Answer(conversation, conversation_id)
        try:
            owner = check_owner_id(owner_value)
            options = widgets.options_from(*values)
            question = conversation[-1]
            if not incognito:
                state.conversation_id = await asyncio.to_thread(
                    self.ctx.conversations.ask,
                    owner,
                    conversation_id,
                    question["content"],
                    model_id,
                    edit=bool(question.get("edit")),
                )
            messages = render.to_messages(conversation, system_prompt)
            key = self.session_key(keys, model_id)
            loading = await asyncio.to_thread(self.ctx.chat.loading_notice, model_id)
            if loading:
                yield state.outputs(notice=f"⏳ {loading}")
            started = time.perf_counter()
            prepared = await asyncio.to_thread(
                self.ctx.chat.prepare, model_id, messages, options, api_key=key
            )
        except PlaygroundError as exc:
            gr.Warning(str(exc))
            yield state.outputs(notice=render.safe_markdown(f"⚠ {exc}"))
            return
        notice = prepared.notice
        if loading:
            loaded = f"{prepared.spec.name} loaded in {time.perf_counter() - started:.1f} s."
            notice = f"{loaded} {notice}".strip()
        state.start(prepared.spec, notice)
        state.meter = render.context_meter(prepared.prompt_tokens, prepared.spec.context_window)
        yield state.outputs(streaming=True)
        stream = self.ctx.conversations.record(
            owner, state.conversation_id, prepared, self.ctx.chat.stream(prepared)
        )
        try:
            async for batch in ThreadedStream(stream, stop=stop_event):
                apply(state.turn, batch)
                if state.turn["finish"] is None:
                    yield state.outputs(streaming=True)
        except PlaygroundError as exc:
            state.turn["finish"] = "error"
            state.notice = render.safe_markdown(f"⚠ {exc}")
            gr.Warning(str(exc))
        finally:
            self.signals.end(request.session_hash, stop_event)
        if state.turn["finish"] is None and stop_event.is_set():
            state.turn["finish"] = "cancelled"
        used = (prepared.prompt_tokens or 0) + ((state.turn["metrics"] or {}).get("completion_tokens") or 0)
        window = prepared.spec.context_window
        state.meter = render.context_meter(used if prepared.prompt_tokens is not None else None, window)
        yield state.outputs()

    def stop(self, request: gr.Request) -> None:
        """Stop the visitor's running answer: the engine stops at its next token."""
        self.signals.stop(request.session_hash)

    # A visitor's own key, and the code that reproduces a request

    def session_key(self, keys: dict[str, str], model_id: str) -> str | None:
        """The key this visitor typed for the model's provider, if any."""
        try:
            return keys.get(self.ctx.registry.resolve(model_id).provider)
        except PlaygroundError:
            return None

    def set_key(self, key: str, model_id: str, keys: dict[str, str]) -> tuple[str, dict[str, str], str]:
        """Keep a typed key in this session's server-side state; the box is emptied at once."""
        try:
            spec = self.ctx.registry.resolve(model_id)
        except PlaygroundError as exc:
            return "", keys, render.safe_markdown(f"⚠ {exc}")
        if spec.extra.get("api_key_env") is None:
            return "", keys, f"{spec.engine_label} needs no key."
        keys = {k: v for k, v in keys.items() if k != spec.provider}
        if key.strip():
            keys[spec.provider] = key.strip()
        providers = ", ".join(sorted(keys)) or "none"
        return "", keys, f"🔑 Your own keys, for this session only: {providers}."

    def get_code(
        self, conversation: list[Turn], pending: str, model_id: str, system_prompt: str, *values: Any
    ) -> gr.Code:
        """A runnable script, in the provider's own SDK, that sends this conversation with these settings."""
        turns = [*conversation, {"role": "user", "content": pending}] if pending.strip() else conversation
        try:
            spec = self.ctx.registry.resolve(model_id)
            options = widgets.options_from(*values)
            model_dir = None
            if spec.provider == "onnx":
                model_dir = self.ctx.registry.providers["onnx"].folder(spec)  # type: ignore[attr-defined]
            language, code = snippet(
                spec, render.to_messages(turns, system_prompt), options, model_dir=model_dir
            )
        except PlaygroundError as exc:
            return gr.Code(f"# {exc}", language="python")
        return gr.Code(code, language=language)  # type: ignore[arg-type]

    # Small actions

    def regenerate(
        self, conversation: list[Turn], conversation_id: str | None, owner_value: Any
    ) -> tuple[list[Turn], Chat]:
        """Forget the last answer (on the page and in the history) so the question is answered again."""
        while conversation and conversation[-1]["role"] == "assistant":
            conversation = conversation[:-1]
        if conversation_id is not None:
            try:
                self.ctx.conversations.forget_last_answer(check_owner_id(owner_value), conversation_id)
            except PlaygroundError as exc:
                gr.Warning(str(exc))
        return conversation, render.to_chatbot(conversation)

    @staticmethod
    def edit_last(conversation: list[Turn]) -> tuple[str, list[Turn], Chat, bool]:
        """Put the last question back in the box; sending it replaces it and what followed."""
        questions = [i for i, t in enumerate(conversation) if t["role"] == "user"]
        if not questions:
            return "", conversation, render.to_chatbot(conversation), False
        text = conversation[questions[-1]]["content"]
        conversation = conversation[: questions[-1]]
        return text, conversation, render.to_chatbot(conversation), True

    @staticmethod
    def new_conversation() -> tuple[list[Turn], None, Chat, str, str, bool]:
        return [], None, [], "", "", False

    def show_prompt(self, conversation: list[Turn], pending: str, model_id: str, system_prompt: str) -> str:
        """The exact text the engine receives after the chat template, for the conversation so far."""
        turns = [*conversation, {"role": "user", "content": pending}] if pending.strip() else conversation
        messages = render.to_messages(turns, system_prompt)
        if not messages:
            return "(type a question first)"
        try:
            prompt, tokens = self.ctx.chat.render_prompt(model_id, messages)
        except PlaygroundError as exc:
            return f"⚠ {exc}"
        return f"{prompt}\n\n--- {tokens} tokens ---" if tokens is not None else prompt

    def describe_model(self, model_id: str) -> tuple[Any, ...]:
        """The card, the meter, and the parameters set to the model's recommended sampling."""
        try:
            spec = self.ctx.registry.resolve(model_id)
        except PlaygroundError as exc:
            return (render.safe_markdown(f"⚠ {exc}"), "", *(gr.update() for _ in widgets.SAMPLING_FIELDS), "")
        values = widgets.recommended(spec)
        return (
            render.safe_markdown(widgets.model_card(spec, self.ctx.registry)),
            render.context_meter(None, spec.context_window),
            *(getattr(values, name) for name in widgets.SAMPLING_FIELDS),
            widgets.sampling_note(spec),
        )

    def preset(self, name: str | None) -> str:
        return self.ctx.prompts.system.get(name or "", "")

    # The plain API endpoint

    async def api_chat(
        self,
        question: str,
        model: str | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        max_new_tokens: int | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: str | None = None,
    ) -> AsyncIterator[str]:
        """Stream one answer to `question` as cumulative text; stateless, never written to the history.

        Every parameter but the question may be left out: the model is the embedded one, the sampling
        values are the model's recommended ones (the catalog's), then the playground's defaults.
        """
        try:
            if not isinstance(question, str) or not question.strip():
                raise InvalidOptionsError("Give a question: a non-empty string.")
            texts = {"model": model, "system_prompt": system_prompt, "stop": stop}
            for name, value in texts.items():
                if value is not None and not isinstance(value, str):
                    raise InvalidOptionsError(f"{name} must be a string, not {type(value).__name__}.")
            options = widgets.options_from(
                temperature, top_p, top_k, max_new_tokens, repetition_penalty, seed, valid_text(stop or "")
            )
            question, system_prompt = valid_text(question), valid_text(system_prompt or "")
            messages = render.to_messages([{"role": "user", "content": question}], system_prompt)
            model_id = model or self.default_model
            prepared = await asyncio.to_thread(self.ctx.chat.prepare, model_id, messages, options)
            text = ""
            async for batch in ThreadedStream(self.ctx.chat.stream(prepared)):
                text += "".join(c.text for c in batch)
                yield text
        except PlaygroundError as exc:
            raise gr.Error(str(exc)) from None

    # Layout and events

    def build(self, owner: gr.State) -> InstructUI:
        """Lay out the tab, then wire its events (in one place, at the bottom)."""
        ctx = self.ctx
        choices = widgets.model_choices(ctx.registry)
        default = self.default_model
        default_spec = ctx.registry.resolve(default)
        conversation, conversation_id, editing = gr.State([]), gr.State(None), gr.State(False)
        keys = gr.State({})  # provider -> a key this visitor typed; server-side, never sent to the page
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    elem_id="instruct-chat",
                    height=480,
                    buttons=["copy", "copy_all"],
                    show_label=False,
                    placeholder="Ask the model anything.",
                )
                notice = gr.Markdown(elem_id="instruct-notice")
                with gr.Row():
                    question = gr.Textbox(
                        elem_id="instruct-input",
                        show_label=False,
                        scale=6,
                        lines=1,
                        max_lines=8,
                        placeholder="Type a message, Enter to send",
                    )
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="instruct-send")
                    stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id="instruct-stop")
                with gr.Row():
                    regenerate = gr.Button("↻ Regenerate", size="sm", elem_id="instruct-regenerate")
                    edit = gr.Button("✎ Edit last question", size="sm", elem_id="instruct-edit")
                    new = gr.Button("＋ New conversation", size="sm", elem_id="instruct-new")
                    show = gr.Button("Show prompt", size="sm", elem_id="instruct-show-prompt")
                with gr.Row():
                    meter = gr.Markdown(elem_id="instruct-meter")
                    incognito = gr.Checkbox(
                        False, label="Incognito (not saved)", elem_id="instruct-incognito"
                    )
                with gr.Accordion("Get code", open=False):
                    code_btn = gr.Button(
                        "Write the code for this request", size="sm", elem_id="instruct-get-code"
                    )
                    code_view = gr.Code(language="python", elem_id="instruct-code", interactive=False)
                with gr.Accordion("Prompt as the engine receives it", open=False) as prompt_box:
                    prompt_view = gr.Code(language=None, elem_id="instruct-prompt", interactive=False)
                if ctx.prompts.examples:
                    gr.Examples(ctx.prompts.examples, inputs=question, label="Try")
            with gr.Column(scale=2):
                model = gr.Dropdown(choices, value=default, label="Model", elem_id="instruct-model")
                card = gr.Markdown(render.safe_markdown(widgets.model_card(default_spec, ctx.registry)))
                with gr.Accordion("Your own API key (this session only)", open=False):
                    key_box = gr.Textbox(
                        type="password",
                        show_label=False,
                        placeholder="Key for the selected model's provider, then Enter",
                        elem_id="instruct-key",
                    )
                    key_status = gr.Markdown(elem_id="instruct-key-status")
                presets = gr.Dropdown(list(ctx.prompts.system), value=None, label="System prompt preset")
                system = gr.Textbox(label="System prompt", lines=3, elem_id="instruct-system")
                with gr.Accordion("Parameters", open=True):
                    parameters = widgets.option_inputs("instruct", widgets.recommended(default_spec))
                    options = parameters.components
                    sampling = gr.Markdown(widgets.sampling_note(default_spec), elem_id="instruct-sampling")

        answer: dict[str, Any] = {
            "fn": self.respond,
            "api_visibility": "private",
            "concurrency_limit": 4,
            "inputs": [conversation, conversation_id, owner, keys, incognito, model, system, *options],
            "outputs": [conversation, conversation_id, chatbot, meter, notice],
        }
        ask: dict[str, Any] = {
            "fn": add_question,
            "inputs": [question, conversation, editing],
            "api_visibility": "private",
            "outputs": [question, conversation, chatbot, editing],
            "queue": False,
        }
        answered = [
            question.submit(**ask).then(**answer),
            send.click(**ask).then(**answer),
            regenerate.click(
                self.regenerate,
                [conversation, conversation_id, owner],
                [conversation, chatbot],
                api_visibility="private",
            ).then(**answer),
        ]
        stop_btn.click(self.stop, None, None, queue=False, api_visibility="private")
        edit.click(
            self.edit_last,
            conversation,
            [question, conversation, chatbot, editing],
            queue=False,
            api_visibility="private",
        )
        new.click(
            self.new_conversation,
            None,
            [conversation, conversation_id, chatbot, meter, notice, editing],
            queue=False,
            api_visibility="private",
        )
        show.click(
            self.show_prompt, [conversation, question, model, system], prompt_view, api_visibility="private"
        ).then(self.open_box, None, prompt_box, api_visibility="private")
        key_box.submit(
            self.set_key, [key_box, model, keys], [key_box, keys, key_status], api_visibility="private"
        )
        code_btn.click(
            self.get_code,
            [conversation, question, model, system, *options],
            code_view,
            api_visibility="private",
        )
        model.change(
            self.describe_model,
            model,
            [card, meter, *parameters.sampling, sampling],
            queue=False,
            api_visibility="private",
        )
        presets.change(self.preset, presets, system, queue=False, api_visibility="private")
        self._build_api()
        return InstructUI(conversation, conversation_id, chatbot, meter, notice, model, answered)

    @staticmethod
    def open_box() -> gr.Accordion:
        return gr.Accordion(open=True)

    def _build_api(self) -> None:
        """`/chat`: the endpoint for scripts, tests and benchmarks, streaming the cumulative text.

        Its own hidden inputs, so that everything but the question has a default (the model's recommended
        sampling when a value is left out), and a named result.
        """
        with gr.Column(visible=False):
            inputs = [
                gr.Textbox(label="question"),
                gr.Textbox(self.default_model, label="model"),
                gr.Textbox("", label="system_prompt"),
                gr.Number(None, label="temperature"),
                gr.Number(None, label="top_p"),
                gr.Number(None, label="top_k"),
                gr.Number(None, label="max_new_tokens"),
                gr.Number(None, label="repetition_penalty"),
                gr.Number(None, label="seed"),
                gr.Textbox("", label="stop"),
            ]
            answer = gr.Textbox(label="answer")  # numbers stay unrounded: the options parser names a bad one
            trigger = gr.Button()
        trigger.click(self.api_chat, inputs, answer, api_name="chat", concurrency_limit=4)


@dataclass
class _Answer:
    """The answer being streamed and the outputs it updates."""

    conversation: list[Turn]
    conversation_id: str | None
    turn: Turn = field(default_factory=dict)
    meter: str = ""
    notice: str = ""

    def start(self, spec: Any, notice: str) -> None:
        self.turn = {
            "role": "assistant",
            "content": "",
            "model": spec.id,
            "model_name": spec.name,
            "engine": spec.engine_label,
            "metrics": None,
            "finish": None,
        }
        self.conversation = [*self.conversation, self.turn]
        self.notice = render.safe_markdown(f"ℹ {notice}") if notice else ""

    def outputs(self, *, streaming: bool = False, notice: str | None = None) -> tuple[Any, ...]:
        if notice is not None:
            self.notice = notice
        chat = render.to_chatbot(self.conversation, streaming=streaming)
        return self.conversation, self.conversation_id, chat, self.meter, self.notice
