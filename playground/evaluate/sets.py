"""Prompt sets: the bundled ones in prompts/eval/, and a visitor's own, uploaded as JSONL or CSV.

Each item is a prompt, with optionally a system prompt, what a right answer holds (`expected`), how it
is checked (`check`: exact, contains, regex, number, choice, json), a JSON schema (for `json`), the
options of a multiple choice (`choices`), a tolerance (for `number`), a category and where it came
from (`source`). A bad line is refused with its line number and what is wrong with it, every bad line
at once, before anything runs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InvalidOptionsError

SETS_DIR = Path(__file__).resolve().parents[2] / "prompts" / "eval"
CHECKS = ("exact", "contains", "regex", "number", "choice", "json")
MAX_ITEMS = 2000  # in one set, uploaded or bundled
MAX_PROMPT_CHARS = 20_000
SHOWN_PROBLEMS = 10  # bad lines named in one message


class EvalItem(BaseModel):
    """One prompt of a set, validated (as it is stored with a run and in a card)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    system: str = Field("", max_length=MAX_PROMPT_CHARS)
    expected: str | float | list[str] | None = None
    check: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    choices: list[str] | None = None
    tolerance: float = Field(0.0, ge=0)
    category: str = Field("", max_length=200)
    source: str = Field("", max_length=1000)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty")
        return value

    @model_validator(mode="after")
    def _check_fits(self) -> EvalItem:
        if self.check is None:
            return self
        if self.check not in CHECKS:
            raise ValueError(f"check must be one of {', '.join(CHECKS)}, not {self.check!r}")
        if self.check == "json" and self.schema_ is None:
            raise ValueError("a json check needs a schema")
        if self.check == "choice" and not self.choices:
            raise ValueError("a choice check needs its choices")
        if self.check not in ("json",) and self.expected in (None, "", []):
            raise ValueError(f"a {self.check} check needs what is expected")
        if self.check == "number" and not isinstance(self.expected, int | float):
            raise ValueError("a number check needs a number as expected")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_defaults=True)


@dataclass(frozen=True)
class PromptSet:
    name: str
    items: tuple[EvalItem, ...]
    origin: str = ""  # a bundled file's name, or "uploaded"
    categories: tuple[str, ...] = field(default=())

    @property
    def digest(self) -> str:
        """The set's hash (its items as stored): a card says which set it ran, exactly."""
        text = json.dumps([i.to_dict() for i in self.items], sort_keys=True, ensure_ascii=False)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def bundled() -> dict[str, Path]:
    """The bundled sets by name (file stem), in order."""
    return {path.stem: path for path in sorted(SETS_DIR.glob("*.jsonl"))}


def load(name_or_path: str) -> PromptSet:
    """A bundled set by name, or a JSONL/CSV file on this machine (the CLI)."""
    sets = bundled()
    if name_or_path in sets:
        path = sets[name_or_path]
        return parse(path.read_text(encoding="utf-8"), name=path.stem, kind="jsonl", origin=path.name)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise InvalidOptionsError(
            f"No prompt set {name_or_path!r}: name a bundled one ({', '.join(sets)}) or a .jsonl/.csv file."
        )
    kind = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    return parse(
        path.read_text(encoding="utf-8", errors="replace"), name=path.stem, kind=kind, origin=path.name
    )


def parse(text: str, *, name: str, kind: str = "jsonl", origin: str = "uploaded") -> PromptSet:
    """Items from JSONL (one object a line) or CSV (a header row); every bad line said at once."""
    rows = _jsonl_rows(text) if kind == "jsonl" else _csv_rows(text)
    items: list[EvalItem] = []
    problems: list[str] = []
    for line, row in rows:
        if isinstance(row, str):
            problems.append(f"line {line}: {row}")
            continue
        try:
            items.append(EvalItem.model_validate(row))
        except ValidationError as exc:
            problems.append(f"line {line}: {_said(exc)}")
    if problems:
        more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
        raise InvalidOptionsError(
            f"The prompt set {name!r} has {len(problems)} bad line(s): "
            + "; ".join(problems[:SHOWN_PROBLEMS])
            + more
            + ". Each line needs a `prompt`; see docs/evaluate.md for the fields."
        )
    if not items:
        raise InvalidOptionsError(f"The prompt set {name!r} has no items.")
    if len(items) > MAX_ITEMS:
        raise InvalidOptionsError(f"The prompt set {name!r} has {len(items)} items; at most {MAX_ITEMS}.")
    categories = tuple(dict.fromkeys(i.category for i in items if i.category))
    return PromptSet(name, tuple(items), origin, categories)


def _jsonl_rows(text: str) -> list[tuple[int, dict[str, Any] | str]]:
    rows: list[tuple[int, dict[str, Any] | str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            rows.append((number, f"not JSON ({exc.args[0] if exc.args else exc})"))
            continue
        rows.append((number, value if isinstance(value, dict) else "not a JSON object"))
    return rows


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any] | str]]:
    """CSV with a header: prompt, system, expected, check, schema (JSON text), choices (a|b|c),
    tolerance, category, source; empty cells are left out."""
    rows: list[tuple[int, dict[str, Any] | str]] = []
    reader = csv.DictReader(io.StringIO(text))
    for number, row in enumerate(reader, 2):
        values: dict[str, Any] = {k.strip(): v for k, v in row.items() if k and v not in (None, "")}
        try:
            if "schema" in values:
                values["schema"] = json.loads(values["schema"])
            if "choices" in values:
                values["choices"] = [c.strip() for c in str(values["choices"]).split("|")]
            if values.get("check") == "number" and "expected" in values:
                values["expected"] = float(values["expected"])
        except ValueError as exc:
            rows.append((number, f"a cell cannot be read ({exc})"))
            continue
        rows.append((number, values))
    return rows


def _said(exc: ValidationError) -> str:
    """A validation error in a few words: which field, what is wrong."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"] if p != "__root__")
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
