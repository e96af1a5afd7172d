"""The Azure AI Inference adapter against the recording server: what it sends, and its failures."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from playground.errors import AuthError, ModelNotFoundError, ProviderTimeoutError, ServerError
from playground.options import GenerationOptions
from playground.providers.cloud import CloudProvider
from playground.types import FinishReason
from tests.cloud.fake_server import FakeServer
from tests.cloud.helpers import ASK, answer

Build = Callable[..., CloudProvider]
KEY = "azure-key-0f0f0f0f"


def _azure(provider: Build, fake: FakeServer, scenario: str, **env: str) -> CloudProvider:
    return provider(
        "azure-ai",
        AZURE_AI_CHAT_ENDPOINT=fake.url(scenario),
        AZURE_AI_CHAT_KEY=KEY,
        PLAYGROUND_AZURE_AI_DEPLOYMENTS="Phi-4-mini-instruct, phi-35-moe",
        **env,
    )


def test_the_request_carries_the_deployment_parameters_and_both_key_headers(
    provider: Build, fake: FakeServer
) -> None:
    scenario = "ok~azure"
    cloud = _azure(provider, fake, scenario)
    spec = cloud.specs()[0]
    assert spec.id == "phi-4-mini@azure-ai", (
        "a deployment named like a catalog model carries the catalog's data"
    )
    options = GenerationOptions(temperature=0.2, top_p=0.5, max_new_tokens=30, seed=11, stop=("END",))
    text, metrics = answer(cloud.load(spec), options=options)
    assert text == "The capital of France is Paris." and metrics.finish_reason == FinishReason.STOP
    assert metrics.estimated, "no usage in this stream: estimated"
    (request,) = fake.requests(scenario)
    assert request.path == "/v1/chat/completions" and request.query.startswith("api-version=")
    assert request.headers["authorization"] == f"Bearer {KEY}" and request.headers["api-key"] == KEY
    body = request.body
    assert body["model"] == "Phi-4-mini-instruct" and body["stream"] is True
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"], body["stop"]) == (
        0.2, 0.5, 30, 11, ["END"],
    )  # fmt: skip
    assert body["messages"] == [{"role": "user", "content": ASK[0].content}]


def test_401_names_azure_ai_chat_key(provider: Build, fake: FakeServer) -> None:
    with pytest.raises(AuthError) as caught:
        answer(_azure(provider, fake, "s401").load(_azure(provider, fake, "s401").specs()[0]))
    assert "refused the key in AZURE_AI_CHAT_KEY (401)" in str(caught.value) and KEY not in str(caught.value)


def test_404_lists_the_configured_deployments(provider: Build, fake: FakeServer) -> None:
    cloud = _azure(provider, fake, "s404")
    with pytest.raises(ModelNotFoundError) as caught:
        answer(cloud.load(cloud.specs()[1]))
    assert str(caught.value) == (
        "Azure AI Foundry has no model or deployment 'phi-35-moe' (404). "
        "It has: Phi-4-mini-instruct, phi-35-moe."
    )


def test_429_is_retried_after_retry_after(provider: Build, fake: FakeServer) -> None:
    scenario = "r429~azure"
    cloud = _azure(provider, fake, scenario)
    started = time.monotonic()
    text, _ = answer(cloud.load(cloud.specs()[0]))
    assert text.endswith("Paris.") and len(fake.requests(scenario)) == 2
    assert time.monotonic() - started >= 0.9


def test_500_and_timeouts(provider: Build, fake: FakeServer) -> None:
    with pytest.raises(ServerError, match=r"failed with 500: Internal failure"):
        answer(_azure(provider, fake, "s500").load(_azure(provider, fake, "s500").specs()[0]))
    cloud = _azure(provider, fake, "hang", PLAYGROUND_TIMEOUT_S="1")
    with pytest.raises(ProviderTimeoutError, match=r"did not answer within 1 s \(PLAYGROUND_TIMEOUT_S\)"):
        answer(cloud.load(cloud.specs()[0]))


@pytest.mark.parametrize("scenario", ["drop", "eof", "hangmid"])
def test_a_broken_stream_keeps_the_partial_answer_marked_interrupted(
    provider: Build, fake: FakeServer, scenario: str
) -> None:
    cloud = _azure(provider, fake, scenario, PLAYGROUND_TIMEOUT_S="1")
    text, metrics = answer(cloud.load(cloud.specs()[0]))
    assert text == "The capital of France"
    assert metrics.finish_reason == FinishReason.INTERRUPTED
