"""What the server received: body parameters, headers, images in the form each model takes; and usage."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from playground.answers import AnswerService, Request
from playground.catalog import load_catalog
from playground.chat import ChatService
from playground.options import GenerationOptions
from playground.providers import build_providers
from playground.providers.cloud import CloudProvider
from playground.registry import Registry
from playground.settings import Settings
from playground.types import FinishReason, Message
from tests.cloud.fake_server import FakeServer
from tests.cloud.helpers import ASK, answer, served_model
from tests.support import loaded

Build = Callable[..., CloudProvider]
KEY = "sk-wire-5555aaaa"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_the_request_carries_every_parameter_and_asks_for_usage(provider: Build, fake: FakeServer) -> None:
    scenario = "ok~params"
    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url(scenario), OPENAI_API_KEY=KEY)
    options = GenerationOptions(temperature=0.3, top_p=0.8, max_new_tokens=42, seed=7, stop=("\n\n", "END"))
    messages = [Message("system", "Be brief."), *ASK]
    text, metrics = answer(served_model(cloud, "alpha"), messages, options)
    assert text == "The capital of France is Paris." and metrics.finish_reason == FinishReason.STOP
    (request,) = fake.requests(scenario)
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    body = request.body
    assert body["model"] == "alpha" and body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": ASK[0].content},
    ]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.3, 0.8, 42, 7)
    assert body["stop"] == ["\n\n", "END"]
    assert body["stream_options"] == {"include_usage": True}
    assert "top_k" not in body and "repetition_penalty" not in body, (
        "not OpenAI parameters: sent only if allowed"
    )
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_usage_from_the_stream_is_taken_as_it_is(provider: Build, fake: FakeServer) -> None:
    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url("usage"))
    _, metrics = answer(served_model(cloud, "alpha"))
    assert (metrics.prompt_tokens, metrics.completion_tokens, metrics.estimated) == (11, 7, False)


def test_without_usage_the_counts_are_estimated(provider: Build, fake: FakeServer) -> None:
    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url("ok"))
    _, metrics = answer(served_model(cloud, "alpha"))
    assert metrics.estimated is True
    assert metrics.completion_tokens == 3, "no tokenizer known: one per streamed piece"
    assert metrics.prompt_tokens > 0


def test_estimates_use_the_models_tokenizer_where_it_is_known(
    provider: Build, fake: FakeServer, embedded_hf_folder: Path
) -> None:
    from transformers import AutoTokenizer

    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url("ok"))
    text, metrics = answer(served_model(cloud, str(embedded_hf_folder)))
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_hf_folder))
    assert metrics.estimated is True
    assert metrics.completion_tokens == len(tokenizer(text, add_special_tokens=False)["input_ids"])
    chat = [m.to_dict() for m in ASK]
    prompt = tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True)
    assert metrics.prompt_tokens == len(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)


def test_endpoints_file_headers_and_sampling_extras_reach_the_server(
    cloud_settings: Callable[..., Settings], fake: FakeServer, tmp_path: Path
) -> None:
    scenario = "ok~file"
    config = tmp_path / "endpoints.toml"
    config.write_text(
        f"""
