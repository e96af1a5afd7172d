"""Against a real OpenAI-compatible server: `transformers serve` with the embedded SmolLM2."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from playground.codegen import snippet
from playground.providers.cloud import CloudProvider
from playground.types import FinishReason, Message
from tests.cloud.conftest import Served
from tests.cloud.helpers import ASK, GREEDY, answer

Build = Callable[..., CloudProvider]


def test_openai_base_url_adds_a_provider_that_discovers_the_served_model(
    served: Served, provider: Build
) -> None:
    cloud = provider("openai-compatible", OPENAI_BASE_URL=served.base_url)
    specs = cloud.specs()
    assert [s.id for s in specs] == [f"{served.model}@openai-compatible"]
    assert cloud.availability(specs[0]).available
    status = cloud.status()
    assert status.reachable is True and status.configured and status.key_env == "OPENAI_API_KEY"


def test_streams_a_real_answer_with_the_servers_usage(served: Served, provider: Build) -> None:
    cloud = provider("openai-compatible", OPENAI_BASE_URL=served.base_url)
    model = cloud.load(cloud.specs()[0])
    chunks = list(model.stream(ASK, GREEDY))
    text = "".join(c.text for c in chunks)
    metrics = chunks[-1].metrics
    assert "Paris" in text
    assert sum(1 for c in chunks if c.text) >= 3, "the answer arrives in pieces, not at once"
    assert metrics is not None and metrics.finish_reason == FinishReason.STOP
    assert metrics.estimated is False, "transformers serve reports usage on its last chunk"
    assert metrics.prompt_tokens > 10 and 3 <= metrics.completion_tokens <= GREEDY.max_new_tokens
    assert metrics.ttft_s is not None and 0 < metrics.ttft_s <= metrics.total_s
    model.close()


def test_the_token_limit_is_a_length_finish(served: Served, provider: Build) -> None:
    cloud = provider("openai-compatible", OPENAI_BASE_URL=served.base_url)
    text, metrics = answer(
        cloud.load(cloud.specs()[0]), options=GREEDY.model_copy(update={"max_new_tokens": 3})
    )
    assert metrics.finish_reason == FinishReason.LENGTH
    assert metrics.completion_tokens == 3 and text


def test_azure_ai_inference_adapter_streams_from_the_same_server(served: Served, provider: Build) -> None:
    cloud = provider(
        "azure-ai",
        AZURE_AI_CHAT_ENDPOINT=served.base_url,
        AZURE_AI_CHAT_KEY="azure-test-key",
        PLAYGROUND_AZURE_AI_DEPLOYMENTS=served.model,
    )
    spec = cloud.specs()[0]
    assert spec.id == f"{served.model}@azure-ai" and cloud.availability(spec).available
    text, metrics = answer(cloud.load(spec))
    assert "Paris" in text
    assert metrics.finish_reason == FinishReason.STOP and not metrics.estimated
    assert metrics.completion_tokens >= 3


def test_get_code_for_the_openai_endpoint_runs_and_prints_paris(served: Served, provider: Build) -> None:
    cloud = provider("openai-compatible", OPENAI_BASE_URL=served.base_url, OPENAI_API_KEY="sk-never-printed")
    spec = cloud.specs()[0]
    language, code = snippet(spec, [Message("user", ASK[0].content)], GREEDY)
    assert language == "python" and "sk-never-printed" not in code
    assert "os.environ.get('OPENAI_API_KEY'" in code
    env = {"PATH": os.environ.get("PATH", ""), "OPENAI_API_KEY": "sk-never-printed", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Paris" in run.stdout


def test_get_code_for_azure_ai_runs_against_the_same_server(served: Served, provider: Build) -> None:
    cloud = provider(
        "azure-ai",
        AZURE_AI_CHAT_ENDPOINT=served.base_url,
        AZURE_AI_CHAT_KEY="azure-never-printed",
        PLAYGROUND_AZURE_AI_DEPLOYMENTS=served.model,
    )
    _, code = snippet(cloud.specs()[0], [Message("user", ASK[0].content)], GREEDY)
    assert "azure-never-printed" not in code and "os.environ['AZURE_AI_CHAT_KEY']" in code
    env = {"PATH": os.environ.get("PATH", ""), "AZURE_AI_CHAT_KEY": "azure-never-printed"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Paris" in run.stdout
