"""Stop means stop: closing the stream ends the engine's work, not just the reading of it."""

from __future__ import annotations

import time

import pytest

from playground.context import AppContext
from playground.options import GenerationOptions
from playground.types import Message
from tests.support import loaded

LONG = GenerationOptions(temperature=0.8, seed=1, max_new_tokens=2000)
STORY = [Message("user", "Write a very long story about a lighthouse keeper and the sea.")]


def wait_idle(stats: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while getattr(stats, "running") and time.monotonic() < deadline:  # noqa: B009
        time.sleep(0.02)


@pytest.mark.parametrize("model_id", ["smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"])
def test_closing_the_stream_stops_the_engine(ctx: AppContext, model_id: str) -> None:
    model = loaded(ctx.registry, model_id)
    stats = model.stats  # type: ignore[attr-defined]
    stream = model.stream(STORY, LONG)
    received = 0
    for chunk in stream:
        received += bool(chunk.text)
        if received == 5:
            break
    stream.close()
    wait_idle(stats)
    assert stats.running == 0, "the engine is still generating after Stop"
    after_stop = stats.tokens_generated
    time.sleep(1.0)
    assert stats.tokens_generated == after_stop, "tokens were produced after Stop"
