"""Get code: a script in each provider's own SDK; it compiles and reads keys from the environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from playground.catalog import load_catalog
from playground.codegen import snippet
from playground.options import GenerationOptions
from playground.providers import build_providers
from playground.registry import Registry
from playground.settings import Settings
from playground.types import Message

OPTIONS = GenerationOptions(temperature=0.4, top_p=0.9, max_new_tokens=64, seed=3, stop=("END",), top_k=40)
ENV = {
    "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1",
    "OPENAI_API_KEY": "sk-do-not-print",
    "NVIDIA_API_KEY": "nvapi-do-not-print",
    "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com",
    "AZURE_OPENAI_API_KEY": "aoai-do-not-print",
    "PLAYGROUND_AZURE_OPENAI_DEPLOYMENTS": "my-phi",
    "AZURE_AI_CHAT_ENDPOINT": "https://res.services.ai.azure.com/models",
    "AZURE_AI_CHAT_KEY": "azai-do-not-print",
    "PLAYGROUND_AZURE_AI_DEPLOYMENTS": "Phi-4-mini-instruct",
    "PLAYGROUND_GITHUB_MODELS": "1",
    "GITHUB_TOKEN": "ghp-do-not-print",
    "OLLAMA_HOST": "127.0.0.1:9",
    "NVIDIA_BASE_URL": "http://127.0.0.1:9/v1",
}
CASES = [
    ("phi-4-mini@nvidia", "from openai import OpenAI", "os.environ['NVIDIA_API_KEY']"),
    ("my-phi@azure-openai", "from openai import OpenAI", "os.environ['AZURE_OPENAI_API_KEY']"),
    ("phi-4-mini@ollama", "from openai import OpenAI", "api_key='none'"),
    ("phi-4-mini@github", "from openai import OpenAI", "os.environ['GITHUB_TOKEN']"),
    (
        "phi-4-mini@azure-ai",
        "ChatCompletionsClient",
        "AzureKeyCredential(os.environ['AZURE_AI_CHAT_KEY'])",
    ),
    ("smollm2-135m-instruct@onnx", "import onnxruntime_genai as og", "og.Model"),
    ("phi-3.5-vision@transformers", "AutoModelForCausalLM", "trust_remote_code=True"),
]


@pytest.fixture
def registry(cloud_settings: Callable[..., Settings]) -> Registry:
    return Registry(build_providers(cloud_settings(**ENV), load_catalog()))


@pytest.mark.parametrize(("model_id", "sdk", "key_code"), CASES)
def test_each_provider_gets_a_script_in_its_own_sdk(
    registry: Registry, model_id: str, sdk: str, key_code: str
) -> None:
    spec = registry.resolve(model_id)
    messages = [Message("system", "Be brief."), Message("user", "Qu'est-ce que c'est ?")]
    language, code = snippet(spec, messages, OPTIONS)
    assert language == "python"
    compile(code, f"<{model_id}>", "exec")
    assert sdk in code and key_code in code
    assert not [v for v in ENV.values() if "do-not-print" in v and v in code], (
        "a key was written into the code"
    )
    assert "Qu'est-ce que c'est ?" in code or "Qu\\'est-ce" in code


def test_cloud_scripts_carry_the_parameters_and_the_model(registry: Registry) -> None:
    _, code = snippet(registry.resolve("phi-4-mini@nvidia"), [Message("user", "Hi")], OPTIONS)
    expected = [
        "model='microsoft/phi-4-mini-instruct'",
        "temperature=0.4",
        "top_p=0.9",
        "max_tokens=64",
        "seed=3",
        "stop=['END']",
        "base_url='http://127.0.0.1:9/v1'",
        "stream=True",
    ]
    assert [e for e in expected if e not in code] == []


def test_vision_scripts_send_images_the_way_the_model_takes_them(registry: Registry, tmp_path: Path) -> None:
    image = str(tmp_path / "cat.png")
    ask = [Message("user", "What is this?", images=(image,))]
    _, tag = snippet(registry.resolve("phi-3.5-vision@nvidia"), ask, OPTIONS)
    _, parts = snippet(registry.resolve("phi-4-multimodal@nvidia"), ask, OPTIONS)
    compile(tag, "<tag>", "exec")
    compile(parts, "<parts>", "exec")
    assert f"'What is this? <img src=\"' + data_url({image!r}) + '\" />'" in tag
    assert f"{{'type': 'image_url', 'image_url': {{'url': data_url({image!r})}}}}" in parts


def test_local_scripts_point_at_the_model(registry: Registry) -> None:
    spec = registry.resolve("smollm2-135m-instruct@onnx")
    _, onnx = snippet(spec, [Message("user", "Hi")], OPTIONS, model_dir="/models/smollm2-onnx")
    assert "'/models/smollm2-onnx'" in onnx and "random_seed=3" in onnx and "top_k=40" in onnx
    _, hf = snippet(registry.resolve("phi-4-mini@transformers"), [Message("user", "Hi")], OPTIONS)
    assert (
        "source = os.environ.get(\"MODEL_DIR\", 'microsoft/Phi-4-mini-instruct')" in hf
        and "max_new_tokens=min(64," in hf
    )


def test_endpoint_headers_come_from_the_environment_in_the_script(
    cloud_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    config = tmp_path / "endpoints.toml"
    config.write_text(
        "[[endpoints]]\n"
        'name = "lab"\nbase_url = "http://lab:8000/v1"\napi_key_env = "LAB_KEY"\nmodels = ["m"]\n'
        'headers = { "X-Tenant" = "${LAB_TENANT}", "X-Api-Token" = "literal-secret", "X-Team" = "x" }\n'
    )
    registry = Registry(
        build_providers(cloud_settings(PLAYGROUND_ENDPOINTS=str(config), LAB_TENANT="t7"), [])
    )
    _, code = snippet(registry.resolve("m@lab"), [Message("user", "Hi")], OPTIONS)
    compile(code, "<lab>", "exec")
    assert "'X-Tenant': os.environ['LAB_TENANT']" in code and "'X-Team': 'x'" in code
    assert "literal-secret" not in code and "t7" not in code


def test_credentials_inside_a_url_are_read_from_its_variable_never_written(
    cloud_settings: Callable[..., Settings],
) -> None:
    """A proxy reached as http://user:PASS@host/v1?api-key=KEY: the script reads the whole URL from the
    variable that holds it; the Providers row and the model's spec show it redacted."""
    from playground.providers_service import statuses

    url = "http://team:pass-do-not-print@127.0.0.1:9/v1?api-key=qkey-do-not-print&region=eu"
    registry = Registry(
        build_providers(cloud_settings(NVIDIA_BASE_URL=url, NVIDIA_API_KEY="k"), load_catalog())
    )
    spec = registry.resolve("phi-4-mini@nvidia")
    _, code = snippet(spec, [Message("user", "Hi")], OPTIONS)
    compile(code, "<proxy>", "exec")
    assert "base_url=os.environ['NVIDIA_BASE_URL']" in code and "do-not-print" not in code
    assert spec.extra["base_url"] == "http://***@127.0.0.1:9/v1?api-key=***&region=eu"
    row = next(s for s in statuses(registry) if s.name == "nvidia")
    assert row.url == "http://***@127.0.0.1:9/v1?api-key=***&region=eu"


@pytest.mark.parametrize(
    ("url", "shown", "hidden"),
    [
        ("https://u:p4ss@h.example/v1", "https://***@h.example/v1", ["u:p4ss", "p4ss"]),
        ("http://h/v1?api_key=abc%2Bd&x=1", "http://h/v1?api_key=***&x=1", ["abc%2Bd", "abc+d"]),
        (
            "http://h/f?code=zz9&sig=s1g&token=tok",
            "http://h/f?code=***&sig=***&token=***",
            ["zz9", "s1g", "tok"],
        ),
        ("http://h:8/v1", "http://h:8/v1", []),
    ],
)
def test_url_credentials_are_redacted_and_listed(url: str, shown: str, hidden: list[str]) -> None:
    from playground.secret_urls import redact_url, url_secrets

    assert redact_url(url) == shown
    assert set(hidden) <= set(url_secrets(url)) and (hidden or not url_secrets(url))
    assert redact_url(f"failed: POST {url} (401)") == f"failed: POST {shown} (401)", "inside a log line"
