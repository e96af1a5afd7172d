"""What each Space hardware gets: Python, torch, extra packages, and the hub model preloaded at build time.

Sources (checked 2026-11): the Spaces configuration reference (python_version, suggested_hardware,
preload_from_hub: "repo" or "repo file1,file2", saved in the default huggingface_hub cache) at
https://huggingface.co/docs/hub/spaces-config-reference; ZeroGPU (Gradio SDK only, `spaces.GPU`, the torch
and Python versions it takes) at https://huggingface.co/docs/hub/spaces-zerogpu; the hardware names are
huggingface_hub's `SpaceHardware` values (`cpu-basic`, `zero-a10g`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent.parent

# Phi-3.5-mini int4 for ONNX Runtime GenAI on CPU: the files of the catalog's subfolder the engine reads.
PHI35_ONNX_SUBFOLDER = "cpu_and_mobile/cpu-int4-awq-block-128-acc-level-4"
PHI35_ONNX_FILES = (
    "phi-3.5-mini-instruct-cpu-int4-awq-block-128-acc-level-4.onnx",
    "phi-3.5-mini-instruct-cpu-int4-awq-block-128-acc-level-4.onnx.data",
    "genai_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


@dataclass(frozen=True)
class Hardware:
    """One Space hardware flavour and what the assembled Space installs and preloads for it."""

    flavor: str  # suggested_hardware (huggingface_hub.SpaceHardware value)
    python: str  # python_version
    model: str  # the playground id of the default hub model for this hardware
    repo: str  # its hub repository
    files: tuple[str, ...] = ()  # the files to preload (empty: the whole repository)
    torch: str | None = None  # torch pin; None: the Makefile's (our CPU pin)
    extra: tuple[str, ...] = ()  # requirement lines added for this hardware
    note: str = ""

    def preload(self) -> str:
        """The `preload_from_hub` item: `repo` or `repo file1,file2`."""
        return f"{self.repo} {','.join(self.files)}" if self.files else self.repo


HARDWARE: dict[str, Hardware] = {
    "cpu-basic": Hardware(
        flavor="cpu-basic",
        python="3.11",  # the project's own version (pyproject: requires-python >= 3.11)
        model="phi-3.5-mini@onnx",
        repo="microsoft/Phi-3.5-mini-instruct-onnx",
        files=tuple(f"{PHI35_ONNX_SUBFOLDER}/{name}" for name in PHI35_ONNX_FILES),
        note="2 vCPU, 16 GB: the embedded SmolLM2 and Phi-3.5-mini int4 on ONNX Runtime GenAI",
    ),
    "zero-a10g": Hardware(
        flavor="zero-a10g",
        python="3.12",  # ZeroGPU takes Python 3.10 or 3.12; the playground needs 3.11+
        model="phi-4-mini@transformers",
        repo="microsoft/Phi-4-mini-instruct",
        torch="torch==2.8.0",  # a version ZeroGPU lists as supported (2.8-2.11 are)
        extra=("spaces==0.51.3",),
        note="ZeroGPU: Phi-4-mini on transformers, on a GPU slice lent per answer (spaces.GPU)",
    ),
}


def hardware(name: str) -> Hardware:
    try:
        return HARDWARE[name]
    except KeyError:
        raise ConfigError(f"Unknown Space hardware {name!r}: use one of {', '.join(HARDWARE)}.") from None


def _pin(text: str, pattern: str, what: str, where: Path) -> str:
    match = re.search(pattern, text, flags=re.MULTILINE)
    if match is None:
        raise ConfigError(f"Cannot find {what} in {where}: the Space needs it pinned there.")
    return match.group(1)


def gradio_version(requirements: Path = ROOT / "requirements.txt") -> str:
    """The exact Gradio pin of requirements.txt (the card's sdk_version must equal it)."""
    return _pin(
        requirements.read_text(encoding="utf-8"),
        r"^gradio(?:\[[^\]]*\])?==([\w.]+)",
        "gradio==",
        requirements,
    )


def makefile_pin(package: str, makefile: Path = ROOT / "Makefile") -> str:
    """The version the Makefile installs for a package (`pip install ... package==X`)."""
    return _pin(
        makefile.read_text(encoding="utf-8"), rf"{re.escape(package)}==([\w.+]+)", f"{package}==", makefile
    )


def requirements(kind: Hardware, source: Path = ROOT / "requirements.txt") -> str:
    """requirements.txt for the Space: ours, with torch pinned for the hardware and its extras added."""
    torch = kind.torch or f"torch=={makefile_pin('torch')}"
    lines = [
        f"# Written by `python -m playground space --hardware {kind.flavor}`; edit requirements.txt instead."
    ]
    for line in source.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lines.append(torch if re.match(r"torch\b", stripped) else stripped)
    lines.extend(kind.extra)
    return "\n".join(lines) + "\n"
