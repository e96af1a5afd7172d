"""Automatic checks of an answer against what its item expects: exact, contains, regex, number, choice,
json (valid against the item's schema). Each says whether the answer passes, and in a few words why."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import regex

from .sets import EvalItem

CHECKED_CHARS = 20_000  # of an answer: a check never reads more
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
REGEX_TIMEOUT_S = 0.5  # an item's pattern on one answer (the `regex` module stops it there)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "detail": self.detail}


def check(item: EvalItem, answer: str) -> Verdict | None:
    """The item's check on this answer; None when the item has none (only a judge can grade it)."""
    if item.check is None:
        return None
    return CHECKERS[item.check](item, answer[:CHECKED_CHARS])


def _normal(text: str) -> str:
    """Case, width and surrounding punctuation set aside (so "Paris." equals "paris")."""
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    return text.strip(" \t\n.!?。！？\"'`*")


def _expected(item: EvalItem) -> list[str]:
    value = item.expected
    if isinstance(value, list):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]


def _exact(item: EvalItem, answer: str) -> Verdict:
    wanted = _expected(item)
    ok = _normal(answer) in {_normal(w) for w in wanted}
    return Verdict(ok, "" if ok else f"expected exactly {' or '.join(map(repr, wanted))}")


def _contains(item: EvalItem, answer: str) -> Verdict:
    wanted = _expected(item)
    found = next((w for w in wanted if _normal(w) in _normal(answer)), None)
    return Verdict(
        found is not None, "" if found is not None else f"does not contain {' or '.join(map(repr, wanted))}"
    )


def _regex(item: EvalItem, answer: str) -> Verdict:
    """The item's pattern found in the answer (Python's syntax, a line at a time for ^ and $), within
    REGEX_TIMEOUT_S: an uploaded set's pattern that backtracks for ever fails its item, never hangs."""
    pattern = _expected(item)[0]
    try:
        matched = regex.search(pattern, answer.strip(), regex.M, timeout=REGEX_TIMEOUT_S) is not None
    except regex.error as exc:
        return Verdict(False, f"the item's pattern is not a regular expression: {exc}")
    except TimeoutError:
        return Verdict(
            False,
            f"the item's pattern took over {REGEX_TIMEOUT_S:g} s on this answer (it backtracks): simplify it",
        )
    return Verdict(matched, "" if matched else f"does not match {pattern!r}")


def _number(item: EvalItem, answer: str) -> Verdict:
    assert isinstance(item.expected, int | float)
    numbers = _NUMBER.findall(answer.replace("\u2212", "-"))
    if not numbers:
        return Verdict(False, "no number in the answer")
    said = numbers[-1]  # the last: an answer often says the question's numbers before its result
    ok = abs(float(said.replace(",", ".")) - float(item.expected)) <= max(item.tolerance, 1e-9)
    return Verdict(ok, "" if ok else f"{said} is not {item.expected:g}")


def _choice(item: EvalItem, answer: str) -> Verdict:
    """The right option named, and no other (a word of its own: "B" in "B) eagle", not in "Bob")."""
    right = _expected(item)[0]
    named = [
        c for c in item.choices or () if re.search(rf"(?<!\w){re.escape(_normal(c))}(?!\w)", _normal(answer))
    ]
    if named == [c for c in item.choices or () if _normal(c) == _normal(right)]:
        return Verdict(True)
    if not named:
        return Verdict(False, f"names none of {', '.join(item.choices or ())}")
    return Verdict(False, f"names {', '.join(named)}; expected {right}")


def _json(item: EvalItem, answer: str) -> Verdict:
    value, problem = parse_json(answer)
    if problem:
        return Verdict(False, problem)
    return schema_verdict(value, item.schema_ or {}, "the item's schema")


def schema_verdict(
    value: object, schema: dict[str, object], whose: str = "the schema", *, linear: bool = False
) -> Verdict:
    """Whether a JSON value holds to a schema, and where it first does not (structured output too).
    `linear`: the schema's `pattern` keywords are matched by an automaton (grammar.py), never by
    backtracking, for a schema a visitor typed."""
    import jsonschema

    try:
        if linear:
            _linear_validator(schema).validate(value)
        else:
            jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the value"
        return Verdict(False, f"{where}: {exc.message}")
    except jsonschema.SchemaError as exc:
        return Verdict(False, f"{whose} is not valid: {exc.message}")
    return Verdict(True)


def _linear_validator(schema: dict[str, object]) -> Any:
    """A Draft 2020-12 validator whose `pattern` keyword is matched in linear time."""
    import jsonschema

    from ..grammar import json_string_matches

    def pattern(validator: Any, value: str, instance: object, _: object) -> Any:
        if isinstance(instance, str) and not json_string_matches(value, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {value!r}")

    kind = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": pattern})
    kind.check_schema(schema)
    return kind(schema)


def parse_json(answer: str) -> tuple[object, str]:
    """The JSON value an answer holds (in a code fence, or from its first bracket), or why not."""
    fenced = _FENCE.search(answer)
    text = fenced.group(1) if fenced else answer
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None, "no JSON object or list in the answer"
    try:
        value, _ = json.JSONDecoder().raw_decode(text[min(starts) :])
    except ValueError as exc:
        return None, f"not valid JSON: {exc.args[0] if exc.args else exc}"
    return value, ""


CHECKERS: dict[str, Callable[[EvalItem, str], Verdict]] = {
    "exact": _exact,
    "contains": _contains,
    "regex": _regex,
    "number": _number,
    "choice": _choice,
    "json": _json,
}
