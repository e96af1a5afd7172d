"""The one place where a model's exceptions become the playground's own (as openai-python's one
translation point): `translate`.

Every model the registry hands out is `guarded`: each of its methods (stream, render_prompt,
count_tokens, count_prompt, teacher_forced, with_api_key's copy, close) raises only our errors, with the engine's
message. A worker process runs its engine under the same `translate`, so what it sends back is already
one of ours, and the app raises that same class again (protocol.Failed carries its name). The cloud
adapters raise ours already (their transport's statuses, retries and dropped streams are read at the
connection, cloud/failures.py): `translate` passes those through unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Sequence

from ..errors import PlaygroundError, ProviderError
from ..options import GenerationOptions
from ..types import Chunk, Message, ModelSpec
from .base import ChatModel, CountsPrompt, Forced, ScoresText, TakesKey


def translate(exc: BaseException, spec: ModelSpec) -> PlaygroundError:
    """Our error for whatever a model raised: ours as they are; anything else is the engine failing,
    said with its own words (a template error, a ValueError, a MemoryError...)."""
    if isinstance(exc, PlaygroundError):
        return exc
    detail = str(exc) or type(exc).__name__
    return ProviderError(
        f"{spec.engine_label} failed on {spec.name}: {type(exc).__name__}: {detail}", provider=spec.provider
    )


@contextlib.contextmanager
def translating(spec: ModelSpec) -> Iterator[None]:
    try:
        yield
    except PlaygroundError:
        raise
    except Exception as exc:
        raise translate(exc, spec) from exc


def guarded_stream(spec: ModelSpec, stream: Iterator[Chunk]) -> Generator[Chunk, None, None]:
    """The stream, raising only our errors (closing it closes `stream`: the engine's own cleanup)."""
    with translating(spec):
        yield from stream


class Guarded:
    """A model whose every method raises only our errors (see the module's docstring)."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.spec: ModelSpec = model.spec

    def __repr__(self) -> str:
        return f"<Guarded {self.model!r}>"

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Iterator[Chunk]:
        with translating(self.spec):
            yield from self.model.stream(messages, options)

    def render_prompt(self, messages: Sequence[Message]) -> str | None:
        with translating(self.spec):
            return self.model.render_prompt(messages)

    def count_tokens(self, text: str) -> int | None:
        with translating(self.spec):
            return self.model.count_tokens(text)

    def close(self) -> None:
        with translating(self.spec):
            self.model.close()


class _GuardedCounting(Guarded):
    """A guarded model whose engine counts whole prompts (CountsPrompt)."""

    def count_prompt(self, messages: Sequence[Message]) -> int | None:
        assert isinstance(self.model, CountsPrompt)
        with translating(self.spec):
            return self.model.count_prompt(messages)


class _GuardedLocal(_GuardedCounting):
    """A guarded local model: it counts whole prompts and can be fed a text token by token (ScoresText)."""

    def teacher_forced(self, text: str, limit: int) -> Forced:
        assert isinstance(self.model, ScoresText)
        with translating(self.spec):
            return self.model.teacher_forced(text, limit)


class _GuardedKeyed(Guarded):
    """A guarded model that can be asked with a visitor's own key (TakesKey): its copy is guarded too."""

    def with_api_key(self, key: str) -> ChatModel:
        assert isinstance(self.model, TakesKey)
        with translating(self.spec):
            return guarded(self.model.with_api_key(key))


def guarded(model: ChatModel) -> ChatModel:
    """The model behind its guard, keeping the optional behaviours it has (and only those)."""
    if isinstance(model, Guarded):
        return model
    if isinstance(model, CountsPrompt):
        return _GuardedLocal(model) if isinstance(model, ScoresText) else _GuardedCounting(model)
    if isinstance(model, TakesKey):
        return _GuardedKeyed(model)
    return Guarded(model)
