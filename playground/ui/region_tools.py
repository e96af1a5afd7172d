"""What every chat region offers around its answers (a base of ChatRegion): the token view of the last
answer, the Response format control's examples, a visitor's own key, the code that repeats a request,
the prompt as the engine receives it, and the model's card. Kept apart from chat_region.py's streaming
so that each stays small."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gradio as gr

from ..answers import Request
from ..codegen import code_for
from ..context import AppContext
from ..errors import PlaygroundError
from ..prompt_view import EMPTY as PROMPT_EMPTY
from ..prompt_view import prompt_view
from ..structured import ResponseFormat, label_of
from ..text import valid_text
from ..token_view import BRANCH_HINT, SHELL, token_note, token_span
from ..types import ModelSpec, TokenRecord
from . import branches, render, widgets
from .chat_parts import AnswerView, Box, with_format, with_pending
from .delta import append, redraw
from .render import Turn

if TYPE_CHECKING:
    from .chat_region import RegionConfig


def _branchable(spec: ModelSpec | None) -> bool:
    """Whether the view offers its alternatives as branches (the model continues an answer from given
    tokens); a click before the answer has ended is answered with a message."""
    return spec is not None and spec.continues_answer


def _note(spec: ModelSpec | None, has_records: bool) -> str:
    note = token_note(spec, has_records)
    return f"{note} {BRANCH_HINT}" if has_records and _branchable(spec) else note


def tokens_since(
    records: Sequence[TokenRecord], sent: int | None, note: str | None = None, *, branchable: bool = False
) -> Any:
    """A token view by delta (delta.py): whole when nothing was sent yet (`sent` None), then only the
    records after the `sent` first, with the note when one is given; nothing when nothing is new.
    `branchable`: each token's alternatives are buttons that branch the answer there."""
    parts = None if note is None else {"note": note}
    start = sent or 0
    rows = [token_span(r, start + n if branchable else None) for n, r in enumerate(records[start:])]
    if sent is None:
        return redraw(SHELL, rows, parts)
    if len(records) == sent and note is None:
        return gr.update()
    return append(sent, rows, parts)


