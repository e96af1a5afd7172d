"""Small helpers of the cloud tests."""

from __future__ import annotations

from collections.abc import Iterable

from playground.options import GenerationOptions
from playground.providers.base import ChatModel
from playground.providers.cloud import CloudProvider
from playground.providers.cloud.mapping import model_spec
from playground.types import Chunk, Message, Metrics
from tests.support import QUESTION

ASK = [Message("user", QUESTION)]
GREEDY = GenerationOptions(temperature=0.0, max_new_tokens=16)


def collect(chunks: Iterable[Chunk]) -> tuple[str, Metrics]:
    """The whole text of a stream and its final metrics (which must come last)."""
    parts: list[str] = []
    metrics: Metrics | None = None
    for chunk in chunks:
        assert metrics is None, "nothing may follow the metrics chunk"
        parts.append(chunk.text)
        metrics = chunk.metrics
    assert metrics is not None, "a stream ends with a metrics chunk"
    return "".join(parts), metrics


def answer(
    model: ChatModel, messages: list[Message] | None = None, options: GenerationOptions = GREEDY
) -> tuple[str, Metrics]:
    return collect(model.stream(messages or ASK, options))


def served_model(cloud: CloudProvider, wire: str) -> ChatModel:
    """A model the endpoint is asked for by this id, whether or not it lists it."""
    return cloud.load(model_spec(cloud.endpoint, wire, None, None, None))
