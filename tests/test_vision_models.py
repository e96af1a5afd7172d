"""A tiny randomly initialised Idefics3ForConditionalGeneration (SmolVLM's class, the tiny-vision-demo
model) goes through the real processor and generate path with images, in-process and in a worker
process; the image reaches the model (pixel values passed, image tokens in the input). Capabilities per
engine: a text-only model refuses images before anything loads. Structure only: the weights are random."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from playground.answers import AnswerService, Request
from playground.catalog import load_catalog
from playground.chat import ChatService
from playground.errors import ImagesNotSupportedError
from playground.images import prepare_messages
from playground.options import GenerationOptions
from playground.providers.local import EngineMode, OnnxProvider, TransformersProvider, demo_vision, path_spec
from playground.providers.local.capabilities import genai_vision, onnx_capabilities
from playground.providers.local.hf import TransformersModel
from playground.registry import Registry
from playground.types import Capability, Message, ModelSpec
from tests.support import MODELS_DIR

DEMO = "tiny-vision-demo@transformers"
GREEDY = GenerationOptions(temperature=0.0, max_new_tokens=6)
PER_IMAGE = demo_vision.IMAGE_SEQ_LEN  # <image> tokens per image (no splitting)


@pytest.fixture(scope="session")
def demo_folder(embedded_hf_folder: Path) -> Path:
    return demo_vision.ensure_folder(MODELS_DIR)


@pytest.fixture(scope="session")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("pictures")
    found = {}
    for name, colour in (("red", (230, 20, 20)), ("blue", (20, 20, 230))):
        path = root / f"{name}.png"
        Image.new("RGB", (160, 90), colour).save(path)
        found[name] = str(path)
    return found


def _spec(processes: bool = False) -> tuple[TransformersProvider, ModelSpec]:
    provider = TransformersProvider(load_catalog(), MODELS_DIR, EngineMode(processes=processes, threads=1))
    spec = next(s for s in provider.specs() if s.id == DEMO)
    return provider, spec


@pytest.fixture(scope="module")
def model(demo_folder: Path) -> Iterator[TransformersModel]:
    _, spec = _spec()
    loaded = TransformersModel(spec, demo_folder, threads=1)
    yield loaded
    loaded.close()


class Capture:
    """Hooks on the real modules: the input ids of every forward step (prefill first) and the pixel
    values that reach the vision encoder."""

    def __init__(self, model: TransformersModel) -> None:
        self.steps: list[Any] = []
        self.pixels: list[Any] = []
        self._handles = [
            model._model.register_forward_pre_hook(self._step, with_kwargs=True),
            model._model.model.vision_model.register_forward_pre_hook(self._vision, with_kwargs=True),
        ]

    def _step(self, _module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        self.steps.append(kwargs["input_ids"])

    def _vision(self, _module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        self.pixels.append(kwargs.get("pixel_values", args[0] if args else None))

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()


def _answer(model: Any, messages: list[Message]) -> tuple[str, Any]:
    text, metrics = "", None
    for chunk in model.stream(messages, GREEDY):
        text += chunk.text
        metrics = chunk.metrics or metrics
    return text, metrics


def test_the_demo_model_is_offered_as_a_labelled_vision_model(demo_folder: Path) -> None:
    provider, spec = _spec()
    assert Capability.VISION in spec.capabilities and spec.family == "Demo"
    assert "random weights" in spec.name.lower() and provider.availability(spec).available
    assert spec.source == "built by the playground (random weights)"
    config = json.loads((demo_folder / "config.json").read_text())
    assert config["architectures"] == ["Idefics3ForConditionalGeneration"]
    assert "random weights" in (demo_folder / "README.md").read_text().lower()


def test_an_image_reaches_the_model_in_process(model: TransformersModel, pictures: dict[str, str]) -> None:
    image_id = model._model.config.image_token_id
    ask = list(
        prepare_messages(model.spec, [Message("user", "What colour is this?", images=(pictures["red"],))])
    )
    assert "<image>" in model.render_prompt(ask), "the processor's chat template places the image"
    with Capture(model) as seen:
        _, metrics = _answer(model, ask)
    (pixels,) = seen.pixels  # the image is encoded once, at prefill
    assert tuple(pixels.shape) == (1, 3, 64, 64)
    prefill = seen.steps[0]
    assert int((prefill == image_id).sum()) == PER_IMAGE, "the image's tokens are in the input"
    assert all(step.shape[-1] == 1 for step in seen.steps[1:]), "then one token per step"
    assert metrics.completion_tokens >= 1 and metrics.prompt_tokens == prefill.shape[-1]


def test_several_images_each_get_their_tokens_and_the_count_includes_them(
    model: TransformersModel, pictures: dict[str, str]
) -> None:
    text_only = [Message("user", "Compare them.")]
    two = list(
        prepare_messages(
            model.spec, [Message("user", "Compare them.", images=(pictures["red"], pictures["blue"]))]
        )
    )
    extra = model.count_prompt(two) - model.count_prompt(text_only)
    assert extra >= 2 * PER_IMAGE, "each image adds its image tokens (and the tokens around them)"
    with Capture(model) as seen:
        _, metrics = _answer(model, two)
    assert tuple(seen.pixels[0].shape) == (2, 3, 64, 64)
    assert int((seen.steps[0] == model._model.config.image_token_id).sum()) == 2 * PER_IMAGE
    assert metrics.prompt_tokens == model.count_prompt(two), "the meter counts what the model receives"


def test_the_answer_depends_on_the_image(model: TransformersModel, pictures: dict[str, str]) -> None:
    """Same prompt, greedy, fixed weights: a red and a blue image give different answers."""
    answers = {
        name: _answer(
            model, list(prepare_messages(model.spec, [Message("user", "Describe.", images=(path,))]))
        )[0]
        for name, path in pictures.items()
    }
    assert answers["red"] and answers["blue"] and answers["red"] != answers["blue"]
    again = _answer(
        model, list(prepare_messages(model.spec, [Message("user", "Describe.", images=(pictures["red"],))]))
    )
    assert again[0] == answers["red"], "deterministic: greedy on fixed weights"


def test_in_a_worker_process_through_the_chat_service(
    model: TransformersModel, pictures: dict[str, str]
) -> None:
    """The default mode: the image travels to the worker, is processed there, and counts in the window."""
    provider, _ = _spec(processes=True)
    registry = Registry([provider])
    chat = ChatService(registry)
    pipeline = AnswerService(chat)
    try:
        answers = {}
        for name, path in pictures.items():
            prepared = chat.preview(DEMO, [Message("user", "Describe.", images=(path,))], GREEDY)
            assert type(prepared.model.model).__name__ == "ProcessModel"  # behind the error guard
            assert prepared.messages[0].images[0].startswith("data:image/png;base64,")
            result = pipeline.complete(Request(DEMO, [Message("user", "Describe.", images=(path,))], GREEDY))
            text, metrics = result.text, result.metrics
            assert metrics.prompt_tokens == prepared.prompt_tokens, "image tokens counted by the worker"
            answers[name] = text
        in_process = _answer(
            model,
            list(prepare_messages(model.spec, [Message("user", "Describe.", images=(pictures["red"],))])),
        )[0]
        assert answers["red"] == in_process and answers["red"] != answers["blue"]
        without = chat.preview(DEMO, [Message("user", "Describe.")], GREEDY)
        assert prepared.prompt_tokens is not None and without.prompt_tokens is not None
        assert prepared.prompt_tokens - without.prompt_tokens >= PER_IMAGE
    finally:
        registry.close_all()


def _answer_chunks(stream: Iterator[Any]) -> tuple[str, Any]:
    text, metrics = "", None
    for chunk in stream:
        text += chunk.text
        metrics = chunk.metrics or metrics
    return text, metrics


def test_a_text_only_model_refuses_images_before_loading(pictures: dict[str, str]) -> None:
    provider = TransformersProvider(load_catalog(), MODELS_DIR)
    registry = Registry([provider])
    chat = ChatService(registry)
    ask = [Message("user", "What is this?", images=(pictures["red"],))]
    with pytest.raises(
        ImagesNotSupportedError, match=r"SmolLM2-135M-Instruct on transformers does not take images"
    ):
        chat.preview("smollm2-135m-instruct@transformers", ask, GREEDY)
    with pytest.raises(ImagesNotSupportedError, match="Tiny Phi-MoE demo"):
        chat.preview("tiny-phimoe-demo@transformers", ask, GREEDY)
    assert registry.loaded() == [], "nothing was loaded to refuse"


def test_onnx_claims_vision_only_for_a_folder_with_a_vision_section(tmp_path: Path) -> None:
    text_build = tmp_path / "text"
    vision_build = tmp_path / "vision"
    for folder, model in (
        (text_build, {"type": "phi3"}),
        (vision_build, {"type": "phi3v", "vision": {"filename": "v.onnx"}}),
    ):
        folder.mkdir()
        (folder / "genai_config.json").write_text(json.dumps({"model": {**model, "context_length": 4096}}))
    assert not genai_vision(text_build) and genai_vision(vision_build)
    assert Capability.VISION not in path_spec(text_build).capabilities
    assert Capability.VISION in path_spec(vision_build).capabilities
    assert Capability.VISION in onnx_capabilities(), "the engine has the multimodal processor"
    catalog = {s.id: s for s in OnnxProvider(load_catalog(), MODELS_DIR).specs()}
    assert Capability.VISION in catalog["phi-3.5-vision@onnx"].capabilities, (
        "the published build is a vision build"
    )
    assert Capability.VISION not in catalog["phi-3.5-mini@onnx"].capabilities
    # A catalog vision model whose downloaded folder turns out to be a text build claims no vision once loaded.
    provider = OnnxProvider(load_catalog(), MODELS_DIR)
    claimed = ModelSpec(
        "x@onnx",
        "X",
        "onnx",
        capabilities=frozenset({Capability.CHAT, Capability.VISION}),
        extra={"path": str(text_build)},
    )
    assert Capability.VISION not in provider.recipe(claimed).spec.capabilities


def test_transformers_folders_and_the_torchvision_reason(demo_folder: Path) -> None:
    assert Capability.VISION in path_spec(demo_folder).capabilities
    assert (
        Capability.VISION not in path_spec(MODELS_DIR / "embedded" / "smollm2-135m-instruct-hf").capabilities
    )
    provider = TransformersProvider(load_catalog(), MODELS_DIR)
    phi4 = next(s for s in provider.specs() if s.id == "phi-4-multimodal@transformers")
    state = provider.availability(phi4)
    if importlib.util.find_spec("torchvision") is None:
        assert not state.available and state.reason.startswith("needs torchvision")
    else:
        assert "torchvision" not in state.reason
