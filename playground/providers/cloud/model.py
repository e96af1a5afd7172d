"""What every cloud model shares: the key, the bounded 429 retry, usage, interrupted streams, every stop
sequence (an OpenAI-compatible endpoint takes 4), and text made valid Unicode.

An adapter only opens a stream and turns its chunks into Deltas; this module does the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Self

from ...errors import PlaygroundError, ProviderError, RateLimitError
from ...options import GenerationOptions
from ...text import valid_text
from ...types import Chunk, Finish, FinishReason, Message, ModelSpec, TokenRecord
from ..base import StopMatcher, timed
from .endpoint import EndpointSpec
from .failures import ErrorContext, cloud_errors, missing_key
from .usage import TokenCounter, rough_tokens

log = logging.getLogger(__name__)

_REASONS = {"length": FinishReason.LENGTH}  # stop, content_filter, tool_calls...: the answer ended


@dataclass(frozen=True)
class Delta:
    """One chunk of a stream, whatever the SDK: some text, maybe the finish reason, maybe usage."""

    text: str = ""
    finish: str | None = None
    usage: tuple[int, int] | None = None
    tokens: tuple[
        TokenRecord, ...
    ] = ()  # the chunk's tokens with their logprobs, where the server gives them


@dataclass(frozen=True)
class RetryPolicy:
    """Retries after a 429, before any token: at most `attempts`, each wait at most `max_wait_s`."""

    attempts: int = 2
    max_wait_s: float = 20.0
    fallback_wait_s: float = 1.0


@dataclass(frozen=True)
class Connection:
    """What a model needs to reach its endpoint. The key lives here and nowhere else."""

    endpoint: EndpointSpec
    key: str | None = field(default=None, repr=False)
    visitor_key: bool = False
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    header_secrets: tuple[str, ...] = field(default=(), repr=False)
    timeout_s: float = 60.0
    retry: RetryPolicy = RetryPolicy()
    models_dir: Path = Path(".")
    available: Callable[[], Sequence[str]] | None = field(default=None, repr=False, compare=False)

    @property
    def needs_key(self) -> bool:
        return self.endpoint.key_required and not self.endpoint.keyless and not self.key

    @property
    def connect_timeout_s(self) -> float:
        return min(self.timeout_s, 10.0)


class CloudModel:
    """A model behind an HTTP endpoint; subclasses implement `_open`."""

    def __init__(self, spec: ModelSpec, connection: Connection, counter: TokenCounter | None = None) -> None:
        self.spec = spec
        self.connection = connection
        self._counter = counter or TokenCounter(None)

    @property
    def model_id(self) -> str:
        return str(self.spec.extra.get("model", self.spec.source))

    def with_api_key(self, key: str) -> Self:
        """The same model using a visitor's own key, for their requests only (never cached)."""
        connection = replace(self.connection, key=key.strip() or None, visitor_key=bool(key.strip()))
        return type(self)(self.spec, connection, self._counter)

    def render_prompt(self, messages: Sequence[Message]) -> str | None:
        return None  # the server applies the chat template

    def count_tokens(self, text: str) -> int | None:
        return self._counter.count(text)

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Iterator[Chunk]:
        return timed(self._events(messages, options))

    def close(self) -> None:
        """Nothing held between requests but an HTTP pool, which subclasses close."""

    def context(self) -> ErrorContext:
        return error_context(self.connection, self.model_id)

    def _open(
        self, messages: Sequence[Message], options: GenerationOptions, include_usage: bool
    ) -> tuple[Iterator[Delta], Callable[[], None]]:
        """Send the request; return the stream of deltas and how to close it."""
        raise NotImplementedError

    def _events(
        self, messages: Sequence[Message], options: GenerationOptions
    ) -> Iterator[str | TokenRecord | Finish]:
        ctx = self.context()
        if self.connection.needs_key:
            raise missing_key(ctx)
        deltas, close = self._open_with_retry(messages, options, ctx)
        # The endpoint gets the first MAX_STOPS stop sequences; all of them are applied here.
        stopper = StopMatcher(options.stop)
        parts: list[str] = []
        pieces = records = 0
        reason: str | None = None
        usage: tuple[int, int] | None = None
        cut = ""  # why the stream ended early (a read timeout, a dropped connection), in our words
        try:
            while not stopper.hit:
                try:
                    with cloud_errors(ctx):
                        delta = next(deltas, None)
                except PlaygroundError as exc:
                    if not pieces:
                        raise
                    log.warning("%s: stream of %s interrupted: %s", ctx.provider, ctx.model, exc)
                    reason, cut = None, str(exc)
                    break
                if delta is None:
                    break
                usage = delta.usage or usage
                reason = delta.finish or reason
                for record in delta.tokens:  # numbered across the answer
                    yield replace(record, index=records)
                    records += 1
                if delta.text:
                    pieces += 1
                    shown = stopper.push(valid_text(delta.text))
                    if shown:
                        parts.append(shown)
                        yield shown
            if stopper.hit:
                reason, usage = "stop", None  # we cut the answer: the server's counts are not for this text
            elif rest := stopper.flush():
                parts.append(rest)
                yield rest
        finally:
            close()
        yield replace(self._finish(messages, "".join(parts), pieces, reason, usage), note=cut)

    def _open_with_retry(
        self, messages: Sequence[Message], options: GenerationOptions, ctx: ErrorContext
    ) -> tuple[Iterator[Delta], Callable[[], None]]:
        policy = self.connection.retry
        include_usage = self.connection.endpoint.usage_in_stream
        attempt = 0
        while True:
            try:
                with cloud_errors(ctx):
                    log.debug(
                        "%s: POST chat (model=%s, stream, usage=%s)", ctx.provider, ctx.model, include_usage
                    )
                    return self._open(messages, options, include_usage)
            except RateLimitError as exc:
                wait = exc.retry_after if exc.retry_after is not None else policy.fallback_wait_s * 2**attempt
                if attempt >= policy.attempts or wait > policy.max_wait_s:
                    raise
                attempt += 1
                log.info("%s: 429 for %s, retry %d in %.1f s", ctx.provider, ctx.model, attempt, wait)
                time.sleep(wait)
            except ProviderError as exc:
                if include_usage and exc.status in (400, 422) and "stream_options" in str(exc):
                    include_usage = False  # an older server: ask again without, and count ourselves
                    continue
                raise

    def _finish(
        self,
        messages: Sequence[Message],
        text: str,
        pieces: int,
        reason: str | None,
        usage: tuple[int, int] | None,
    ) -> Finish:
        finish = _REASONS.get(reason.lower(), FinishReason.STOP) if reason else FinishReason.INTERRUPTED
        if usage is not None:
            return Finish(usage[0], usage[1], finish)
        prompt = self._counter.count_messages(messages)
        if prompt is None:
            prompt = sum(rough_tokens(m.content) for m in messages)
        completion = self._counter.count(text)
        return Finish(prompt, pieces if completion is None else completion, finish, estimated=True)


def error_context(
    connection: Connection, model: str, *, timeout_env: str = "PLAYGROUND_TIMEOUT_S"
) -> ErrorContext:
    """Who is failing, for the choke point's messages; the key only as something to redact."""
    endpoint = connection.endpoint
    return ErrorContext(
        provider=endpoint.name,
        label=endpoint.title,
        url=endpoint.public_url,
        model=model,
        key_env=endpoint.api_key_env,
        visitor_key=connection.visitor_key,
        url_env=endpoint.base_url_env,
        timeout_s=connection.timeout_s,
        connect_timeout_s=connection.connect_timeout_s,
        timeout_env=timeout_env,
        retired=endpoint.retired,
        unreachable_hint="is `ollama serve` running?"
        if endpoint.kind == "ollama"
        else "is the server running?",
        secrets=tuple(s for s in (connection.key, *connection.header_secrets, *endpoint.url_secrets) if s),
        available=connection.available,
    )


def reason_text(value: object) -> str | None:
    """A finish reason from either SDK (a str, or an enum whose value is one) as plain text."""
    if value is None:
        return None
    return str(getattr(value, "value", value))
