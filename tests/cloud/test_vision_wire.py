"""Images on the wire, asserted on what the server received: OpenAI `image_url` data URLs, NVIDIA's
inline <img> tag (shrunk to its limit), azure-ai-inference image content items, Ollama's image parts;
every image checked and normalised by the chat service first; endpoints that take no images refuse."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from playground.answers import AnswerService, Request
from playground.catalog import load_catalog
from playground.chat import ChatService
from playground.errors import ImagesNotSupportedError
from playground.images import prepare_messages
from playground.providers import build_providers
from playground.providers.cloud import CloudProvider
from playground.providers.cloud.wire import INLINE_LIMIT
from playground.registry import Registry
from playground.settings import Settings
from playground.types import Capability, Message
from tests.cloud.fake_server import FakeServer
from tests.cloud.helpers import GREEDY, answer, served_model

Build = Callable[..., CloudProvider]
KEY = "sk-vision-7777bbbb"


def _decode(url: str) -> tuple[str, Image.Image]:
    match = re.fullmatch(r"data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)", url)
    assert match, f"not a base64 data URL: {url[:60]}"
    return match.group(1), Image.open(io.BytesIO(base64.b64decode(match.group(2))))


def _noisy(path: Path, size: tuple[int, int]) -> Path:
    """A picture that compresses badly (so its PNG is large), with a known colour in one corner."""
    width, height = size
    image = Image.frombytes("RGB", size, bytes((i * 7919 + i // 3) % 251 for i in range(width * height * 3)))
    image.paste((255, 0, 0), (0, 0, 40, 40))
    image.save(path)
    return path


def test_nvidia_phi_vision_gets_a_checked_image_inline_within_its_limit(
    provider: Build, fake: FakeServer, tmp_path: Path
) -> None:
    """Through the chat service: validated, scaled to 2048, then shrunk to fit NVIDIA's inline limit."""
    big = _noisy(tmp_path / "scan.jpg", (2400, 600))  # PNG bytes under a .jpg name
    assert big.stat().st_size * 4 // 3 > INLINE_LIMIT
    cloud = provider("nvidia", NVIDIA_BASE_URL=fake.url("nvidia~vision"), NVIDIA_API_KEY=KEY)
    chat = ChatService(Registry([cloud]))
    text = (
        AnswerService(chat)
        .complete(Request("phi-3.5-vision@nvidia", [Message("user", "Read it.", images=(str(big),))], GREEDY))
        .text
    )
    assert text
    body = [r for r in fake.requests("nvidia~vision") if r.method == "POST"][-1].body
    content = body["messages"][0]["content"]
    assert isinstance(content, str) and content.startswith('Read it. <img src="data:image/')
    (src,) = re.findall(r'<img src="([^"]+)" />', content)
    assert len(src) <= INLINE_LIMIT, "NVIDIA's inline form has a size limit"
    mime, image = _decode(src)
    assert mime == "image/jpeg" and image.format == "JPEG"
    assert image.width <= 2048 and abs(image.width / image.height - 4.0) < 0.05, "scaled, not distorted"
    corner = image.convert("RGB").getpixel((2, 2))
    assert isinstance(corner, tuple) and corner[0] > 180 and corner[1] < 90, "the same picture arrived"


def test_openai_compatible_servers_get_image_url_parts_in_order(
    provider: Build, fake: FakeServer, tmp_path: Path
) -> None:
    scenario = "ok~vision-parts"
    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url(scenario))
    red, blue = tmp_path / "red.png", tmp_path / "blue.gif"
    Image.new("RGB", (30, 20), (255, 0, 0)).save(red)
    Image.new("RGB", (30, 20), (0, 0, 255)).save(blue, format="GIF")
    model = served_model(cloud, "alpha")
    vision = replace(model.spec, capabilities=frozenset(Capability))
    ask = prepare_messages(vision, [Message("user", "Compare.", images=(str(red), str(blue)))])
    answer(model, list(ask))
    content = fake.requests(scenario)[0].body["messages"][0]["content"]
    assert [p["type"] for p in content] == ["text", "image_url", "image_url"]
    colours = []
    for part in content[1:]:
        mime, image = _decode(part["image_url"]["url"])
        assert mime == "image/png", "normalised: the GIF arrives as PNG"
        colours.append(image.convert("RGB").getpixel((1, 1)))
    assert colours == [(255, 0, 0), (0, 0, 255)]


