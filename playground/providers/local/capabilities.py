"""What each local engine can do, and what one model folder can: a spec claims the catalog's
capabilities intersected with these, so no engine claims an image it would drop.

- ONNX Runtime GenAI takes images where the package has the multimodal processor and the folder's
  genai_config.json has a `vision` section (the published Phi-3/3.5-vision builds); text builds do not.
- transformers takes images where the folder is a vision model with a processor (hf_vision); some need
  a package the CPU set-up lacks (Phi-4-multimodal: torchvision), named by the catalog's `requires`.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

from ...types import Capability, ModelSpec
from .hf_vision import is_vision_folder

TEXT = frozenset({Capability.CHAT})

# Why a package is needed, where it is not obvious (catalog `requires` names the package).
_WHY = {"torchvision": "its image processor uses torchvision, which the CPU torch set-up does not install"}


def narrow(spec: ModelSpec, engine: frozenset[Capability]) -> ModelSpec:
    """The spec claiming only what both the model and the engine can do (chat always)."""
    kept = (spec.capabilities & engine) | TEXT
    return spec if kept == spec.capabilities else replace(spec, capabilities=kept)


def onnx_has_multimodal() -> bool:
    try:
        import onnxruntime_genai as og
    except ImportError:
        return False
    return hasattr(og.Model, "create_multimodal_processor") and hasattr(og, "Images")


def genai_model(folder: Path) -> dict[str, object]:
    """The `model` section of an ONNX Runtime GenAI folder's genai_config.json ({} when unreadable)."""
    try:
        data = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, dict) else {}


def genai_vision(folder: Path) -> bool:
    """Whether an ONNX Runtime GenAI folder has a vision model (a `vision` section in genai_config.json)."""
    return isinstance(genai_model(folder).get("vision"), dict)


def onnx_capabilities(folder: Path | None = None) -> frozenset[Capability]:
    """The engine's (folder None: any build it may load) or one folder's."""
    vision = onnx_has_multimodal() and (folder is None or genai_vision(folder))
    return TEXT | ({Capability.VISION} if vision else set())


def transformers_capabilities(path: Path | None = None) -> frozenset[Capability]:
    """The engine's (path None) or one folder's: vision only for a vision folder, never for a GGUF file."""
    if path is None:
        return frozenset({Capability.CHAT, Capability.VISION, Capability.MOE})
    if path.is_dir() and is_vision_folder(path):
        return TEXT | {Capability.VISION}
    return TEXT


def required_missing(spec: ModelSpec) -> str:
    """'needs X (why): pip install X' for the first package the model's source requires that is missing."""
    required = spec.extra.get("requires", ())
    for package in required if isinstance(required, list | tuple) else ():
        name = str(package)
        if importlib.util.find_spec(name) is None:
            why = f" ({_WHY[name]})" if name in _WHY else ""
            return f"needs {name}{why}: pip install {name} (a build matching your torch)"
    return ""
