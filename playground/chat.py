"""Preparing a request: resolve the model, apply its sampling defaults, check images, fit the
conversation into its window. The answer pipeline (answers.py) calls it; it knows nothing about Gradio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .catalog import sampling_for
from .errors import ModelUnavailableError, PromptTooLongError
from .images import IMAGE_TOKENS_ESTIMATE, prepare_messages, require_vision
from .options import GenerationOptions
from .providers.base import ChatModel, CountsPrompt, TakesKey
from .registry import Registry
from .types import Message, ModelSpec


def count_prompt(model: ChatModel, messages: Sequence[Message]) -> int | None:
    """The prompt's tokens, images included: the engine's own count where it has one (its processor
    expands each image), else the text's tokens plus IMAGE_TOKENS_ESTIMATE per image (an estimate)."""
    if isinstance(model, CountsPrompt):
        value = model.count_prompt(messages)
        return None if value is None else int(value)
    prompt = model.render_prompt(messages)
    if prompt is None:
        return None
    text = model.count_tokens(prompt)
    return None if text is None else text + IMAGE_TOKENS_ESTIMATE * sum(len(m.images) for m in messages)


@dataclass(frozen=True)
class Prepared:
    """A request ready to stream: the model, what it will see, and what was trimmed to fit."""

    model: ChatModel
    messages: tuple[Message, ...]
    options: GenerationOptions
    prompt_tokens: int | None
    dropped: int = 0
    notice: str = ""

    @property
    def spec(self) -> ModelSpec:
        return self.model.spec


@dataclass(frozen=True)
class Fitted:
    messages: tuple[Message, ...]
    prompt_tokens: int | None
    max_new_tokens: int
    dropped: int


