"""The chat region's pure parts: what the question box holds, the conversation on the page, and the
answer being streamed as the answer pipeline's events arrive. No Gradio components are made here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..answers import Event, Experts, Finished, Started, Text, Tokens, Waiting
from ..errors import InvalidOptionsError
from ..moe_view import pack
from ..options import GenerationOptions
from ..repetition import repetition_hint
from ..structured import from_choice
from ..text import valid_text
from ..types import ExpertRecord, TokenRecord
from . import render
from .render import Turn, warn

Chat = list[dict[str, Any]]
Box = str | dict[str, Any]  # a Textbox's value, or a MultimodalTextbox's {"text": ..., "files": [...]}


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
    turn: Turn = {"role": "user", "content": text, "edit": editing, "new": True}  # "new": not yet kept
    if isinstance(value, dict):
        turn["images"] = files
    conversation = [*settled(conversation), turn]
    return empty_box(value), conversation, render.to_chatbot(conversation), False


def with_format(options: GenerationOptions, choice: str, spec: str) -> GenerationOptions:
    """The options with the Response format control's choice (Text: none); InvalidOptionsError says
    what is wrong with a schema or pattern."""
    try:
        fmt = from_choice(choice or "Text", valid_text(spec or ""))
    except ValueError as exc:
        problems = "; ".join(str(e.get("msg", "")) for e in getattr(exc, "errors", lambda: [])()) or str(exc)
        raise InvalidOptionsError(f"Response format: {problems.removeprefix('Value error, ')}") from None
    return options if fmt is None else options.model_copy(update={"response_format": fmt})


def settled(conversation: list[Turn]) -> list[Turn]:
    """Mark an answer that never got its finish (the page was left mid-stream) as cancelled."""
    return [
        {**t, "finish": "cancelled"} if t["role"] == "assistant" and t.get("finish") is None else t
        for t in conversation
    ]


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
class AnswerView:
    """The answer being streamed, drawn from the pipeline's events, and the outputs it updates."""

    conversation: list[Turn]
    conversation_id: str | None
    unsaved: str = ""  # why the question was not saved (a full history)
    turn: Turn | None = None
    meter: str = ""
    notice: str = ""
    records: list[ExpertRecord] = field(default_factory=list)
    tokens: list[TokenRecord] = field(default_factory=list)  # the token view's, when asked for
    finished: bool = False
    refused: bool = False  # ended with an error before it started: nothing was kept
    prompt_tokens: int | None = None
    window: int = 0
    penalty: float | None = None  # the repetition penalty the answer was sent with
    branch: tuple[int, int] | None = None  # a branch's (token it was forced at, its number in the turn)
    before: list[Turn] | None = None  # a branch's conversation as it was: back if the branch is refused
    views: dict[str, Any] = field(default_factory=dict)  # what the views beside the chat drew of it so far

    def take(self, event: Event) -> None:
        if isinstance(event, Text) and self.turn is not None:
            self.turn["content"] += event.text
        elif isinstance(event, Experts):
            self.records.append(event.record)
        elif isinstance(event, Tokens):
            self.tokens.append(event.record)
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
            "id": started.message_id,
        }
        if self.branch is not None:
            self.turn["branch_at"], self.turn["branch_no"] = self.branch
        self.conversation = [*self.conversation, self.turn]
        notice = " ".join(part for part in (self.unsaved, started.notice) if part)
        self.notice = render.safe_markdown(f"ℹ {notice}") if notice else ""
        self.prompt_tokens, self.window = started.prompt_tokens, spec.context_window
        self.penalty = started.options.repetition_penalty
        self.meter = render.context_meter(started.prompt_tokens, spec.context_window)

    def finish(self, finished: Finished) -> None:
        self.finished = True
        self.refused = bool(finished.error) and self.turn is None
        if self.refused and self.before is not None:
            self.conversation = self.before
        if finished.error:
            warn(finished.error, logged=True)
            self.notice = render.safe_markdown(f"⚠ {finished.error}")
        elif self.notice.startswith("⏳"):
            self.notice = ""
        if self.turn is None:
            return
        hint = "" if finished.error else repetition_hint(self.turn["content"], self.penalty)
        if hint:
            self.notice = " ".join(p for p in (self.notice, render.safe_markdown(f"ℹ {hint}")) if p)
        self.turn["metrics"] = finished.metrics.to_dict()
        self.turn["finish"] = str(finished.reason)
        if self.records:
            self.turn["experts"] = pack(self.records)
        if self.tokens:
            self.turn["tokens"] = [record.to_dict() for record in self.tokens]
        if self.prompt_tokens is not None:
            self.meter = render.context_meter(
                self.prompt_tokens + finished.metrics.completion_tokens, self.window
            )

    def withdraw(self, question: Turn) -> Turn | None:
        """A refused new question is taken off the conversation (as it was before the attempt) and
        returned, to go back in its box; one asked again (Regenerate) is in the history: it stays."""
        if not question.get("new"):
            return None
        self.conversation = [turn for turn in self.conversation if turn is not question]
        return question

    def outputs(self, *, streaming: bool = False, notice: str | None = None) -> tuple[Any, ...]:
        if notice is not None:
            self.notice = notice
        chat = render.to_chatbot(self.conversation, streaming=streaming)
        return self.conversation, self.conversation_id, chat, self.meter, self.notice
