"""The chat region the Instruct, Vision and MoE tabs share: its handlers (the layout is chat_layout.py,
the pure parts chat_parts.py). Answers come from the answer pipeline (answers.py); this draws its events.

A tab is a `RegionConfig` (its element-id prefix, its history tab, the models it lists, whether it takes
images) and, where it shows more than the chat, a subclass that overrides a few hooks:
- `render_beside()`: components beside the chat that show an answer (the MoE map), returned as a list;
- `shown(conversation, live)`: their values, for the conversation, or by delta for the answer streaming
  now (only its new records per update: ui/delta.py);
- `render_card_extra(spec)` and `describe_extra(model_id)`: components under the model card, and their
  values when another model is picked;
- `render_examples(question, num_crops)`: the examples under the chat.
The Instruct tab is the region with no hooks (plus the `/chat` API); copy moe_tab.py for a new tab.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..answers import Recording, Request
from ..branching import Branch, branch_from
from ..context import AppContext
from ..errors import HistoryFullError, PlaygroundError
from ..history import check_owner_id
from ..moe_view import unpack
from ..options import GenerationOptions
from ..structured import load_examples
from ..text import valid_text
from ..token_view import TOKEN_VIEW_K
from ..types import Capability, ModelSpec
from . import branches, render, widgets
from .chat_layout import ChatLayout
from .chat_parts import AnswerView, Box, Chat, add_question, box_parts, with_format
from .region_tools import RegionTools
from .render import Turn, warn
from .streaming import ThreadedStream


@dataclass(frozen=True)
class RegionConfig:
    """What makes one tab's chat region different from another's."""

    prefix: str  # of every elem_id ("instruct-chat", "vision-input", ...)
    tab: str  # the Tabs id, the `tab` its conversations are kept under, and its Stop pane
    capability: Capability = Capability.CHAT  # the models the picker lists
    images: bool = False  # images by upload, paste and webcam
    chat_placeholder: str = "Ask the model anything."
    input_placeholder: str = "Type a message, Enter to send"
    custom_models: bool = False  # the picker also takes a typed model id or a local folder


@dataclass
class RegionUI:
    """The components the app's builder wires across tabs (History opens conversations into a region,
    Providers' Refresh updates its picker)."""

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


