"""transformers' vision path: the model's own processor turns the prompt and the images into inputs.

Three kinds of folder take images here:
- native image-text-to-text classes (Idefics3/SmolVLM, the tiny demo model, ...): AutoProcessor and
  AutoModelForImageTextToText; the processor's chat template places one image token per image;
- Phi-4-multimodal (native, AutoModelForCausalLM): its image processor needs torchvision;
- Phi-3/3.5-vision (remote code, model type `phi3_v`): the prompt names each image `<|image_N|>`
  (chat_template.phi_format) and the processor takes `num_crops`.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import ModelLoadError, ModelUnavailableError
from ...images import open_image
from ...types import Message
from .chat_template import images_in_order, phi_format

PHI_TAG_TYPES = frozenset({"phi3_v"})  # prompts with numbered <|image_N|> tags
NEEDS_TORCHVISION = frozenset({"phi4_multimodal"})
VISION_TYPES = frozenset({"phi3_v", "phi4_multimodal", "idefics3", "idefics2", "smolvlm", "llava"})


def model_type(path: Path) -> str:
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(data.get("model_type", "")) if isinstance(data, dict) else ""


def is_vision_folder(path: Path) -> bool:
    """A transformers folder that takes images: a known vision model type, or a vision config with a
    processor saved beside it."""
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    if data.get("model_type") in VISION_TYPES:
        return True
    processor = (path / "processor_config.json").is_file() or (path / "preprocessor_config.json").is_file()
    return "vision_config" in data and processor


def missing_dependency(kind: str) -> str:
    """Why a vision model cannot load here ('' when nothing is missing)."""
    if kind in NEEDS_TORCHVISION and importlib.util.find_spec("torchvision") is None:
        return (
            "needs torchvision (its image processor uses it; the CPU torch build has none): "
            "pip install torchvision matching your torch"
        )
    return ""


def load_processor(path: Path, *, trust_remote_code: bool) -> Any:
    """The folder's processor; ModelUnavailableError naming what is missing."""
    from transformers import AutoProcessor

    kind = model_type(path)
    missing = missing_dependency(kind)
    if missing:
        raise ModelUnavailableError(f"{path.name} {missing}.")
    try:
        processor = AutoProcessor.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelLoadError(f"transformers could not load the processor of {path}: {exc}") from exc
    tokenizer: Any = getattr(processor, "tokenizer", None)
    template = getattr(tokenizer, "chat_template", None)
    if getattr(processor, "chat_template", None) is None and template:
        processor.chat_template = template  # Phi-4-multimodal's is dropped on load
    return processor


def model_class(path: Path) -> Any:
    """AutoModelForImageTextToText where the type has one, else AutoModelForCausalLM (Phi-4-multimodal,
    remote code)."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if model_type(path) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return AutoModelForImageTextToText
    return AutoModelForCausalLM


class VisionPrompt:
    """Renders a conversation with images and builds the model's inputs with its processor."""

    def __init__(self, processor: Any, kind: str) -> None:
        self.processor = processor
        self.kind = kind
        self.phi_tags = kind in PHI_TAG_TYPES

    def render(self, messages: Sequence[Message]) -> str:
        if self.phi_tags or not getattr(self.processor, "chat_template", None):
            return phi_format(messages)
        chat = [{"role": m.role, "content": m.parts()} for m in messages]
        return str(self.processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))

    def inputs(self, messages: Sequence[Message], prompt: str, num_crops: int | None = None) -> Any:
        """The processor's output for this prompt and the conversation's images, in tag order."""
        images = [open_image(ref) for ref in images_in_order(messages)]
        kwargs: dict[str, Any] = {"return_tensors": "pt"}
        if num_crops is not None and self.phi_tags:
            self.processor.image_processor.num_crops = num_crops  # Phi-3/3.5-vision: read per call
        if self.phi_tags:  # the remote-code processor takes (prompt, images) positionally
            return self.processor(prompt, images or None, **kwargs)
        if images:
            kwargs["images"] = images
        return self.processor(text=prompt, add_special_tokens=False, **kwargs)

    def count(self, messages: Sequence[Message]) -> int:
        """Prompt tokens with every image's tokens, as the processor expands them."""
        return int(self.inputs(messages, self.render(messages))["input_ids"].shape[-1])
