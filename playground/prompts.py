"""System prompt presets and example prompts, kept as files under prompts/."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


@dataclass(frozen=True)
class PromptLibrary:
    system: dict[str, str] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


def load_prompts(folder: Path = PROMPTS_DIR) -> PromptLibrary:
    """System prompts from prompts/system/*.md (title = first line), examples from examples.toml."""
    system: dict[str, str] = {}
    for path in sorted((folder / "system").glob("*.md")):
        title, _, body = path.read_text(encoding="utf-8").partition("\n")
        system[title.lstrip("# ").strip()] = body.strip()
    examples: list[str] = []
    examples_file = folder / "examples.toml"
    if examples_file.is_file():
        examples = list(tomllib.loads(examples_file.read_text(encoding="utf-8")).get("examples", []))
    return PromptLibrary(system, examples)
