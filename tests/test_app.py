"""The launched app through its API (gradio_client): a real answer streams, Stop stops the engine."""

from __future__ import annotations

import time

import pytest
from gradio_client import Client

from playground.context import AppContext
from tests.support import QUESTION, loaded

OPTIONS = {
    "temperature": 0,
    "top_p": 1,
    "top_k": 0,
    "max_new_tokens": 48,
    "repetition_penalty": 1,
    "seed": -1,
    "stop": "",
}


def chat(client: Client, question: str, model: str = "smollm2-135m-instruct@onnx", **options: object):  # type: ignore[no-untyped-def]
    values = {**OPTIONS, **options}
    return client.submit(question, model, "", *values.values(), api_name="/chat")


@pytest.mark.parametrize("model", ["smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"])
def test_api_streams_a_real_answer(app_url: str, model: str) -> None:
    client = Client(app_url, verbose=False)
    job = chat(client, QUESTION, model)
    updates = list(job)
    assert len(updates) > 2, "the answer arrives in pieces"
    assert all(updates[i] == updates[i + 1][: len(updates[i])] for i in range(len(updates) - 1)), "cumulative"
    assert "Paris" in job.outputs()[-1]


def test_api_reports_a_clear_error(app_url: str) -> None:
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match=r"download 2\.4 GB"):
        chat(client, QUESTION, "phi-3.5-mini@onnx").result()
    with pytest.raises(Exception, match="temperature: Input should be less than or equal to 2"):
        chat(client, QUESTION, temperature=5).result()
    with pytest.raises(Exception, match="seed"):
        chat(client, QUESTION, seed=-5).result()


def test_cancel_stops_the_engine(app_url: str, ctx: AppContext) -> None:
    stats = loaded(ctx.registry, "smollm2-135m-instruct@onnx").stats
    client = Client(app_url, verbose=False)
    job = chat(
        client,
        "Write a very long story about a lighthouse keeper.",
        temperature=0.8,
        seed=5,
        max_new_tokens=3000,
    )
    deadline = time.monotonic() + 60
    while len(job.outputs()) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats.running == 1, "the engine is generating"
    job.cancel()
    deadline = time.monotonic() + 15
    while stats.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats.running == 0, "Stop did not reach the engine"
    count = stats.tokens_generated
    time.sleep(1.0)
    assert stats.tokens_generated == count