[[endpoints]]
name = "lab"
label = "Lab vLLM"
base_url = "{fake.url(scenario)}"
api_key_env = "LAB_KEY"
key_header = "api-key"
headers = {{ "X-Team" = "research", "X-Tenant" = "${{LAB_TENANT}}" }}
sampling_extras = true
models = ["alpha", {{ id = "lab-vision", name = "Lab Vision", capabilities = ["vision"] }}]
"""
    )
    settings = cloud_settings(PLAYGROUND_ENDPOINTS=str(config), LAB_KEY=KEY, LAB_TENANT="tenant-7")
    registry = Registry(build_providers(settings, load_catalog()))
    spec = registry.resolve("alpha@lab")
    assert registry.availability(spec).available, "listed models need no discovery"
    options = GenerationOptions(temperature=0.5, top_k=20, repetition_penalty=1.2, max_new_tokens=8)
    answer(loaded(registry, spec.id), options=options)
    (request,) = fake.requests(scenario)
    assert request.headers["x-team"] == "research" and request.headers["x-tenant"] == "tenant-7"
    assert request.headers["api-key"] == KEY and request.headers["authorization"] == f"Bearer {KEY}"
    assert (request.body["top_k"], request.body["repetition_penalty"]) == (20, 1.2)
    vision = registry.resolve("lab-vision@lab")
    assert vision.name == "Lab Vision" and "vision" in vision.capabilities


def test_images_go_as_openai_content_parts(provider: Build, fake: FakeServer, tmp_path: Path) -> None:
    scenario = "ok~image"
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url(scenario))
    answer(served_model(cloud, "alpha"), [Message("user", "What is this?", images=(str(image),))])
    content = fake.requests(scenario)[0].body["messages"][0]["content"]
    expected_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert content == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": expected_url}},
    ]


def test_nvidia_discovery_keeps_phi_models_and_maps_them_to_the_catalog(
    provider: Build, fake: FakeServer
) -> None:
    before = len(fake.requests("nvidia"))  # other tests use this scenario too
    cloud = provider("nvidia", NVIDIA_BASE_URL=fake.url("nvidia"), NVIDIA_API_KEY=KEY)
    ids = {s.id for s in cloud.specs()}
    assert {
        "phi-4-mini@nvidia",
        "phi-3.5-vision@nvidia",
        "microsoft/phi-3-vision-128k-instruct@nvidia",
    } <= ids
    assert not any("llama" in i for i in ids), "discovery is filtered to microsoft/phi*"
    vision = next(s for s in cloud.specs() if s.id == "phi-3.5-vision@nvidia")
    assert vision.name == "Phi-3.5-vision-instruct" and vision.extra["catalog"] == "phi-3.5-vision"
    assert "vision" in vision.capabilities
    gone = next(s for s in cloud.specs() if s.id == "phi-3.5-moe@nvidia")
    assert cloud.availability(gone).reason == "NVIDIA NIM does not list microsoft/phi-3.5-moe-instruct now"
    assert cloud.availability(vision).available
    listed = [r for r in fake.requests("nvidia")[before:] if r.method == "GET"]
    assert len(listed) == 1 and listed[0].headers["authorization"] == f"Bearer {KEY}", "listed once, cached"


def test_nvidia_phi_vision_images_go_as_an_inline_img_tag(
    provider: Build, fake: FakeServer, tmp_path: Path
) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    cloud = provider("nvidia", NVIDIA_BASE_URL=fake.url("nvidia"), NVIDIA_API_KEY=KEY)
    spec = next(s for s in cloud.specs() if s.id == "phi-3.5-vision@nvidia")
    answer(cloud.load(spec), [Message("user", "Describe it.", images=(str(image),))])
    body = [r for r in fake.requests("nvidia") if r.method == "POST"][-1].body
    data = base64.b64encode(PNG).decode()
    assert body["model"] == "microsoft/phi-3.5-vision-instruct"
    assert body["messages"][0]["content"] == f'Describe it. <img src="data:image/png;base64,{data}" />'


def test_ollama_lists_its_tags_and_a_catalog_key_resolves_to_it(
    cloud_settings: Callable[..., Settings], fake: FakeServer
) -> None:
    settings = cloud_settings(OLLAMA_HOST=fake.root("ollama"))
    registry = Registry(build_providers(settings, load_catalog()))
    spec = registry.resolve("phi-4-mini", "ollama")
    assert spec.id == "phi-4-mini@ollama" and spec.extra["model"] == "phi4-mini"
    assert registry.availability(spec).available
    assert registry.resolve("llama3.2:latest@ollama").params_total == "3.2B", "models not in the catalog too"
    not_pulled = registry.resolve("phi-3.5-mini@ollama")
    assert registry.availability(not_pulled).reason == "not pulled yet: run `ollama pull phi3.5`"
    text, _ = answer(loaded(registry, spec.id))
    assert text.endswith("Paris.")
    post = [r for r in fake.requests("ollama") if r.method == "POST"][-1]
    assert post.path == "/v1/chat/completions" and post.body["model"] == "phi4-mini"


def test_a_visitors_own_key_is_used_for_their_request_only(
    cloud_settings: Callable[..., Settings], fake: FakeServer
) -> None:
    settings = cloud_settings(NVIDIA_BASE_URL=fake.url("nvidia~visitor"))
    service = ChatService(Registry(build_providers(settings, load_catalog())))
    result = AnswerService(service).complete(
        Request("phi-4-mini@nvidia", ASK, GenerationOptions(max_new_tokens=8), api_key="nvapi-visitor")
    )
    assert result.text.endswith("Paris."), result.error
    (request,) = [r for r in fake.requests("nvidia~visitor") if r.method == "POST"]
    assert request.headers["authorization"] == "Bearer nvapi-visitor"
    with service.registry.lease(service.resolve("phi-4-mini@nvidia", has_key=True)) as lease:
        assert "nvapi-visitor" not in repr(vars(lease.engine)), "the cached model keeps no visitor's key"
