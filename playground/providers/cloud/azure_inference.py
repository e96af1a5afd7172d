"""Azure AI Foundry (`services.ai.azure.com/models`) and serverless endpoints through azure-ai-inference.

The SDK was retired on 2026-08-26; it stays for the deployments the openai SDK's v1 path does not reach.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ...options import GenerationOptions
from ...types import Message, ModelSpec
from .endpoint import VisionFormat
from .model import CloudModel, Connection, Delta, reason_text
from .usage import TokenCounter
from .wire import ImageURL, split_params, wire_messages, wire_params

if TYPE_CHECKING:
    from azure.ai.inference import ChatCompletionsClient


def complete_request(
    model: str,
    messages: Sequence[Message],
    options: GenerationOptions,
    *,
    vision: VisionFormat,
    extras: bool,
    include_usage: bool,
    image_url: ImageURL | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ChatCompletionsClient.complete but the headers: what the adapter sends
    and Get code writes."""
    standard, model_extras = split_params(wire_params(options, extras=extras))
    if include_usage:
        model_extras["stream_options"] = {"include_usage": True}
    kwargs: dict[str, Any] = {
        "stream": True,
        "model": model,
        "messages": wire_messages(messages, vision, image_url=image_url),
        **standard,
    }
    if model_extras:
        kwargs["model_extras"] = model_extras
    return kwargs


def azure_client(connection: Connection, *, timeout_s: float | None = None) -> ChatCompletionsClient:
    """A ChatCompletionsClient with our timeouts and no SDK retries (ours are bounded and visible)."""
    from azure.ai.inference import ChatCompletionsClient
    from azure.core.credentials import AzureKeyCredential

    timeout = timeout_s or connection.timeout_s
    kwargs: dict[str, Any] = {}
    if connection.endpoint.api_version:
        kwargs["api_version"] = connection.endpoint.api_version
    return ChatCompletionsClient(
        endpoint=connection.endpoint.base_url,
        credential=AzureKeyCredential(connection.key or "none"),
        retry_total=0,
        connection_timeout=min(timeout, connection.connect_timeout_s),
        read_timeout=timeout,
        **kwargs,
    )


class AzureInferenceModel(CloudModel):
    """One deployment on an Azure AI Foundry or serverless endpoint."""

    def __init__(self, spec: ModelSpec, connection: Connection, counter: TokenCounter | None = None) -> None:
        super().__init__(spec, connection, counter)
        self._client: ChatCompletionsClient | None = None
        self._lock = threading.Lock()

    def client(self) -> ChatCompletionsClient:
        with self._lock:
            if self._client is None:
                self._client = azure_client(self.connection)
            return self._client

    def request(
        self, messages: Sequence[Message], options: GenerationOptions, include_usage: bool
    ) -> dict[str, Any]:
        """The keyword arguments of ChatCompletionsClient.complete for this request."""
        endpoint = self.connection.endpoint
        kwargs = complete_request(
            self.model_id,
            messages,
            options,
            vision=endpoint.vision_format_for(self.model_id),
            extras=endpoint.sampling_extras,
            include_usage=include_usage,
        )
        if self.connection.headers:
            kwargs["headers"] = dict(self.connection.headers)
        return kwargs

    def _open(
        self, messages: Sequence[Message], options: GenerationOptions, include_usage: bool
    ) -> tuple[Iterator[Delta], Callable[[], None]]:
        response = self.client().complete(**self.request(messages, options, include_usage))
        return _deltas(response), response.close

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _deltas(updates: Iterator[Any]) -> Iterator[Delta]:
    for update in updates:
        usage = update.get("usage")
        counts = (int(usage["prompt_tokens"]), int(usage["completion_tokens"])) if usage else None
        if not update.choices:
            if counts:
                yield Delta(usage=counts)
            continue
        choice = update.choices[0]
        text = choice.delta.content if choice.delta and choice.delta.content else ""
        yield Delta(text=text, finish=reason_text(choice.finish_reason), usage=counts)
