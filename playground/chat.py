"""The chat service: resolves a model, fits the conversation into its window, streams the answer.

It knows nothing about Gradio; the UI, the CLI and the benchmarks all call it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass

from .catalog import sampling_for
from .errors import ModelUnavailableError, PlaygroundError, PromptTooLongError, ProviderError, StoppedError
from .images import IMAGE_TOKENS_ESTIMATE, prepare_messages, require_vision
from .options import GenerationOptions
from .providers.base import ChatModel
from .public.concurrency import ProviderSlots, Ticket
from .registry import LOCAL_ENGINES, Registry
from .types import Chunk, Message, ModelSpec


def count_prompt(model: ChatModel, messages: Sequence[Message]) -> int | None:
    """The prompt's tokens, images included: the engine's own count where it has one (its processor
    expands each image), else the text's tokens plus IMAGE_TOKENS_ESTIMATE per image (an estimate)."""
    exact = getattr(model, "count_prompt", None)
    if exact is not None:
        value = exact(messages)
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


def engine_errors(spec: ModelSpec, stream: Iterator[Chunk]) -> Iterator[Chunk]:
    """The one point where an engine's own exception (a ValueError, a MemoryError...) becomes ours,
    so the page shows its message and the history records the answer as `error`, not `cancelled`."""
    try:
        yield from stream
    except PlaygroundError:
        raise
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        raise ProviderError(
            f"{spec.engine_label} failed on {spec.name}: {type(exc).__name__}: {detail}",
            provider=spec.provider,
        ) from exc


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


class _Slotted:
    """The stream, started once the ticket's provider has a free slot, which it holds until the stream
    ends or is closed (closed before it started too: the ticket leaves the line)."""

    def __init__(
        self, ticket: Ticket, start: Callable[[], Iterator[Chunk]], stop: threading.Event | None = None
    ) -> None:
        self._ticket = ticket
        self._start = start
        self._stop = stop
        self._run: Generator[Chunk, None, None] = self._chunks()

    def _chunks(self) -> Generator[Chunk, None, None]:
        try:
            while not self._ticket.wait(0.25):
                if self._ticket.released or (self._stop is not None and self._stop.is_set()):
                    return  # closed, or stopped, while waiting in line
            stream = self._start()
            try:
                yield from stream
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        finally:
            self._ticket.release()

    def __iter__(self) -> Iterator[Chunk]:
        return self

    def __next__(self) -> Chunk:
        return next(self._run)

    def close(self) -> None:
        self._run.close()
        self._ticket.release()


