"""The arena's prompt library: prompts/arena/*.toml, one category a file.

A file holds `title`, `description` and `[[prompts]]` tables with `text` and `lang` (a BCP 47 tag,
"en" or "zh" for the bilingual set). A prompt file for `compare --prompts` is such a TOML file, a JSON
lines file ({"text": ...} or a string a line) or plain text (one prompt a line; blank lines and lines
starting with # skipped).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..prompts import PROMPTS_DIR

ARENA_DIR = PROMPTS_DIR / "arena"


@dataclass(frozen=True)
class ArenaPrompt:
    text: str
    lang: str = "en"


@dataclass(frozen=True)
class PromptSet:
    key: str  # the file's stem
    title: str
    description: str
    prompts: tuple[ArenaPrompt, ...]

    def languages(self) -> list[str]:
        return sorted({p.lang for p in self.prompts})


def load_arena_prompts(folder: Path = ARENA_DIR) -> dict[str, PromptSet]:
    """Every category of the library, by key, in file-name order."""
    return {path.stem: _read_toml(path) for path in sorted(folder.glob("*.toml"))}


def _read_toml(path: Path) -> PromptSet:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The prompt file {path} is not valid TOML ({exc}): fix it.") from None
    prompts = []
    for i, entry in enumerate(data.get("prompts", [])):
        text = entry.get("text") if isinstance(entry, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f'{path}: prompt {i + 1} has no text: give each [[prompts]] a text = "...".')
        prompts.append(ArenaPrompt(text.strip(), str(entry.get("lang", "en"))))
    return PromptSet(
        path.stem, str(data.get("title", path.stem)), str(data.get("description", "")), tuple(prompts)
    )


def read_prompt_file(path: Path) -> list[ArenaPrompt]:
    """The prompts of a file given to `compare --prompts` (TOML, JSON lines or plain text)."""
    if path.suffix == ".toml":
        return list(_read_toml(path).prompts)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"The prompt file {path} is not UTF-8 text: save it as UTF-8.") from None
    prompts = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if path.suffix == ".jsonl":
            try:
                value = json.loads(line)
            except ValueError:
                raise ConfigError(
                    f'{path}:{number} is not JSON: one prompt a line, a string or {{"text": ...}}.'
                ) from None
            if isinstance(value, dict):
                value = value.get("text")
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{path}:{number} has no prompt text.")
            line = value.strip()
        prompts.append(ArenaPrompt(line))
    if not prompts:
        raise ConfigError(f"The prompt file {path} has no prompts: one a line.")
    return prompts
