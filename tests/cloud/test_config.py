"""Presets from the providers' own variables, the endpoints file, and start-up without a network."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from playground.catalog import load_catalog
from playground.errors import ConfigError
from playground.providers import build_providers
from playground.providers.cloud import load_endpoints
from playground.providers.cloud.presets import cloud_endpoints, ollama_host
from playground.registry import Registry
from playground.settings import Settings

Env = Callable[..., Settings]


def _names(settings: Settings) -> list[str]:
    return [e.name for e in cloud_endpoints(settings)]


def test_with_nothing_set_only_nvidia_and_ollama_are_listed(cloud_settings: Env) -> None:
    assert _names(cloud_settings()) == ["nvidia", "ollama"]


def test_each_variable_adds_its_preset(cloud_settings: Env) -> None:
    settings = cloud_settings(
        OPENAI_BASE_URL="http://127.0.0.1:8000/v1",
        AZURE_OPENAI_ENDPOINT="https://res.openai.azure.com/",
        AZURE_AI_CHAT_ENDPOINT="https://res.services.ai.azure.com/models",
        PLAYGROUND_GITHUB_MODELS="1",
    )
    endpoints = {e.name: e for e in cloud_endpoints(settings)}
    assert list(endpoints) == ["openai-compatible", "nvidia", "azure-openai", "ollama", "github", "azure-ai"]
    assert endpoints["openai-compatible"].api_key_env == "OPENAI_API_KEY"
    assert endpoints["openai-compatible"].key_required is False, "local servers need no key"
    assert endpoints["azure-openai"].base_url == "https://res.openai.azure.com/openai/v1"
    assert (
        endpoints["azure-ai"].kind == "azure-ai" and endpoints["azure-ai"].api_key_env == "AZURE_AI_CHAT_KEY"
    )
    assert endpoints["github"].retired == "2026-07-30"


def test_github_models_is_off_unless_enabled(cloud_settings: Env) -> None:
    assert "github" not in _names(cloud_settings(GITHUB_TOKEN="ghp-x"))
    assert "github" in _names(cloud_settings(GITHUB_TOKEN="ghp-x", PLAYGROUND_GITHUB_MODELS="1"))


def test_azure_deployments_are_the_model_ids(cloud_settings: Env) -> None:
    settings = cloud_settings(
        AZURE_OPENAI_ENDPOINT="https://res.openai.azure.com",
        AZURE_OPENAI_API_KEY="k",
        PLAYGROUND_AZURE_OPENAI_DEPLOYMENTS="my-phi-4, phi-3.5-mini-prod",
    )
    registry = Registry(build_providers(settings, load_catalog()))
    ids = [s.id for s in registry.specs() if s.provider == "azure-openai"]
    assert ids == ["my-phi-4@azure-openai", "phi-3.5-mini-prod@azure-openai"]
    assert all(registry.availability(registry.resolve(i)).available for i in ids), "listed: nothing to fetch"


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("", "http://localhost:11434"),
        ("0.0.0.0", "http://localhost:11434"),
        ("gpu-box:9000", "http://gpu-box:9000"),
        ("https://ollama.example.com", "https://ollama.example.com:443"),
    ],
)
def test_ollama_host_is_read_as_ollama_reads_it(raw: str, url: str) -> None:
    assert ollama_host(raw) == url


def test_the_endpoints_file_adds_endpoints(tmp_path: Path, cloud_settings: Env) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(
        """
[[endpoints]]
name = "vllm"
base_url = "http://gpu-box:8000/v1/"
discover = "(?i)phi"

