"""The prompt as the engine receives it, for the answer on screen (or the question in the box).

Built from the same request the answer uses: the conversation up to its last question, fitted to the
window and prepared by `ChatService.prepare` (as the answer pipeline does), rendered by the engine's chat
template and counted with the same count the context meter shows (`Prepared.prompt_tokens`; the meter
adds the answer's tokens once it is written). Where the student typed no system prompt but the chat
template puts one in (SmolLM2's "You are a helpful AI assistant named SmolLM…"), the view says it comes
from the template's default. No Gradio here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .chat import ChatService
from .options import GenerationOptions
from .types import Message

EMPTY = "(Type a question first: this shows the text the model receives for it, after its chat template.)"
# How chat templates open a system turn (ChatML, Phi, Llama 3)
SYSTEM_MARKERS = ("<|im_start|>system", "<|system|>", "<|start_header_id|>system")


@dataclass(frozen=True)
class PromptView:
    """The prompt's text, its tokens (None: the engine does not say), the answer's tokens when the view is
    of an answer on screen, and where a system prompt nobody typed comes from."""

    text: str
    tokens: int | None
    answer_tokens: int | None = None
    window: int = 0
    template_system: bool = False
    notice: str = ""

    def render(self) -> str:
        """The text with a footer: the count the context meter shows, and where the system prompt is from."""
        lines = [self.text, ""]
        if self.tokens is not None:
            count = f"--- {self.tokens:,} tokens in this prompt"
            if self.answer_tokens is not None:
                used = self.tokens + self.answer_tokens
                count += (
                    f"; with the answer's {self.answer_tokens:,}: {used:,} / {self.window:,} tokens, "
                    "the context meter's count"
                )
            lines.append(count + " ---")
        if self.template_system:
            lines.append(
                "--- You typed no system prompt: the system turn above is the chat template's default, "
                "which the template adds when a conversation has none. ---"
            )
        if self.notice:
            lines.append(f"--- {self.notice} ---")
        return "\n".join(lines).strip()


def up_to_last_question(messages: Sequence[Message]) -> tuple[list[Message], bool]:
    """The request of the answer on screen: the messages up to its question; True when an answer was cut."""
    kept = list(messages)
    cut = False
    while kept and kept[-1].role == "assistant":
        kept.pop()
        cut = True
    return kept, cut


def prompt_view(
    chat: ChatService,
    model_id: str,
    messages: Sequence[Message],
    options: GenerationOptions,
    answer_tokens: int | None = None,
) -> PromptView | None:
    """The view for these messages (None: no question yet). `answer_tokens`: the tokens of the answer on
    screen (its metrics), counted into the meter's figure when the messages end with it."""
    request, cut = up_to_last_question(messages)
    if not any(m.role == "user" for m in request):
        return None
    spec = chat.resolve(model_id)
    chat.check(spec, request)
    with chat.registry.lease(spec) as lease:
        prepared = chat.prepare(lease.model, request, options)
        text = lease.model.render_prompt(prepared.messages)
    if text is None:  # a remote model: the messages as they are sent
        text = json.dumps([m.to_record() for m in prepared.messages], indent=2, ensure_ascii=False)
    typed_system = any(m.role == "system" for m in prepared.messages)
    return PromptView(
        text=text,
        tokens=prepared.prompt_tokens,
        answer_tokens=answer_tokens if cut else None,
        window=spec.context_window,
        template_system=not typed_system and any(marker in text for marker in SYSTEM_MARKERS),
        notice=prepared.notice,
    )
