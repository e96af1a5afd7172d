"""Nothing dropped, nothing broken: every stop sequence applied (the endpoint takes 4), and upstream text
that is not valid Unicode made valid at the adapter (a lone surrogate becomes U+FFFD, the rest arrives)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from playground.errors import ProviderError
from playground.options import GenerationOptions
from playground.providers.cloud import CloudProvider
from playground.providers.cloud.wire import MAX_STOPS
from playground.types import FinishReason
from tests.cloud.fake_server import FakeServer
from tests.cloud.helpers import answer, served_model

Build = Callable[..., CloudProvider]
FOUR = ("s1", "s2", "s3", "s4")


def _azure(provider: Build, fake: FakeServer, scenario: str) -> CloudProvider:
    return provider(
        "azure-ai",
        AZURE_AI_CHAT_ENDPOINT=fake.url(scenario),
        AZURE_AI_CHAT_KEY="azure-key",
        PLAYGROUND_AZURE_AI_DEPLOYMENTS="Phi-4-mini-instruct",
    )


def _openai(provider: Build, fake: FakeServer, scenario: str) -> CloudProvider:
    return provider("openai-compatible", OPENAI_BASE_URL=fake.url(scenario))


ADAPTERS = {"openai": _openai, "azure-ai": _azure}


@pytest.mark.parametrize(
    ("stops", "expected"),
    [
        ((*FOUR, "FIVE"), "Alpha beta SIX gamma "),  # the 5th, split across two chunks
        ((*FOUR, "FIVE", "SIX"), "Alpha beta "),  # the 6th comes first, split across two chunks
        ((*FOUR, "nowhere", "either"), "Alpha beta SIX gamma FIVE delta"),  # none: nothing held back
    ],
)
@pytest.mark.parametrize("kind", list(ADAPTERS))
def test_stop_sequences_beyond_four_are_applied_by_the_playground(
    provider: Build, fake: FakeServer, kind: str, stops: tuple[str, ...], expected: str
) -> None:
    scenario = f"stops~{kind}-{len(stops)}-{stops[-1]}"
    cloud = ADAPTERS[kind](provider, fake, scenario)
    model = served_model(cloud, "Phi-4-mini-instruct")
    text, metrics = answer(model, options=GenerationOptions(max_new_tokens=30, stop=stops))
    assert text == expected
    assert metrics.finish_reason == FinishReason.STOP
    (request,) = fake.requests(scenario)
    assert request.body["stop"] == list(stops[:MAX_STOPS]), "the endpoint gets at most 4"


@pytest.mark.parametrize("kind", list(ADAPTERS))
def test_a_lone_surrogate_in_the_stream_becomes_a_replacement_character(
    provider: Build, fake: FakeServer, kind: str
) -> None:
    cloud = ADAPTERS[kind](provider, fake, f"surrogate~{kind}")
    text, metrics = answer(served_model(cloud, "Phi-4-mini-instruct"))
    assert text == "The capital \ufffd of France is Paris.", "the rest of the answer arrives"
    text.encode("utf-8")  # what the page, the history and the terminal need
    assert metrics.finish_reason == FinishReason.STOP


@pytest.mark.parametrize("kind", list(ADAPTERS))
def test_an_error_message_with_a_lone_surrogate_is_valid_text(
    provider: Build, fake: FakeServer, kind: str
) -> None:
    cloud = ADAPTERS[kind](provider, fake, f"s400u~{kind}")
    with pytest.raises(ProviderError) as caught:
        answer(served_model(cloud, "Phi-4-mini-instruct"))
    message = str(caught.value)
    message.encode("utf-8")
    assert "bad input \ufffd here" in message and "(400)" in message