def fit_to_window(
    messages: Sequence[Message],
    count: Callable[[Sequence[Message]], int | None],
    context_window: int,
    max_new_tokens: int,
) -> Fitted:
    """Drop the oldest turns (never the system prompt or the last question) until the prompt fits.

    The answer is guaranteed max_new_tokens, or a quarter of the window if that is less; it gets what
    is left beyond that. PromptTooLongError when even the system prompt and the last question do not fit.
    """
    system = [m for m in messages[:1] if m.role == "system"]
    turns = list(messages[len(system) :])
    reserve = min(max_new_tokens, max(context_window // 4, 1))
    dropped = 0
    while True:
        candidate = (*system, *turns)
        used = count(candidate)
        if used is None:
            return Fitted(candidate, None, max_new_tokens, dropped)
        if used + reserve <= context_window:
            return Fitted(candidate, used, min(max_new_tokens, context_window - used), dropped)
        if len(turns) > 1:
            turns.pop(0)
            dropped += 1
            continue
        if used < context_window:
            return Fitted(candidate, used, context_window - used, dropped)
        raise PromptTooLongError(
            f"The prompt is {used} tokens but the model's window is {context_window}: "
            "shorten the message or the system prompt, or pick a model with a longer context."
        )


def check_prompt_chars(messages: Sequence[Message], limit: int | None) -> None:
    """PLAYGROUND_PROMPT_CHARS: the last question and the system prompt together, in characters."""
    if limit is None or not messages:
        return
    question = next((m for m in reversed(messages) if m.role == "user"), None)
    system = messages[0] if messages[0].role == "system" else None
    used = sum(len(m.content) for m in (question, system) if m is not None)
    if used > limit:
        raise PromptTooLongError(
            f"The question is {used} characters (with the system prompt) and this playground takes at "
            f"most {limit}: shorten it."
        )


class ChatService:
    """Resolves models and prepares requests through the registry.

    Limits (None: off): `prompt_chars` for one question (system prompt included); `image_max_bytes`
    for one image; `max_new_tokens` for one answer (PLAYGROUND_MAX_NEW_TOKENS).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        image_max_bytes: int | None = None,
        prompt_chars: int | None = None,
        max_new_tokens: int | None = None,
    ) -> None:
        self.registry = registry
        self.image_max_bytes = image_max_bytes  # PLAYGROUND_IMAGE_MB: one image a visitor sends
        self.prompt_chars = prompt_chars
        self.max_new_tokens = max_new_tokens

    def resolve(self, model_ref: str, provider: str | None = None, *, has_key: bool = False) -> ModelSpec:
        """The model's spec; refused (ModelUnavailableError, with the reason) when it is not ready, unless
        the caller brings the key that would make it ready."""
        spec = self.registry.resolve(model_ref, provider)
        state = self.registry.availability(spec)
        if not state.available and not (has_key and state.needs_key):
            raise ModelUnavailableError(f"{spec.name} on {spec.engine_label} is not ready: {state.reason}.")
        return spec

    def check(self, spec: ModelSpec, messages: Sequence[Message]) -> None:
        """What is refused before anything loads: a question over the length limit, images for a
        text-only model."""
        check_prompt_chars(messages, self.prompt_chars)
        require_vision(spec, messages)

    def prepare(
        self,
        model: ChatModel,
        messages: Sequence[Message],
        options: GenerationOptions,
        api_key: str | None = None,
    ) -> Prepared:
        """Fit a request to a loaded model. `api_key` is a visitor's own key for this request only."""
        self.check(model.spec, messages)
        sampling = sampling_for(model.spec)
        if sampling is not None:  # the model's recommended values, where the caller set none
            options = sampling.apply(options)
        if api_key and isinstance(model, TakesKey):
            model = model.with_api_key(api_key)
        messages = prepare_messages(model.spec, messages, max_bytes=self.image_max_bytes)  # before sending
        notices: list[str] = []
        if self.max_new_tokens is not None and options.max_new_tokens > self.max_new_tokens:
            notices.append(
                f"Answers here are at most {self.max_new_tokens} new tokens (this deployment's limit)."
            )
            options = options.model_copy(update={"max_new_tokens": self.max_new_tokens})
        fitted = fit_to_window(
            messages, lambda m: count_prompt(model, m), model.spec.context_window, options.max_new_tokens
        )
        notices += _fit_notices(model, fitted, options)
        if fitted.max_new_tokens < options.max_new_tokens:
            options = options.model_copy(update={"max_new_tokens": fitted.max_new_tokens})
        return Prepared(
            model, fitted.messages, options, fitted.prompt_tokens, fitted.dropped, " ".join(notices)
        )

    def loading_notice(self, spec: ModelSpec) -> str | None:
        """ "Loading X on Y…" when asking this model now starts its engine (a local model not loaded yet)."""
        if not spec.local or self.registry.is_loaded(spec.id):
            return None
        return f"Loading {spec.name} on {spec.engine_label}… (first use: its engine starts in a process of its own)"

    def preview(
        self,
        model_ref: str,
        messages: Sequence[Message],
        options: GenerationOptions,
        provider: str | None = None,
    ) -> Prepared:
        """The request as it would be sent now (nothing is generated): what was fitted, the options as
        sent, the prompt's tokens."""
        spec = self.resolve(model_ref, provider)
        self.check(spec, messages)
        with self.registry.lease(spec) as lease:
            return self.prepare(lease.model, messages, options)

    def render_prompt(self, model_ref: str, messages: Sequence[Message]) -> tuple[str, int | None]:
        """The text the engine receives after the chat template, and its length in tokens."""
        with self.registry.lease(self.resolve(model_ref)) as lease:
            model = lease.model
            messages = prepare_messages(model.spec, messages, max_bytes=self.image_max_bytes)
            prompt = model.render_prompt(messages)
            if prompt is None:
                import json

                return json.dumps([m.to_record() for m in messages], indent=2, ensure_ascii=False), None
            return prompt, count_prompt(model, messages)


def _fit_notices(model: ChatModel, fitted: Fitted, options: GenerationOptions) -> list[str]:
    """What fitting the request to the window changed, in words."""
    spec, notices = model.spec, []
    if fitted.dropped:
        notices.append(
            f"The conversation is longer than {spec.name}'s {spec.context_window}-token window: the "
            f"{fitted.dropped} oldest message(s) were left out of this request."
        )
    if fitted.max_new_tokens < options.max_new_tokens:
        notices.append(f"Only {fitted.max_new_tokens} tokens are left in the window for the answer.")
    images = sum(len(m.images) for m in fitted.messages)
    if images and fitted.prompt_tokens is not None and not isinstance(model, CountsPrompt):
        notices.append(
            f"The prompt's {images} image(s) are counted as about {IMAGE_TOKENS_ESTIMATE} tokens each "
            f"(an estimate: {spec.engine_label} does not say how many it makes of an image)."
        )
    return notices
