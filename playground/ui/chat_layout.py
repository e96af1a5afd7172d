"""The chat region's layout, as Gradio's ChatInterface lays out its own: small render methods that each
return their components as a typed group, then one method that wires every event.

    ChatLayout(region).build(owner) -> RegionUI

The handlers are the region's (chat_region.py); a tab adds to the layout through the region's hooks
(`render_beside`, `render_card_extra`, `render_examples`). Nothing here keeps state between requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from ..token_view import BRANCHER
from . import render, widgets
from .chat_controls import (
    ResponseFormatInputs,
    render_num_crops,
    render_response_format,
    render_webcam,
    wire_answer_controls,
)
from .delta import delta_html

if TYPE_CHECKING:
    from .chat_region import ChatRegion, RegionUI

IMAGE_TYPES = ["image"]
PRIVATE: dict[str, Any] = {"api_visibility": "private"}


@dataclass
class ChatState:
    """Per-visitor values, kept server-side in Gradio state."""

    conversation: gr.State
    conversation_id: gr.State
    editing: gr.State
    keys: gr.State  # provider -> a key this visitor typed; never sent to the page


@dataclass
class ChatArea:
    chatbot: gr.Chatbot
    shows: list[Any]  # beside the chat: what the tab shows of an answer (the MoE map)
    notice: gr.Markdown


@dataclass
class Composer:
    question: Any  # a Textbox, or a MultimodalTextbox where images are taken
    send: gr.Button
    stop: gr.Button


@dataclass
class Actions:
    regenerate: gr.Button
    edit: gr.Button
    new: gr.Button
    show: gr.Button
    meter: gr.Markdown
    incognito: gr.Checkbox
    token_view: gr.Checkbox  # each token's probability and alternatives under the answer


@dataclass
class Views:
    """What the request looks like: the code that repeats it, the prompt after the chat template."""

    code_button: gr.Button
    code: gr.Code
    prompt_box: gr.Accordion
    prompt: gr.Code
    prompt_shown: gr.State  # whether the prompt view is open (it is refreshed only then)


@dataclass
class SidePanel:
    model: gr.Dropdown
    card: gr.Markdown
    extra: list[Any]  # under the card, updated with it (the tab's `describe_extra`)
    key_box: gr.Textbox
    key_status: gr.Markdown
    presets: gr.Dropdown
    system: gr.Textbox
    parameters: widgets.OptionInputs
    num_crops: Any  # a slider where images are taken (Phi-3/3.5-vision reads it), else a None state
    sampling: gr.Markdown
    response: ResponseFormatInputs

    @property
    def options(self) -> list[Any]:
        """Every generation parameter, in the order the handlers take them."""
        return [*self.parameters.components, self.num_crops]


@dataclass
class ChatParts:
    """Every group of one region, as `wire` connects them."""

    state: ChatState
    chat: ChatArea
    composer: Composer
    actions: Actions
    views: Views
    side: SidePanel


class ChatLayout:
    """Lays out one region and wires its events to the region's handlers."""

    def __init__(self, region: ChatRegion) -> None:
        self.region = region
        self.prefix = region.config.prefix

    def build(self, owner: gr.State) -> RegionUI:
        from .chat_region import RegionUI

        state = ChatState(gr.State([]), gr.State(None), gr.State(False), gr.State({}))
        with gr.Row():
            with gr.Column(scale=3):
                chat = self.render_chat()
                composer = self.render_composer()
                actions = self.render_actions()
                views = self.render_views()
            with gr.Column(scale=2):
                side = self.render_side()
        with gr.Column():
            self.region.render_examples(composer.question, side.num_crops)
        answered = self.wire(owner, ChatParts(state, chat, composer, actions, views, side))
        return RegionUI(
            self.region.config.tab,
            state.conversation,
            state.conversation_id,
            chat.chatbot,
            actions.meter,
            chat.notice,
            side.model,
            self.region.config.capability,
            answered,
            chat.shows,
            self.region.views_of,
        )

    # Render: each returns its components

    def render_chat(self) -> ChatArea:
        with gr.Row(equal_height=True):
            chatbot = gr.Chatbot(
                elem_id=f"{self.prefix}-chat",
                height=480,
                buttons=["copy", "copy_all"],
                show_label=False,
                placeholder=self.region.config.chat_placeholder,
                scale=3,
            )
            shows = self.region.render_beside()
        notice = gr.Markdown(elem_id=f"{self.prefix}-notice", elem_classes=["chat-notice"])
        picker = gr.Radio(
            [], label="Branches of this answer", visible=False, elem_id=f"{self.prefix}-branches"
        )
        tokens = delta_html(
            visible=False, elem_id=f"{self.prefix}-tokens", elem_classes=["token-view"], script=BRANCHER
        )
        return ChatArea(chatbot, [*shows, picker, tokens], notice)

    def render_composer(self) -> Composer:
        with gr.Row():
            question = self.render_question()
            send = gr.Button("Send", variant="primary", scale=1, elem_id=f"{self.prefix}-send")
            stop = gr.Button("Stop", variant="stop", scale=1, elem_id=f"{self.prefix}-stop")
        if self.region.config.images:
            render_webcam(self.prefix, question)
        return Composer(question, send, stop)

    def render_question(self) -> Any:
        """The question box: a Textbox, or a MultimodalTextbox where images are taken (upload, paste)."""
        common: dict[str, Any] = {
            "elem_id": f"{self.prefix}-input",
            "show_label": False,
            "scale": 6,
            "lines": 1,
            "max_lines": 8,
            "placeholder": self.region.config.input_placeholder,
        }
        if self.region.config.images:
            return gr.MultimodalTextbox(
                file_types=IMAGE_TYPES, file_count="multiple", sources=["upload"], submit_btn=False, **common
            )
        return gr.Textbox(**common)

    def render_actions(self) -> Actions:
        p = self.prefix
        with gr.Row():
            regenerate = gr.Button("↻ Regenerate", size="sm", elem_id=f"{p}-regenerate")
            edit = gr.Button("✎ Edit last question", size="sm", elem_id=f"{p}-edit")
            new = gr.Button("＋ New conversation", size="sm", elem_id=f"{p}-new")
            show = gr.Button("Show prompt", size="sm", elem_id=f"{p}-show-prompt")
        with gr.Row():
            meter = gr.Markdown(elem_id=f"{p}-meter", elem_classes=["chat-notice"])
            incognito = gr.Checkbox(False, label="Incognito (not saved)", elem_id=f"{p}-incognito")
            token_view = gr.Checkbox(False, label="Token view", elem_id=f"{p}-token-view")
        return Actions(regenerate, edit, new, show, meter, incognito, token_view)

    def render_views(self) -> Views:
        p = self.prefix
        with gr.Accordion("Get code", open=False):
            button = gr.Button("Write the code for this request", size="sm", elem_id=f"{p}-get-code")
            code = gr.Code(language="python", elem_id=f"{p}-code", interactive=False)
        with gr.Accordion(
            "Prompt as the engine receives it", open=False, elem_id=f"{p}-prompt-box"
        ) as prompt_box:
            prompt = gr.Code(language=None, elem_id=f"{p}-prompt", interactive=False)
        return Views(button, code, prompt_box, prompt, gr.State(False))

    def render_side(self) -> SidePanel:
        region, p = self.region, self.prefix
        spec = region.ctx.registry.resolve(region.default_model)
        model = gr.Dropdown(
            region.choices,
            value=region.default_model,
            label="Model",
            elem_id=f"{p}-model",
            allow_custom_value=region.config.custom_models,
            info="or type any model id, or a local folder" if region.config.custom_models else None,
        )
        card = gr.Markdown(render.safe_markdown(widgets.model_card(spec, region.ctx.registry)))
        extra = region.render_card_extra(spec)
        with gr.Accordion("Your own API key (this session only)", open=False):
            key_box = gr.Textbox(
                type="password",
                show_label=False,
                placeholder="Key for the selected model's provider, then Enter",
                elem_id=f"{p}-key",
            )
            key_status = gr.Markdown(elem_id=f"{p}-key-status")
        presets = gr.Dropdown(list(region.ctx.prompts.system), value=None, label="System prompt preset")
        system = gr.Textbox(label="System prompt", lines=3, elem_id=f"{p}-system")
        with gr.Accordion("Parameters", open=True):
            parameters = widgets.option_inputs(p, widgets.recommended(spec))
            num_crops = render_num_crops(self.prefix, spec, images=self.region.config.images)
            sampling = gr.Markdown(widgets.sampling_note(spec), elem_id=f"{p}-sampling")
        response = render_response_format(self.prefix, self.region.examples)
        return SidePanel(
            model,
            card,
            extra,
            key_box,
            key_status,
            presets,
            system,
            parameters,
            num_crops,
            sampling,
            response,
        )

    # Wire: every event, in one place

    def wire(self, owner: gr.State, parts: ChatParts) -> list[Any]:
        """Connect the components to the region's handlers; the events that end with an answer."""
        state, chat, composer, actions, side = (
            parts.state,
            parts.chat,
            parts.composer,
            parts.actions,
            parts.side,
        )
        region, question = self.region, composer.question
        answer: dict[str, Any] = {
            "fn": region.respond,
            "concurrency_limit": 4,
            "inputs": [
                state.conversation,
                state.conversation_id,
                owner,
                state.keys,
                actions.incognito,
                actions.token_view,
                *parts.side.response.inputs,
                side.model,
                side.system,
                *side.options,
            ],
            "outputs": self.answer_outputs(parts),
            **PRIVATE,
        }
        ask: dict[str, Any] = {
            "fn": region.add_question,
            "inputs": [question, state.conversation, state.editing],
            "outputs": [question, state.conversation, chat.chatbot, state.editing],
            "queue": False,
            **PRIVATE,
        }
        answered = [
            question.submit(**ask).then(**answer),
            composer.send.click(**ask).then(**answer),
            actions.regenerate.click(
                region.regenerate,
                [state.conversation, state.conversation_id, owner],
                [state.conversation, chat.chatbot],
                **PRIVATE,
            ).then(**answer),
        ]
        answered.append(self.wire_branches(parts, owner))
        composer.stop.click(region.stop, None, None, queue=False, **PRIVATE)
        wire_answer_controls(region, actions.token_view, chat.shows[-1], side.response)
        self.wire_prompt(parts, answered)
        self.wire_tools(parts)
        return answered

    def wire_branches(self, parts: ChatParts, owner: gr.State) -> Any:
        """A click on an alternative in the token view branches the last answer there (the view's
        `branch` event); the switch above it shows another branch. The branch event, which answers."""
        region, state, chat, side = self.region, parts.state, parts.chat, parts.side
        picker, tokens = chat.shows[-2], chat.shows[-1]
        branched = tokens.branch(
            region.branch,
            [state.conversation, state.conversation_id, owner, state.keys, parts.actions.incognito,
             *side.response.inputs, side.system, *side.options],
            self.answer_outputs(parts),
            concurrency_limit=4,
            trigger_mode="once",
            **PRIVATE,
        )  # fmt: skip
        picker.input(
            region.switch_branch,
            [picker, state.conversation, state.conversation_id, owner],
            [state.conversation, chat.chatbot, chat.notice, *chat.shows],
            **PRIVATE,
        )
        return branched

    @staticmethod
    def answer_outputs(parts: ChatParts) -> list[Any]:
        """What an answer updates: the state, the chat, the meter, the notice, the shows, the box."""
        state, chat = parts.state, parts.chat
        return [state.conversation, state.conversation_id, chat.chatbot, parts.actions.meter, chat.notice,
                *chat.shows, parts.composer.question, state.editing]  # fmt: skip

    def wire_prompt(self, parts: ChatParts, answered: Sequence[Any]) -> None:
        """The prompt view: filled when opened (or by Show prompt), refreshed while open after a new
        conversation, another model or an answer (prompt_view.py builds it)."""
        region, views, side, state = self.region, parts.views, parts.side, parts.state
        inputs = [state.conversation, parts.composer.question, side.model, side.system, *side.options]
        shown = views.prompt_shown
        parts.actions.show.click(
            region.open_prompt, inputs, [views.prompt_box, shown, views.prompt], **PRIVATE
        )
        views.prompt_box.expand(region.expand_prompt, inputs, [shown, views.prompt], **PRIVATE)
        views.prompt_box.collapse(region.collapse_prompt, None, shown, queue=False, **PRIVATE)
        for event in (side.model.change, parts.actions.new.click, *(e.then for e in answered)):
            event(region.refresh_prompt, [shown, *inputs], views.prompt, **PRIVATE)

    def wire_tools(self, parts: ChatParts) -> None:
        """Everything around the answer: edit, new, show prompt, get code, the key, the model's card."""
        state, chat, actions, views, side = parts.state, parts.chat, parts.actions, parts.views, parts.side
        region, question = self.region, parts.composer.question
        actions.edit.click(
            region.edit_last,
            state.conversation,
            [question, state.conversation, chat.chatbot, state.editing],
            queue=False,
            **PRIVATE,
        )
        actions.new.click(
            region.new_conversation,
            None,
            [
                state.conversation,
                state.conversation_id,
                chat.chatbot,
                actions.meter,
                chat.notice,
                state.editing,
                *chat.shows,
            ],
            queue=False,
            **PRIVATE,
        )
        side.key_box.submit(
            region.set_key,
            [side.key_box, side.model, state.keys],
            [side.key_box, state.keys, side.key_status],
            **PRIVATE,
        )
        views.code_button.click(
            region.get_code,
            [state.conversation, question, side.model, side.system, *side.response.inputs, *side.options],
            views.code,
            **PRIVATE,
        )
        described = [side.card, actions.meter, *side.parameters.sampling, side.sampling]
        if region.config.images:
            described.append(side.num_crops)
        side.model.change(region.describe_model, side.model, described, queue=False, **PRIVATE)
        side.model.change(region.forget_code, None, views.code, queue=False, **PRIVATE)  # never stale
        actions.new.click(region.forget_code, None, views.code, queue=False, **PRIVATE)
        if side.extra:
            side.model.change(region.describe_extra, side.model, side.extra, queue=False, **PRIVATE)
        side.presets.change(region.preset, side.presets, side.system, queue=False, **PRIVATE)
