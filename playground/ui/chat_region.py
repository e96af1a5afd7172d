"""The chat region the Instruct, Vision and MoE tabs share: the chat, its input, the parameters, the
metrics, Stop, regenerate, edit, new, show prompt, get code, a visitor's own key and incognito.

A tab is a `RegionConfig` (its element-id prefix, its history tab, the models it lists, whether it takes
images) and, where it shows more than the chat, a subclass that overrides a few hooks:
- `build_side(spec)`: components in the right-hand column, under the model card (the MoE card);
- `build_beside()`: components beside the chat that show an answer (the MoE map), returned as a list;
- `shown(conversation, live)`: their values, for the conversation (and the records streaming now);
- `describe_extra(model_id)` with `extra_card`: what changes with the picked model beyond the card.
The Instruct tab is the region with no hooks (plus the `/chat` API); copy vision_tab.py or moe_tab.py
for a new tab.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..answers import Event, Experts, Finished, Recording, Request, Started, Text, Waiting
from ..codegen import snippet
from ..context import AppContext
from ..errors import HistoryFullError, PlaygroundError
from ..history import check_owner_id
from ..moe_view import pack
from ..text import valid_text
from ..types import Capability, ExpertRecord, ModelSpec
from . import render, widgets
from .render import Turn, user_error, warn
from .streaming import ThreadedStream

Chat = list[dict[str, Any]]
Box = str | dict[str, Any]  # a Textbox's value, or a MultimodalTextbox's {"text": ..., "files": [...]}
IMAGE_TYPES = ["image"]


@dataclass(frozen=True)
class RegionConfig:
    """What makes one tab's chat region different from another's."""

    prefix: str  # of every elem_id ("instruct-chat", "vision-input", ...)
    tab: str  # the Tabs id, and the `tab` its conversations are kept under in the history
    capability: Capability = Capability.CHAT  # the models the picker lists
    images: bool = False  # images by upload, paste and webcam
    chat_placeholder: str = "Ask the model anything."
    input_placeholder: str = "Type a message, Enter to send"
    custom_models: bool = False  # the picker also takes a typed model id or a local folder


@dataclass
class RegionUI:
    """The components other tabs need (the History tab opens conversations into a region)."""

    tab: str
    conversation: gr.State
    conversation_id: gr.State
    chatbot: gr.Chatbot
    meter: gr.Markdown
    notice: gr.Markdown
    model: gr.Dropdown
    capability: Capability
    answered: list[Any] = field(default_factory=list)  # the events that end with an answer
    shows: list[Any] = field(default_factory=list)  # components beyond the chat that show an answer
    shown: Callable[[list[Turn]], tuple[Any, ...]] = lambda conversation: ()

    @property
    def opened(self) -> list[Any]:
        """What opening a conversation sets: the state, the chat, the meter, the notice, the shows."""
        return [self.conversation, self.conversation_id, self.chatbot, self.meter, self.notice, *self.shows]


def box_parts(value: Box | None) -> tuple[str, list[str]]:
    """The text and the attached files' paths of an input box's value."""
    if isinstance(value, dict):
        files = [f if isinstance(f, str) else str(f.get("path", "")) for f in value.get("files") or []]
        return valid_text(str(value.get("text") or "")), [f for f in files if f]
    return valid_text(value or ""), []


def empty_box(value: Box | None) -> Box:
    return {"text": "", "files": []} if isinstance(value, dict) else ""


def add_question(value: Box, conversation: list[Turn], editing: bool) -> tuple[Box, list[Turn], Chat, bool]:
    """Step one of a submit: show the question (and its images) at once and clear the box."""
    text, files = box_parts(value)
    if not text.strip() and not files:
        return value, conversation, render.to_chatbot(conversation), editing
    turn: Turn = {"role": "user", "content": text, "edit": editing}
    if isinstance(value, dict):
        turn["images"] = files
    conversation = [*settled(conversation), turn]
    return empty_box(value), conversation, render.to_chatbot(conversation), False


def settled(conversation: list[Turn]) -> list[Turn]:
    """Mark an answer that never got its finish (the page was left mid-stream) as cancelled."""
    return [
        {**t, "finish": "cancelled"} if t["role"] == "assistant" and t.get("finish") is None else t
        for t in conversation
    ]


class ChatRegion:
    """Handlers of one tab's chat; one instance per app, per-visitor data only in Gradio state."""

    def __init__(self, ctx: AppContext, config: RegionConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.choices = widgets.model_choices(ctx.registry, config.capability)
        self.default_model = widgets.default_model(self.choices, ctx.settings.default_model, ctx.registry)

    # Hooks a tab may override

    def build_side(self, spec: ModelSpec) -> None:
        """Components under the model card (right-hand column)."""

    def build_beside(self) -> list[Any]:
        """Components beside the chat that show an answer; `shown` gives their values."""
        return []

    def shown(self, conversation: list[Turn], live: Sequence[ExpertRecord] | None = None) -> tuple[Any, ...]:
        """The values of `build_beside`'s components for this conversation (and the records live now)."""
        return ()

    extra_card: list[Any]  # components `describe_extra` updates when the model changes

    def describe_extra(self, model_id: str) -> tuple[Any, ...]:
        return ()

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
        num_crops: float | None,
        request: gr.Request,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Step two: stream the answer to the last question (through the answer pipeline), keeping
        whatever arrives."""
        if not conversation or conversation[-1]["role"] != "user":
            return
        state = _Answer(conversation, conversation_id)
        values = (temperature, top_p, top_k, max_new_tokens, repetition_penalty, seed, valid_text(stop or ""))
        try:
            owner = check_owner_id(owner_value)
            options = widgets.options_from(*values, num_crops)
            if not incognito:
                state.conversation_id, state.unsaved = await asyncio.to_thread(
                    self._keep_question, owner, conversation_id, model_id, conversation[-1]
                )
        except PlaygroundError as exc:
            user_error(exc)
            yield self._outputs(state, notice=render.safe_markdown(f"⚠ {exc}"))
            return
        session = request.session_hash
        answer = self.ctx.answers.ask(
            Request(
                model_id,
                render.to_messages(conversation, valid_text(system_prompt or "")),
                options,
                api_key=self.session_key(keys, model_id),
                owner=session,
                stop=(session, self.config.tab),
                record=None if state.conversation_id is None else Recording(owner, state.conversation_id),
            )
        )
        batches = ThreadedStream(answer, stop=answer.stop_event, ends_itself=True).__aiter__()
        async with contextlib.aclosing(batches):  # closed at once when the visitor leaves
            async for batch in batches:
                for event in batch:
                    state.take(event)
                if not state.finished:
                    yield self._outputs(state, streaming=True)
        yield self._outputs(state)

    def _keep_question(
        self, owner: str, conversation_id: str | None, model_id: str, question: Turn
    ) -> tuple[str | None, str]:
        """Write the question to the history: the conversation's id, and why it was not saved (a full
        history in public mode still answers, as if incognito)."""
        try:
            kept = self.ctx.conversations.ask(
                owner,
                conversation_id,
                question["content"],
                model_id,
                tab=self.config.tab,
                edit=bool(question.get("edit")),
                images=question.get("images") if self.config.images else None,
            )
        except HistoryFullError as exc:
            return None, f"Not saved: {exc}"
        return kept, ""

    def _outputs(
        self, state: _Answer, *, streaming: bool = False, notice: str | None = None
    ) -> tuple[Any, ...]:
        live = state.records if streaming else None
        return (*state.outputs(streaming=streaming, notice=notice), *self.shown(state.conversation, live))

    def stop(self, request: gr.Request) -> None:
        """Stop the visitor's running answer in this tab: the engine stops at its next token."""
        self.ctx.answers.stop(request.session_hash, self.config.tab)

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
        self, conversation: list[Turn], pending: Box, model_id: str, system_prompt: str, *values: Any
    ) -> gr.Code:
        """A runnable script, in the provider's own SDK, that sends this conversation with these settings."""
        turns = with_pending(conversation, pending)
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
                user_error(exc)
        return conversation, render.to_chatbot(conversation)

    def edit_last(self, conversation: list[Turn]) -> tuple[Box, list[Turn], Chat, bool]:
        """Put the last question (and its images) back in the box; sending it replaces it and what followed."""
        questions = [i for i, t in enumerate(conversation) if t["role"] == "user"]
        if not questions:
            return self._box("", []), conversation, render.to_chatbot(conversation), False
        last = conversation[questions[-1]]
        conversation = conversation[: questions[-1]]
        return (
            self._box(last["content"], last.get("images") or []),
            conversation,
            render.to_chatbot(conversation),
            True,
        )

    def _box(self, text: str, files: list[str]) -> Box:
        return {"text": text, "files": files} if self.config.images else text

    def new_conversation(self) -> tuple[Any, ...]:
        """An empty chat: state, id, chat, meter, notice, editing, then the shows emptied."""
        return ([], None, [], "", "", False, *self.shown([]))

    def show_prompt(self, conversation: list[Turn], pending: Box, model_id: str, system_prompt: str) -> str:
        """The exact text the engine receives after the chat template, for the conversation so far."""
        messages = render.to_messages(with_pending(conversation, pending), system_prompt)
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

    @staticmethod
    def open_box() -> gr.Accordion:
        return gr.Accordion(open=True)

    # Layout and events

    def build_input(self) -> Any:
        """The question box: a Textbox, or a MultimodalTextbox where images are taken (upload, paste)."""
        p = self.config.prefix
        if self.config.images:
            return gr.MultimodalTextbox(
                elem_id=f"{p}-input",
                show_label=False,
                scale=6,
                lines=1,
                max_lines=8,
                file_types=IMAGE_TYPES,
                file_count="multiple",
                sources=["upload"],
                submit_btn=False,
                placeholder=self.config.input_placeholder,
            )
        return gr.Textbox(
            elem_id=f"{p}-input",
            show_label=False,
            scale=6,
            lines=1,
            max_lines=8,
            placeholder=self.config.input_placeholder,
        )

    def build_examples(self, question: Any, num_crops: Any) -> None:
        """Example questions under the chat."""
        if self.ctx.prompts.examples:
            gr.Examples(self.ctx.prompts.examples, inputs=question, label="Try")

    def build_num_crops(self) -> Any:
        """The setting only Phi-3/3.5-vision takes; a hidden None elsewhere."""
        return gr.State(None)

    def build(self, owner: gr.State) -> RegionUI:
        """Lay out the region, then wire its events (in one place, at the bottom)."""
        ctx, p = self.ctx, self.config.prefix
        default = self.default_model
        default_spec = ctx.registry.resolve(default)
        conversation, conversation_id, editing = gr.State([]), gr.State(None), gr.State(False)
        keys = gr.State({})  # provider -> a key this visitor typed; server-side, never sent to the page
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row(equal_height=True):
                    chatbot = gr.Chatbot(
                        elem_id=f"{p}-chat",
                        height=480,
                        buttons=["copy", "copy_all"],
                        show_label=False,
                        placeholder=self.config.chat_placeholder,
                        scale=3,
                    )
                    shows = self.build_beside()
                notice = gr.Markdown(elem_id=f"{p}-notice", elem_classes=["chat-notice"])
                with gr.Row():
                    question = self.build_input()
                    send = gr.Button("Send", variant="primary", scale=1, elem_id=f"{p}-send")
                    stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id=f"{p}-stop")
                if self.config.images:
                    self.build_webcam(question)
                with gr.Row():
                    regenerate = gr.Button("↻ Regenerate", size="sm", elem_id=f"{p}-regenerate")
                    edit = gr.Button("✎ Edit last question", size="sm", elem_id=f"{p}-edit")
                    new = gr.Button("＋ New conversation", size="sm", elem_id=f"{p}-new")
                    show = gr.Button("Show prompt", size="sm", elem_id=f"{p}-show-prompt")
                with gr.Row():
                    meter = gr.Markdown(elem_id=f"{p}-meter", elem_classes=["chat-notice"])
                    incognito = gr.Checkbox(False, label="Incognito (not saved)", elem_id=f"{p}-incognito")
                with gr.Accordion("Get code", open=False):
                    code_btn = gr.Button(
                        "Write the code for this request", size="sm", elem_id=f"{p}-get-code"
                    )
                    code_view = gr.Code(language="python", elem_id=f"{p}-code", interactive=False)
                with gr.Accordion("Prompt as the engine receives it", open=False) as prompt_box:
                    prompt_view = gr.Code(language=None, elem_id=f"{p}-prompt", interactive=False)
            with gr.Column(scale=2):
                model = gr.Dropdown(
                    self.choices,
                    value=default,
                    label="Model",
                    elem_id=f"{p}-model",
                    allow_custom_value=self.config.custom_models,
                    info="or type any model id, or a local folder" if self.config.custom_models else None,
                )
                card = gr.Markdown(render.safe_markdown(widgets.model_card(default_spec, ctx.registry)))
                self.build_side(default_spec)
                with gr.Accordion("Your own API key (this session only)", open=False):
                    key_box = gr.Textbox(
                        type="password",
                        show_label=False,
                        placeholder="Key for the selected model's provider, then Enter",
                        elem_id=f"{p}-key",
                    )
                    key_status = gr.Markdown(elem_id=f"{p}-key-status")
                presets = gr.Dropdown(list(ctx.prompts.system), value=None, label="System prompt preset")
                system = gr.Textbox(label="System prompt", lines=3, elem_id=f"{p}-system")
                with gr.Accordion("Parameters", open=True):
                    parameters = widgets.option_inputs(p, widgets.recommended(default_spec))
                    num_crops = self.build_num_crops()
                    options = [*parameters.components, num_crops]
                    sampling = gr.Markdown(widgets.sampling_note(default_spec), elem_id=f"{p}-sampling")
        with gr.Column():
            self.build_examples(question, num_crops)

        answer: dict[str, Any] = {
            "fn": self.respond,
            "api_visibility": "private",
            "concurrency_limit": 4,
            "inputs": [conversation, conversation_id, owner, keys, incognito, model, system, *options],
            "outputs": [conversation, conversation_id, chatbot, meter, notice, *shows],
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
            [conversation, conversation_id, chatbot, meter, notice, editing, *shows],
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
        extra_card = getattr(self, "extra_card", [])
        if extra_card:
            model.change(self.describe_extra, model, extra_card, queue=False, api_visibility="private")
        presets.change(self.preset, presets, system, queue=False, api_visibility="private")
        return RegionUI(
            self.config.tab,
            conversation,
            conversation_id,
            chatbot,
            meter,
            notice,
            model,
            self.config.capability,
            answered,
            shows,
            self.shown,
        )

    def build_webcam(self, question: Any) -> None:
        """A webcam snapshot, attached to the question being written (images regions only)."""
        p = self.config.prefix
        with gr.Accordion("Webcam", open=False):
            camera = gr.Image(
                sources=["webcam"], type="filepath", label="Take a photo", elem_id=f"{p}-webcam", height=240
            )
            attach = gr.Button("Attach the photo to the question", size="sm", elem_id=f"{p}-attach-photo")
        attach.click(
            attach_photo, [camera, question], [question, camera], queue=False, api_visibility="private"
        )


def attach_photo(photo: str | None, value: Box | None) -> tuple[Box, Any]:
    """Add a webcam snapshot to the files of the question box, and clear the camera for the next one."""
    text, files = box_parts(value if isinstance(value, dict) else {"text": value or "", "files": []})
    if not photo:
        gr.Warning("Take a photo first (the camera button), then attach it.")
        return {"text": text, "files": files}, gr.update()
    return {"text": text, "files": [*files, photo]}, None


def with_pending(conversation: list[Turn], pending: Box) -> list[Turn]:
    """The conversation with what is typed (and attached) in the box as its next question."""
    text, files = box_parts(pending)
    if not text.strip() and not files:
        return conversation
    return [*conversation, {"role": "user", "content": text, "images": files}]


@dataclass
class _Answer:
    """The answer being streamed, drawn from the pipeline's events, and the outputs it updates."""

    conversation: list[Turn]
    conversation_id: str | None
    unsaved: str = ""  # why the question was not saved (a full history)
    turn: Turn | None = None
    meter: str = ""
    notice: str = ""
    records: list[ExpertRecord] = field(default_factory=list)
    finished: bool = False
    prompt_tokens: int | None = None
    window: int = 0

    def take(self, event: Event) -> None:
        if isinstance(event, Text) and self.turn is not None:
            self.turn["content"] += event.text
        elif isinstance(event, Experts):
            self.records.append(event.record)
        elif isinstance(event, Waiting):
            self.notice = event.notice
        elif isinstance(event, Started):
            self.start(event)
        elif isinstance(event, Finished):
            self.finish(event)

    def start(self, started: Started) -> None:
        spec = started.spec
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
        notice = " ".join(part for part in (self.unsaved, started.notice) if part)
        self.notice = render.safe_markdown(f"ℹ {notice}") if notice else ""
        self.prompt_tokens, self.window = started.prompt_tokens, spec.context_window
        self.meter = render.context_meter(started.prompt_tokens, spec.context_window)

    def finish(self, finished: Finished) -> None:
        self.finished = True
        if finished.error:
            warn(finished.error)
            self.notice = render.safe_markdown(f"⚠ {finished.error}")
        elif self.notice.startswith("⏳"):
            self.notice = ""
        if self.turn is None:
            return
        self.turn["metrics"] = finished.metrics.to_dict()
        self.turn["finish"] = str(finished.reason)
        if self.records:
            self.turn["experts"] = pack(self.records)
        if self.prompt_tokens is not None:
            self.meter = render.context_meter(
                self.prompt_tokens + finished.metrics.completion_tokens, self.window
            )

    def outputs(self, *, streaming: bool = False, notice: str | None = None) -> tuple[Any, ...]:
        if notice is not None:
            self.notice = notice
        chat = render.to_chatbot(self.conversation, streaming=streaming)
        return self.conversation, self.conversation_id, chat, self.meter, self.notice