class ChatRegion(RegionTools):
    """Handlers of one tab's chat; one instance per app, per-visitor data only in Gradio state."""

    def __init__(self, ctx: AppContext, config: RegionConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.choices = widgets.model_choices(ctx.registry, config.capability)
        self.default_model = widgets.default_model(self.choices, ctx.settings.default_model, ctx.registry)
        self.examples = load_examples()  # prompts/formats.toml: the Response format control's examples

    def build(self, owner: gr.State) -> RegionUI:
        """Lay the region out and wire its events (chat_layout.py)."""
        return ChatLayout(self).build(owner)

    # Hooks a tab may override

    def render_beside(self) -> list[Any]:
        """Components beside the chat that show an answer; `shown` gives their values."""
        return []

    def shown(self, conversation: list[Turn], live: AnswerView | None = None) -> tuple[Any, ...]:
        """The values of `render_beside`'s components: drawn whole for a conversation (opened, new), or
        for `live`, the answer streaming now, by delta (only what arrived since the last update; a view
        keeps what it drew in `live.views`)."""
        return ()

    def views_of(
        self, conversation: list[Turn], live: AnswerView | None = None, *, streaming: bool = False
    ) -> tuple[Any, ...]:
        """Every view of the answer beside and under the chat: the tab's own (`shown`), the switch
        between the last answer's branches, then its token view (by delta while one streams and when it
        ends; whole otherwise)."""
        tokens = (
            self.token_view(conversation) if live is None else self.token_delta(live, ended=not streaming)
        )
        picked = gr.update() if streaming else branches.picker(conversation)
        return (*self.shown(conversation, live), picked, tokens)

    def render_card_extra(self, spec: ModelSpec) -> list[Any]:
        """Components under the model card; `describe_extra` gives their values for another model."""
        return []

    def describe_extra(self, model_id: str) -> tuple[Any, ...]:
        return ()

    def render_examples(self, question: Any, num_crops: Any) -> None:
        """Example questions under the chat."""
        if self.ctx.prompts.examples:
            gr.Examples(self.ctx.prompts.examples, inputs=question, label="Try")

    # Streaming an answer

    async def respond(
        self,
        request: gr.Request,
        conversation: list[Turn],
        conversation_id: str | None,
        owner_value: Any,
        keys: dict[str, str],
        incognito: bool,
        token_view: bool,
        format_kind: str,
        format_spec: str,
        model_id: str,
        system_prompt: str,
        *options: Any,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Step two: stream the answer to the last question (through the answer pipeline), keeping
        whatever arrives. `options`: the parameters' values, in `widgets.options_from`'s order."""
        if not conversation or conversation[-1]["role"] != "user":
            return
        question = conversation[-1]
        state = AnswerView(conversation, conversation_id)
        try:
            owner = check_owner_id(owner_value)
            chosen = widgets.options_from(*options)
            if token_view:  # each token's probability and its alternatives, kept with the answer
                chosen = chosen.model_copy(update={"logprobs": TOKEN_VIEW_K})
            chosen = with_format(chosen, format_kind, format_spec)
            self.ctx.note_address(owner, request)
        except PlaygroundError as exc:
            warn(exc)
            yield self._outputs(state, notice=render.safe_markdown(f"⚠ {exc}"), back=state.withdraw(question))
            return
        record = None if incognito else self._recording(state, owner, model_id, question)
        asked = self._asked(request, model_id, conversation, system_prompt, keys, chosen, record)
        async for outputs in self._streamed(state, asked, question):
            yield outputs

    def _asked(
        self,
        request: gr.Request,
        model_id: str,
        conversation: list[Turn],
        system_prompt: str,
        keys: dict[str, str],
        options: GenerationOptions,
        record: Recording | None,
        branch: Branch | None = None,
    ) -> Request:
        """The pipeline's request for an answer in this tab: the visitor's session owns its place in
        line and its Stop, with their own key for the model's provider, if they gave one."""
        session = request.session_hash
        return Request(
            model_id,
            render.to_messages(conversation, valid_text(system_prompt or "")),
            options,
            api_key=self.session_key(keys, model_id),
            owner=session,
            stop=(session, self.config.tab),
            record=record,
            branch=branch,
        )

    async def _streamed(
        self, state: AnswerView, asked: Request, question: Turn
    ) -> AsyncIterator[tuple[Any, ...]]:
        """The answer to `asked`, drawn into `state` and its outputs yielded as it streams."""
        answer = self.ctx.answers.ask(asked)
        batches = ThreadedStream(answer, stop=answer.stop_event, ends_itself=True).__aiter__()
        async with contextlib.aclosing(batches):  # closed at once when the visitor leaves
            async for batch in batches:
                for event in batch:
                    state.take(event)
                if not state.finished:
                    yield self._outputs(state, streaming=True)
        yield self._outputs(state, back=state.withdraw(question) if state.refused else None)

    async def branch(
        self,
        request: gr.Request,
        event: gr.EventData,
        conversation: list[Turn],
        conversation_id: str | None,
        owner_value: Any,
        keys: dict[str, str],
        incognito: bool,
        format_kind: str,
        format_spec: str,
        system_prompt: str,
        *options: Any,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """A click on an alternative in the token view: the last answer again from that token with the
        alternative forced there (branching.py), by the same model, shown as a branch of the turn (the
        answer it branched from stays, hidden; the switch above the view brings it back)."""
        answers = branches.last_answers(conversation)
        last = conversation[-1] if answers else None
        state = AnswerView(conversation, conversation_id)
        try:
            if last is None or last.get("finish") is None:
                raise PlaygroundError(
                    "Branch from a token of an answer that has ended: wait for it, or Stop it."
                )
            at, token = getattr(event, "at", -1), getattr(event, "token", -1)  # the page's script sends them
            experts = unpack(last.get("experts"))  # an MoE answer's map: its rows up to the token stay
            picked = branch_from(last.get("tokens") or [], int(at), int(token), experts)
            owner = check_owner_id(owner_value)
            chosen = widgets.options_from(*options).model_copy(update={"logprobs": TOKEN_VIEW_K})
            chosen = with_format(chosen, format_kind, format_spec)
            self.ctx.note_address(owner, request)
        except (PlaygroundError, TypeError, ValueError) as exc:
            warn(str(exc))
            yield self._outputs(state, notice=render.safe_markdown(f"⚠ {exc}"))
            return
        earlier = [*conversation[:-1], {**last, "hidden": True}]
        state = AnswerView(earlier, conversation_id, branch=(picked.at, branches.next_number(conversation)))
        state.before = conversation
        store, model_id = self.ctx.history.conversations, str(last.get("model") or "")
        record = None if incognito or conversation_id is None else Recording(store, owner, conversation_id)
        asked = self._asked(request, model_id, earlier, system_prompt, keys, chosen, record, picked)
        async for outputs in self._streamed(state, asked, last):
            yield outputs

    def switch_branch(
        self, number: str, conversation: list[Turn], conversation_id: str | None, owner_value: Any
    ) -> tuple[Any, ...]:
        """Show another branch of the last answer (the conversation goes on from it), in the page and the
        history: the state, the chat, the notice and the views."""
        conversation, chosen = branches.switched(conversation, number)
        notice = ""
        if chosen is not None and conversation_id is not None and chosen.get("id"):
            try:
                store = self.ctx.history.conversations
                store.show_branch(check_owner_id(owner_value), conversation_id, str(chosen["id"]))
            except PlaygroundError as exc:
                notice = render.safe_markdown(f"⚠ {exc}")
        return (conversation, render.to_chatbot(conversation), notice, *self.views_of(conversation))

    def add_question(self, value: Box, conversation: list[Turn], editing: bool) -> tuple[Any, ...]:
        """Step one of a submit (chat_parts.add_question), for a question within PLAYGROUND_PROMPT_CHARS:
        a longer one stays in the box with a warning, and nothing of it is kept in the session."""
        limit = self.ctx.chat.prompt_chars
        if limit is not None and len(box_parts(value)[0]) > limit:
            warn(
                f"The question is longer than {limit:,} characters, which this playground takes: shorten it."
            )
            return gr.update(), conversation, render.to_chatbot(conversation), editing
        return add_question(value, conversation, editing)

    def _recording(self, state: AnswerView, owner: str, model_id: str, question: Turn) -> Recording:
        """Where the answer is kept. A new question is written only once the pipeline accepts it (a
        refused one is never stored); a question asked again (Regenerate) is already there."""
        store = self.ctx.history.conversations
        if state.conversation_id is not None and not question.get("new"):
            return Recording(store, owner, state.conversation_id)

        def keep() -> str | None:  # in the pipeline's thread, before its Started event
            state.conversation_id, state.unsaved = self._keep_question(
                owner, state.conversation_id, model_id, question
            )
            question.pop("new", None)
            return state.conversation_id

        return Recording(store, owner, state.conversation_id, question=keep)

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
        self,
        state: AnswerView,
        *,
        streaming: bool = False,
        notice: str | None = None,
        back: Turn | None = None,
    ) -> tuple[Any, ...]:
        """The answer's outputs, then the question box and the editing flag: left alone, or (`back`: a
        refused question) the question and its images put back as they were before it was sent."""
        # by delta once the answer streams; a question refused before any answer: the conversation, whole
        live = state if streaming or state.turn is not None else None
        box: tuple[Any, Any] = (gr.update(), gr.update())
        if back is not None:
            box = (self._box(back["content"], list(back.get("images") or [])), bool(back.get("edit")))
        return (
            *state.outputs(streaming=streaming, notice=notice),
            *self.views_of(state.conversation, live, streaming=streaming),
            *box,
        )

    def stop(self, request: gr.Request) -> None:
        """Stop the visitor's running answer in this tab: the engine stops at its next token."""
        self.ctx.answers.stop(request.session_hash, self.config.tab)

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
                warn(exc)
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
        return ([], None, [], "", "", False, *self.views_of([]))
