"""Structured output: an answer held to JSON, a JSON schema or a regular expression while it is written.

`ResponseFormat` travels in the generation options to every engine that can apply it: ONNX Runtime
GenAI (`GeneratorParams.set_guidance`, llguidance inside), transformers (llguidance's token masks, a
logits processor), OpenAI-compatible servers (`response_format`; a server that ignores it answers as it
likes, and the check below says so). Whatever applied it, the answer is checked afterwards
(`ResponseFormat.check`): valid, or the first thing that is not.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from . import grammar
from .evaluate.checks import Verdict, schema_verdict

MAX_SCHEMA_CHARS = 20_000  # a schema typed in the page or given to the CLI
MAX_PATTERN_CHARS = 2_000
ANY_OBJECT = '{"type": "object"}'


class ResponseFormat(BaseModel):
    """`json`: any JSON object; `json_schema`: one that holds to `schema` (JSON text); `regex`: text that
    matches `pattern` whole."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["json", "json_schema", "regex"]
    schema_text: str = ""
    pattern: str = ""

    @field_validator("schema_text", "pattern")
    @classmethod
    def _bounded(cls, value: str) -> str:
        if len(value) > MAX_SCHEMA_CHARS:
            raise ValueError(f"is longer than {MAX_SCHEMA_CHARS:,} characters")
        return value

    @model_validator(mode="after")
    def _valid(self) -> ResponseFormat:
        if self.kind == "json_schema":
            _check_schema(self.schema_text)
        elif self.kind == "regex":
            if not self.pattern or len(self.pattern) > MAX_PATTERN_CHARS:
                raise ValueError(
                    f"a regex response format needs a pattern of 1 to {MAX_PATTERN_CHARS} characters"
                )
            problem = grammar.regex_problem(self.pattern)  # the engines' dialect (Rust's regex)
            if problem:
                raise ValueError(f"the pattern is not a regular expression the engines take: {problem}")
        return self

    @property
    def schema_object(self) -> dict[str, Any]:
        return dict(json.loads(self.schema_text or ANY_OBJECT))

    def guidance(self) -> tuple[str, str]:
        """(kind, data) as llguidance and ONNX Runtime GenAI's set_guidance take them. JSON is written
        compact (llguidance's `x-guidance` option, unless the schema sets its own): with free whitespace
        a small model can fill its whole answer with newlines and never close the object."""
        if self.kind == "regex":
            return "regex", self.pattern
        schema = self.schema_object
        schema.setdefault("x-guidance", {"whitespace_flexible": False})
        return "json_schema", json.dumps(schema)

    def openai(self) -> dict[str, Any] | None:
        """OpenAI's `response_format` for this (None for a regex: the API has no such format)."""
        if self.kind == "regex":
            return None
        if self.kind == "json" and not self.schema_text:
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": self.schema_object, "strict": True},
        }

    def check(self, answer: str) -> Verdict:
        """Whether the whole answer holds to the format, and the first thing that does not."""
        text = answer.strip()
        if self.kind == "regex":
            stop = grammar.mismatch(self.pattern, text)  # an automaton, linear: a typed pattern cannot hang
            if stop is None:
                return Verdict(True)
            return Verdict(False, f"does not match {self.pattern!r} as a whole (from character {stop})")
        try:
            value = json.loads(text)
        except ValueError as exc:
            return Verdict(False, f"not valid JSON: {exc.args[0] if exc.args else exc}")
        if self.kind == "json" and not isinstance(value, dict):
            return Verdict(False, "valid JSON, but not an object")
        return schema_verdict(value, self.schema_object, linear=True)

    def describe(self, verdict: Verdict) -> str:
        """The check in a sentence for the page and the CLI."""
        what = {"json": "a JSON object", "json_schema": "the JSON schema", "regex": "the pattern"}[self.kind]
        if verdict.passed:
            return f"✓ The answer holds to {what}."
        return f"✗ The answer does not hold to {what}: {verdict.detail}."


def _check_schema(text: str) -> None:
    import jsonschema

    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the schema is not valid JSON: {exc.args[0] if exc.args else exc}") from None
    if not isinstance(schema, dict):
        raise ValueError("the schema must be a JSON object")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"the schema is not a valid JSON schema: {exc.message}") from None
    if "$ref" in text and any(
        isinstance(v, str) and not v.startswith("#") for v in _refs(schema)
    ):  # a remote $ref would make the server fetch it
        raise ValueError("the schema may only refer to its own parts ($ref starting with #)")
    problem = grammar.schema_problem(schema)  # what the engines cannot hold an answer to
    if problem:
        raise ValueError(f"the engines cannot hold an answer to this schema: {problem}")


def _refs(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == "$ref"] + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


FORMATS_FILE = Path(__file__).resolve().parent.parent / "prompts" / "formats.toml"
KINDS = {"Text": None, "JSON": "json", "JSON schema": "json_schema", "Regex": "regex"}  # the page's choices


def load_examples(path: Path = FORMATS_FILE) -> dict[str, ResponseFormat]:
    """prompts/formats.toml's examples by title (a broken entry is skipped: the file is the project's)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    examples = {}
    for entry in data.get("formats", []):
        spec = str(entry.get("spec", "")).strip()
        kind = entry.get("kind")
        try:
            examples[str(entry["title"])] = from_choice(str(kind), spec, by_kind=True)
        except (KeyError, ValueError):
            continue
    return {k: v for k, v in examples.items() if v is not None}


def from_choice(choice: str, spec: str, *, by_kind: bool = False) -> ResponseFormat | None:
    """The page's control (a KINDS label and the schema or pattern typed) as a format; None: plain text.
    ValueError (pydantic's) says what is wrong."""
    kind = choice if by_kind else KINDS.get(choice)
    if not kind:
        return None
    if kind == "regex":
        return ResponseFormat(kind="regex", pattern=spec.strip())
    return ResponseFormat(kind=kind, schema_text=spec.strip())  # type: ignore[arg-type]


def label_of(fmt: ResponseFormat) -> str:
    return next(label for label, kind in KINDS.items() if kind == fmt.kind)