class RegionTools:
    """Handlers on a region's answers that do not stream; `ctx`, `config` and `examples` are the
    region's."""

    ctx: AppContext
    config: RegionConfig
    examples: dict[str, ResponseFormat]

    def token_view(self, conversation: list[Turn]) -> str:
        """The last answer as its tokens, each with its probability and alternatives (token_view.py),
        drawn whole (a conversation opened or begun): a delta.py payload."""
        answer = next((t for t in reversed(conversation) if t["role"] == "assistant"), None)
        if answer is None:
            return redraw(SHELL)
        tokens = answer.get("tokens") or []
        spec = self._spec_of(answer)
        rows = [token_span(t, n if _branchable(spec) else None) for n, t in enumerate(tokens)]
        return redraw(SHELL, rows, {"note": _note(spec, bool(tokens))})

    def token_delta(self, live: AnswerView, *, ended: bool) -> Any:
        """The answer streaming now, by delta: only its tokens since the last update (the first update
        starts the view again), and the note once it ends; nothing when nothing is new."""
        records, sent = live.tokens, live.views.get("tokens")
        live.views["tokens"] = len(records)
        spec = self._spec_of(live.turn or {})
        note = _note(spec, bool(records)) if ended else None
        return tokens_since(records, sent, note, branchable=_branchable(spec))

    def _spec_of(self, answer: Turn) -> ModelSpec | None:
        try:
            return self.ctx.registry.resolve(str(answer.get("model") or ""))
        except PlaygroundError:
            return None

    def pick_format(self, title: str | None) -> tuple[Any, Any]:
        """An example of prompts/formats.toml into the Response format control."""
        fmt = self.examples.get(title or "")
        if fmt is None:
            return gr.update(), gr.update()
        return label_of(fmt), fmt.schema_text or fmt.pattern

    def toggle_tokens(self, on: bool) -> Any:
        """Show or hide the token view (it is filled by the next answer asked with it on)."""
        return gr.update(visible=bool(on))

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
        self,
        conversation: list[Turn],
        pending: Box,
        model_id: str,
        system_prompt: str,
        format_kind: str,
        format_spec: str,
        *values: Any,
    ) -> gr.Code:
        """A runnable script, in the provider's own SDK, that sends the request of the answer on screen
        (or of the question typed in the box) with these settings and response format; for a branch on
        screen, its given tokens after the prompt's, as the branch was made."""
        turns = with_pending(conversation, pending)
        try:
            options = with_format(widgets.options_from(*values), format_kind, format_spec)
            if turns and (prefix := branches.given(turns[-1])):
                options = options.model_copy(update={"answer_prefix": prefix, "response_format": None})
            request = Request(model_id, render.to_messages(turns, system_prompt), options)
            language, code = code_for(self.ctx.registry, request)
        except PlaygroundError as exc:
            return gr.Code(f"# {exc}", language="python")
        return gr.Code(code, language=language)  # type: ignore[arg-type]

    def forget_code(self) -> str:
        """Empty the Get code box (another model, a new conversation): it never shows a stale script."""
        return ""

    # The prompt view and the model card

    def show_prompt(
        self, conversation: list[Turn], pending: Box, model_id: str, system_prompt: str, *values: Any
    ) -> str:
        """The text the engine receives for the answer on screen (or the question in the box), after the
        chat template, counted as the context meter counts it (prompt_view.py)."""
        turns = with_pending(conversation, pending)
        answer = turns[-1] if turns and turns[-1]["role"] == "assistant" else None
        answer_tokens = ((answer or {}).get("metrics") or {}).get("completion_tokens")
        try:
            view = prompt_view(
                self.ctx.chat,
                model_id,
                render.to_messages(turns, valid_text(system_prompt or "")),
                widgets.options_from(*values),
                answer_tokens if isinstance(answer_tokens, int) else None,
            )
        except PlaygroundError as exc:
            return f"⚠ {exc}"
        return PROMPT_EMPTY if view is None else view.render()

    def open_prompt(self, *inputs: Any) -> tuple[gr.Accordion, bool, str]:
        """Show prompt: the view opened and filled."""
        return gr.Accordion(open=True), True, self.show_prompt(*inputs)

    def expand_prompt(self, *inputs: Any) -> tuple[bool, str]:
        """The view opened by its header: filled at once."""
        return True, self.show_prompt(*inputs)

    def collapse_prompt(self) -> bool:
        return False

    def refresh_prompt(self, shown: bool, *inputs: Any) -> Any:
        """The prompt view again (a new conversation, another model, a new answer) while it is open;
        emptied while closed, so that it never shows a stale prompt (opening it fills it)."""
        return self.show_prompt(*inputs) if shown else ""

    def describe_model(self, model_id: str) -> tuple[Any, ...]:
        """The card, the meter, the parameters set to the model's recommended sampling (and, where images
        are taken, whether the model reads num_crops)."""
        crops: tuple[Any, ...] = ()
        try:
            spec = self.ctx.registry.resolve(model_id)
        except PlaygroundError as exc:
            crops = (gr.Slider(visible=False),) if self.config.images else ()
            return (
                render.safe_markdown(f"⚠ {exc}"),
                "",
                *(gr.update() for _ in widgets.SAMPLING_FIELDS),
                "",
                *crops,
            )
        values = widgets.recommended(spec)
        if self.config.images:
            crops = (gr.Slider(visible=spec.takes_num_crops),)
        return (
            render.safe_markdown(widgets.model_card(spec, self.ctx.registry)),
            render.context_meter(None, spec.context_window),
            *(getattr(values, name) for name in widgets.SAMPLING_FIELDS),
            widgets.sampling_note(spec),
            *crops,
        )

    def preset(self, name: str | None) -> str:
        return self.ctx.prompts.system.get(name or "", "")