class ChatService:
    """Streams answers through the registry.

    Limits (None: off): `prompt_chars` for one question (system prompt included); `image_max_bytes`
    for one image; `provider_concurrency`, answers at once per provider (`{"*": n}` for every one),
    handed out in arrival order.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        image_max_bytes: int | None = None,
        prompt_chars: int | None = None,
        max_new_tokens: int | None = None,
        provider_concurrency: Mapping[str, int] | None = None,
    ) -> None:
        self.registry = registry
        self.image_max_bytes = image_max_bytes  # PLAYGROUND_IMAGE_MB: one image a visitor sends
        self.prompt_chars = prompt_chars
        self.max_new_tokens = max_new_tokens  # PLAYGROUND_MAX_NEW_TOKENS: the longest answer
        self.slots = ProviderSlots(provider_concurrency or {})

    def resolve(self, model_ref: str, provider: str | None = None, *, has_key: bool = False) -> ModelSpec:
        spec = self.registry.resolve(model_ref, provider)
        state = self.registry.availability(spec)
        if not state.available and not (has_key and state.needs_key):
            raise ModelUnavailableError(f"{spec.name} on {spec.engine_label} is not ready: {state.reason}.")
        return spec

    def prepare(
        self,
        model_ref: str,
        messages: Sequence[Message],
        options: GenerationOptions,
        provider: str | None = None,
        api_key: str | None = None,
    ) -> Prepared:
        """Resolve, load and fit. `api_key` is a visitor's own key for this request only (cloud models)."""
        check_prompt_chars(messages, self.prompt_chars)  # before anything loads
        spec = self.resolve(model_ref, provider, has_key=bool(api_key))
        require_vision(spec, messages)  # a text-only model refuses images before anything loads
        with self.registry.lease(spec) as lease:  # loaded, and held while the request is fitted to it
            return self._fit(lease.model, messages, options, api_key)

    def _fit(
        self, model: ChatModel, messages: Sequence[Message], options: GenerationOptions, api_key: str | None
    ) -> Prepared:
        """`prepare` on the leased model: its sampling values, the visitor's key, the window's fit."""
        sampling = sampling_for(model.spec)
        if sampling is not None:  # the model's recommended values, where the caller set none
            options = sampling.apply(options)
        with_key = getattr(model, "with_api_key", None)
        if api_key and with_key is not None:
            model = with_key(api_key)

        # images checked before anything is sent
        messages = prepare_messages(model.spec, messages, max_bytes=self.image_max_bytes)

        def count(candidate: Sequence[Message]) -> int | None:
            return count_prompt(model, candidate)

        notice = ""
        if self.max_new_tokens is not None and options.max_new_tokens > self.max_new_tokens:
            notice = f"Answers here are at most {self.max_new_tokens} new tokens (this deployment's limit)."
            options = options.model_copy(update={"max_new_tokens": self.max_new_tokens})
        fitted = fit_to_window(messages, count, model.spec.context_window, options.max_new_tokens)
        if fitted.dropped:
            notice += (" " if notice else "") + (
                f"The conversation is longer than {model.spec.name}'s {model.spec.context_window}-token "
                f"window: the {fitted.dropped} oldest message(s) were left out of this request."
            )
        if fitted.max_new_tokens < options.max_new_tokens:
            notice += (" " if notice else "") + (
                f"Only {fitted.max_new_tokens} tokens are left in the window for the answer."
            )
            options = options.model_copy(update={"max_new_tokens": fitted.max_new_tokens})
        if fitted.prompt_tokens is not None and not hasattr(model, "count_prompt"):
            images = sum(len(m.images) for m in fitted.messages)
            if images:
                notice += (" " if notice else "") + (
                    f"The prompt's {images} image(s) are counted as about {IMAGE_TOKENS_ESTIMATE} tokens each "
                    f"(an estimate: {model.spec.engine_label} does not say how many it makes of an image)."
                )
        return Prepared(model, fitted.messages, options, fitted.prompt_tokens, fitted.dropped, notice)

    def loading_notice(self, model_ref: str, provider: str | None = None) -> str | None:
        """ "Loading X on Y…" when asking this model now starts its engine (a local model not loaded yet)."""
        try:
            spec = self.registry.resolve(model_ref, provider)
        except PlaygroundError:
            return None  # prepare() will say what is wrong
        if spec.provider not in LOCAL_ENGINES or self.registry.is_loaded(spec.id):
            return None
        return f"Loading {spec.name} on {spec.engine_label}… (first use: its engine starts in a process of its own)"

    def reserve(self, spec: ModelSpec, owner: str | None = None) -> Ticket | None:
        """A place in the provider's line (None: its answers are not limited) for `owner` (a session:
        while others wait, one owner holds at most one slot). The page takes one before streaming, to
        say "waiting for a free slot" while it waits; pass it to `stream`."""
        return self.slots.ticket(spec.provider, owner)

    def stream(
        self,
        prepared: Prepared,
        ticket: Ticket | None = None,
        *,
        stop: threading.Event | None = None,
        owner: str | None = None,
    ) -> Iterator[Chunk]:
        """The answer, with the model leased while it streams and every engine error made ours.

        Where the provider's answers are limited, the stream waits for a free slot (`ticket`, or one
        taken now) before it starts, and gives it back when it ends or is closed; setting `stop` while
        it waits ends it with no answer (Stop in a pane whose stream nobody reads until it starts).
        """

        def start() -> Iterator[Chunk]:
            return self._leased(prepared, stop)

        ticket = ticket or self.reserve(prepared.spec, owner)
        return start() if ticket is None else _Slotted(ticket, start, stop)

    def _leased(self, prepared: Prepared, stop: threading.Event | None) -> Iterator[Chunk]:
        """The answer with the model leased (loaded again if it was evicted since `prepare`) until the
        stream ends or is closed; `stop` set while it waits for memory or a worker: no answer."""
        try:
            lease = self.registry.lease(prepared.spec, stop=stop)
        except StoppedError:
            return
        try:
            if prepared.model is lease.model or prepared.spec.provider in LOCAL_ENGINES:
                stream = lease.stream(prepared.messages, prepared.options, stop=stop)
            else:  # a visitor's own key: the remote model's copy made for it (no workers, no memory)
                stream = prepared.model.stream(prepared.messages, prepared.options)
            yield from engine_errors(prepared.spec, stream)
        finally:
            lease.release()

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
