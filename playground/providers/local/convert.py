"""Conversions: a GGUF file to a plain transformers folder, and a folder to an ONNX Runtime GenAI model.

Both are cached: a finished output folder is reused, and outputs appear atomically (built in a
temporary folder beside the target, then renamed), so a killed conversion leaves nothing half-made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from ...errors import ConversionError

Progress = Callable[[float, str], None]

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path.resolve(), threading.Lock())


def _report(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


def _publish(tmp: Path, out: Path) -> Path:
    """Move a finished temporary folder into place, unless another process got there first."""
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not out.is_dir():
            raise
    return out


def gguf_to_folder(gguf_file: Path, out: Path, progress: Progress | None = None) -> Path:
    """Dequantise a GGUF file with transformers and save a normal folder (safetensors + tokenizer).

    transformers refuses save_pretrained on a model loaded from GGUF, so the model is rebuilt from its
    config (without quantization_config) and state dict.
    """
    if (out / "config.json").is_file():
        return out
    with _lock_for(out):
        if (out / "config.json").is_file():
            return out
        _report(progress, 0.05, f"Reading {gguf_file.name} (dequantising)")
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            folder, name = str(gguf_file.parent), gguf_file.name
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
            config = loaded.config.to_dict()
            config.pop("quantization_config", None)
            config["architectures"] = [type(loaded).__name__]
            rebuilt = type(loaded)(type(loaded.config).from_dict(config))
            rebuilt.load_state_dict(loaded.state_dict())
            _report(progress, 0.5, "Saving a transformers folder")
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out.parent))
            rebuilt.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        except Exception as exc:  # transformers raises many kinds; all mean "cannot read this file"
            raise ConversionError(f"Could not read {gguf_file}: {exc}") from exc
        return _publish(tmp, out)


def convert_to_onnx(
    src: Path, out: Path, *, precision: str = "int4", progress: Progress | None = None
) -> Path:
    """Convert a local Hugging Face folder or GGUF file to an ONNX Runtime GenAI CPU model."""
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if (out / "genai_config.json").is_file():
        _report(progress, 1.0, f"Already converted: {out}")
        return out
    if not src.exists():
        raise ConversionError(f"Nothing to convert at {src}: give a model folder or a .gguf file.")
    if src.is_file() and src.suffix == ".gguf":
        src = gguf_to_folder(src, out.parent / f".{out.name}-hf", progress=progress)
    elif not (src / "config.json").is_file():
        raise ConversionError(f"{src} is not a Hugging Face model folder (no config.json).")
    _ensure_architectures(src)
    with _lock_for(out):
        if (out / "genai_config.json").is_file():
            return out
        _report(progress, 0.6, f"Building an ONNX Runtime GenAI {precision} model")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out.parent))
        _run_builder(src, tmp, precision)
        _report(progress, 1.0, f"Converted to {out}")
        return _publish(tmp, out)


def _ensure_architectures(folder: Path) -> None:
    """The builder dispatches on config.architectures; GGUF-derived configs may lack it."""
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    if config.get("architectures"):
        return
    raise ConversionError(f"{config_path} names no architecture; the ONNX builder needs one.")


def _run_builder(src: Path, out: Path, precision: str) -> None:
    cache = out / ".builder-cache"
    cmd = [
        sys.executable,
        "-m",
        "onnxruntime_genai.models.builder",
        "-i",
        str(src),
        "-o",
        str(out),
        "-p",
        precision,
        "-e",
        "cpu",
        "-c",
        str(cache),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    shutil.rmtree(cache, ignore_errors=True)
    if result.returncode != 0 or not (out / "genai_config.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ConversionError(
            f"The ONNX Runtime GenAI builder failed on {src}: {' / '.join(tail) or 'no output'}"
        )