[[endpoints]]
name = "foundry"
kind = "azure-ai"
base_url = "https://res.services.ai.azure.com/models"
api_key_env = "FOUNDRY_KEY"
models = ["Phi-4-mini-instruct"]
"""
    )
    vllm, foundry = load_endpoints(path)
    assert vllm.base_url == "http://gpu-box:8000/v1" and vllm.keyless and vllm.matches("microsoft/Phi-4")
    assert not vllm.matches("meta/llama") and foundry.models[0].id == "Phi-4-mini-instruct"
    assert _names(cloud_settings(PLAYGROUND_ENDPOINTS=str(path)))[-2:] == ["vllm", "foundry"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[endpoints]]\nname = 'x'\n", "endpoint #1 (x): base_url: Field required"),
        (
            "[[endpoints]]\nname = 'x'\nbase_url = 'gpu-box:8000'\n",
            "base_url: must start with http:// or https://",
        ),
        (
            "[[endpoints]]\nname = 'Bad Name'\nbase_url = 'http://h'\n",
            "endpoint #1 (Bad Name): name: String should",
        ),
        (
            "[[endpoints]]\nname = 'x'\nbase_url = 'http://h'\ndiscover = '('\n",
            "discover: not a regular expression",
        ),
        (
            "[[endpoints]]\nname = 'x'\nbase_url = 'http://h'\nkey = 'sk'\n",
            "endpoint #1 (x): key: unknown field",
        ),
        ("[[endpoints]]\nname = 'onnx'\nbase_url = 'http://h'\n", "'onnx' is a local engine's name"),
        (
            "[[endpoints]]\nname = 'x'\nkind = 'azure-ai'\nbase_url = 'http://h'\n",
            "azure-ai endpoint needs api_key_env",
        ),
        (
            "[[endpoints]]\nname = 'x'\nbase_url = 'http://h'\nvision_format = 'png'\n",
            "vision_format: Input should be",
        ),
        ("[[endpoint]]\nname = 'x'\n", "unknown top-level key(s) endpoint"),
        ("[[endpoints]\n", "is not valid TOML"),
        (
            "[[endpoints]]\nname = 'x'\nbase_url = 'http://a'\n[[endpoints]]\nname = 'x'\nbase_url = 'http://b'\n",
            "endpoint name(s) used twice: x",
        ),
    ],
)
def test_a_bad_endpoints_file_says_what_is_wrong_and_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_endpoints(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_endpoints_file_and_a_built_in_name_are_config_errors(
    tmp_path: Path, cloud_settings: Env
) -> None:
    with pytest.raises(ConfigError, match=r"PLAYGROUND_ENDPOINTS names .* which does not exist"):
        cloud_endpoints(cloud_settings(PLAYGROUND_ENDPOINTS=str(tmp_path / "none.toml")))
    path = tmp_path / "endpoints.toml"
    path.write_text("[[endpoints]]\nname = 'nvidia'\nbase_url = 'http://h'\n")
    with pytest.raises(ConfigError, match="'nvidia' is a built-in provider's"):
        cloud_endpoints(cloud_settings(PLAYGROUND_ENDPOINTS=str(path)))


def test_a_bad_preset_variable_is_a_config_error_naming_it(cloud_settings: Env) -> None:
    with pytest.raises(ConfigError, match=r"^OPENAI_BASE_URL: must start with http"):
        cloud_endpoints(cloud_settings(OPENAI_BASE_URL="localhost:8000"))


def test_model_ids_are_unique_across_providers(cloud_settings: Env) -> None:
    settings = cloud_settings(PLAYGROUND_GITHUB_MODELS="1", GITHUB_TOKEN="t", OLLAMA_HOST="127.0.0.1:9")
    ids = [s.id for s in Registry(build_providers(settings, load_catalog())).specs()]
    assert len(ids) == len(set(ids))
    assert {"phi-4-mini@github", "phi-4-mini@nvidia", "phi-4-mini@ollama", "phi-4-mini@onnx"} <= set(ids)


def test_start_up_with_nothing_set_opens_no_connection_beyond_this_machine(cloud_settings: Env) -> None:
    """With no variable set, listing every model touches at most Ollama's default loopback address."""
    connections: list[object] = []
    recording = [True]

    def audit(event: str, args: tuple[object, ...]) -> None:
        if recording[0] and event == "socket.connect":
            connections.append(args[1])

    sys.addaudithook(audit)
    try:
        started = time.monotonic()
        registry = Registry(build_providers(cloud_settings(), load_catalog()))
        rows = registry.rows()
        elapsed = time.monotonic() - started
    finally:
        recording[0] = False
    assert rows and elapsed < 5
    addresses = [a for a in connections if isinstance(a, tuple)]
    assert {str(a[0]) for a in addresses} <= {"127.0.0.1", "::1"}, f"connected to {addresses}"
    assert {int(a[1]) for a in addresses} == {11434}, (
        "only Ollama's default address was tried (the hook works)"
    )
    nvidia = [r for r in rows if r.spec.provider == "nvidia"]
    assert nvidia and all(r.availability.needs_key for r in nvidia)