def test_azure_ai_inference_sends_image_content_items(
    provider: Build, fake: FakeServer, tmp_path: Path
) -> None:
    scenario = "ok~azure-vision"
    cloud = provider(
        "azure-ai",
        AZURE_AI_CHAT_ENDPOINT=fake.url(scenario),
        AZURE_AI_CHAT_KEY=KEY,
        PLAYGROUND_AZURE_AI_DEPLOYMENTS="Phi-4-multimodal-instruct",
    )
    spec = cloud.specs()[0]
    assert spec.id == "phi-4-multimodal@azure-ai" and Capability.VISION in spec.capabilities
    picture = tmp_path / "chart.png"
    Image.new("RGB", (64, 48), (0, 128, 0)).save(picture)
    ask = prepare_messages(spec, [Message("user", "What does the chart show?", images=(str(picture),))])
    answer(cloud.load(spec), list(ask))
    (request,) = fake.requests(scenario)
    assert request.headers["api-key"] == KEY
    (message,) = request.body["messages"]
    assert message["role"] == "user"
    text, item = message["content"]
    assert text == {"type": "text", "text": "What does the chart show?"}
    assert item["type"] == "image_url" and set(item["image_url"]) == {"url"}
    assert _decode(item["image_url"]["url"])[1].size == (64, 48)


def test_ollama_gets_image_parts_and_its_text_only_phi_tags_refuse_them(
    provider: Build, fake: FakeServer, tmp_path: Path
) -> None:
    scenario = "ollama~vision"
    cloud = provider("ollama", OLLAMA_HOST=fake.root(scenario))
    picture = tmp_path / "cat.png"
    Image.new("RGB", (20, 20), (9, 9, 9)).save(picture)
    llava = served_model(cloud, "llava:7b")
    vision = replace(llava.spec, capabilities=frozenset(Capability))
    url = prepare_messages(vision, [Message("user", "x", images=(str(picture),))])[0].images[0]
    answer(llava, [Message("user", "What is this?", images=(url,))])
    posted = [r for r in fake.requests(scenario) if r.method == "POST"]
    assert posted[-1].path == "/v1/chat/completions"
    content = posted[-1].body["messages"][0]["content"]
    assert content[1] == {"type": "image_url", "image_url": {"url": url}}
    phi = next(s for s in cloud.specs() if s.id == "phi-4-mini@ollama")
    assert Capability.VISION not in phi.capabilities
    chat = ChatService(Registry([cloud]))
    with pytest.raises(ImagesNotSupportedError, match="Phi-4-mini-instruct on Ollama does not take images"):
        chat.preview("phi-4-mini@ollama", [Message("user", "What is this?", images=(str(picture),))], GREEDY)
    assert len([r for r in fake.requests(scenario) if r.method == "POST"]) == len(posted), "nothing sent"


def test_an_endpoint_configured_without_images_claims_no_vision_and_refuses(
    cloud_settings: Callable[..., Settings], fake: FakeServer, tmp_path: Path
) -> None:
    scenario = "ok~no-vision"
    config = tmp_path / "endpoints.toml"
    config.write_text(
        f'[[endpoints]]\nname = "lab"\nbase_url = "{fake.url(scenario)}"\nvision_format = "none"\n'
        'models = ["lab-vision-model", { id = "other", capabilities = ["vision"] }]\n'
    )
    registry = Registry(build_providers(cloud_settings(PLAYGROUND_ENDPOINTS=str(config)), load_catalog()))
    for ref in ("lab-vision-model@lab", "other@lab"):
        assert Capability.VISION not in registry.resolve(ref).capabilities
    picture = tmp_path / "dot.png"
    Image.new("RGB", (4, 4)).save(picture)
    with pytest.raises(ImagesNotSupportedError, match="does not take images"):
        ChatService(registry).preview("other@lab", [Message("user", "?", images=(str(picture),))], GREEDY)
    assert fake.requests(scenario) == []
