"""Every OpenAI-compatible endpoint through the openai SDK: NVIDIA, Azure OpenAI v1, Ollama, vLLM, ..."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ...options import GenerationOptions
from ...types import Message, ModelSpec, TokenChoice, TokenRecord
from .endpoint import VisionFormat
from .model import CloudModel, Connection, Delta, reason_text
from .usage import TokenCounter
from .wire import ImageURL, split_params, wire_messages, wire_params

if TYPE_CHECKING:
    from openai import OpenAI
    from openai.types.chat import ChatCompletionChunk

KEYLESS = "none"  # the SDK insists on a key; keyless servers ignore it


def chat_request(
    model: str,
    messages: Sequence[Message],
    options: GenerationOptions,
    *,
    vision: VisionFormat,
    extras: bool,
    include_usage: bool,
    image_url: ImageURL | None = None,
) -> dict[str, Any]:
    """The keyword arguments of chat.completions.create: what the adapter sends and Get code writes."""
    standard, extra_body = split_params(wire_params(options, extras=extras))
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": wire_messages(messages, vision, image_url=image_url),
        "stream": True,
        **standard,
    }
    if include_usage:
        kwargs["stream_options"] = {"include_usage": True}
    wanted = options.response_format.openai() if options.response_format is not None else None
    if wanted is not None:  # structured output (a regex has no OpenAI form: the answer is only checked)
        kwargs["response_format"] = wanted
    if options.logprobs:  # the token view: each token's logprob and its best alternatives
        kwargs["logprobs"], kwargs["top_logprobs"] = True, options.logprobs
    if extra_body:
        kwargs["extra_body"] = extra_body
    return kwargs


def openai_client(connection: Connection, *, timeout_s: float | None = None) -> OpenAI:
    """An openai client for this endpoint: our own timeouts, no SDK retries (ours are bounded and visible)."""
    import httpx2
    from openai import OpenAI

    timeout = timeout_s or connection.timeout_s
    headers = dict(connection.headers)
    key = connection.key or KEYLESS
    if connection.endpoint.key_header and connection.key:
        headers[connection.endpoint.key_header] = connection.key
    return OpenAI(
        api_key=key,
        base_url=connection.endpoint.base_url,
        default_headers=headers,
        timeout=httpx2.Timeout(timeout, connect=min(timeout, connection.connect_timeout_s)),
        max_retries=0,
    )


class OpenAICompatModel(CloudModel):
    """One model on an OpenAI-compatible endpoint, streamed with the openai SDK."""

    def __init__(self, spec: ModelSpec, connection: Connection, counter: TokenCounter | None = None) -> None:
        super().__init__(spec, connection, counter)
        self._client: OpenAI | None = None
        self._lock = threading.Lock()

    def client(self) -> OpenAI:
        with self._lock:
            if self._client is None:
                self._client = openai_client(self.connection)
            return self._client

    def request(
        self, messages: Sequence[Message], options: GenerationOptions, include_usage: bool
    ) -> dict[str, Any]:
        """The keyword arguments of chat.completions.create for this request."""
        endpoint = self.connection.endpoint
        return chat_request(
            self.model_id,
            messages,
            options,
            vision=endpoint.vision_format_for(self.model_id),
            extras=endpoint.sampling_extras,
            include_usage=include_usage,
        )

    def _open(
        self, messages: Sequence[Message], options: GenerationOptions, include_usage: bool
    ) -> tuple[Iterator[Delta], Callable[[], None]]:
        stream = self.client().chat.completions.create(**self.request(messages, options, include_usage))
        return _deltas(stream), stream.close

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _deltas(stream: Iterator[ChatCompletionChunk]) -> Iterator[Delta]:
    for chunk in stream:
        usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens) if chunk.usage else None
        if not chunk.choices:
            if usage:
                yield Delta(usage=usage)
            continue
        choice = chunk.choices[0]
        text = choice.delta.content if choice.delta and choice.delta.content else ""
        tokens = _token_records(choice.logprobs.content if choice.logprobs else None)
        yield Delta(text=text, finish=reason_text(choice.finish_reason), usage=usage, tokens=tokens)


def _token_records(content: Sequence[Any] | None) -> tuple[TokenRecord, ...]:
    """OpenAI's per-token logprobs as our records (numbered by the model; a server gives no ids)."""
    return tuple(
        TokenRecord(
            0,
            str(item.token),
            None,
            float(item.logprob),
            tuple(TokenChoice(str(t.token), None, float(t.logprob)) for t in item.top_logprobs or ()),
        )
        for item in content or ()
    )
