"""llguidance in this process: whether a pattern or a schema compiles, and text matched in linear time.

The local engines constrain answers with llguidance (ONNX Runtime GenAI has it built in; transformers
through a logits processor), so a regular expression here has its dialect (Rust's `regex`: no
look-around, no back-references) and is matched by an automaton, never by backtracking: a pattern a
visitor types cannot make a check run for minutes. Text is fed to a matcher byte by byte (a tokenizer
whose tokens are the 256 bytes).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

EOS = 256  # the byte tokenizer's end token


class _Bytes:
    """What llguidance's TokenizerWrapper reads: one token per byte, and an end token."""

    def __init__(self) -> None:
        self.eos_token_id = EOS
        self.bos_token_id = None
        self.tokens = [bytes([i]) for i in range(256)] + [b""]
        self.special_token_ids = [EOS]

    def __call__(self, text: str | bytes) -> list[int]:
        return list(text if isinstance(text, bytes) else text.encode("utf-8"))


@functools.cache
def _tokenizer() -> Any:
    import llguidance

    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Bytes()))


def _problem(grammar: str) -> str:
    """llguidance's own message for a grammar it cannot build ("" when it can), on one line."""
    from llguidance import LLMatcher

    problem = LLMatcher.validate_grammar(grammar, _tokenizer())
    return _first_lines(problem) if problem else ""


def _first_lines(message: str) -> str:
    """llguidance's message without the grammar listing it appends (`   1 | start: ...`)."""
    kept = [line.strip() for line in message.splitlines() if line.strip() and "|" not in line[:8]]
    text = " ".join(line for line in kept if not set(line) <= {"^", " "})
    return re.sub(r"^at \d+\(\d+\): ", "", text)


def regex_grammar(pattern: str) -> str:
    from llguidance import LLMatcher

    return str(LLMatcher.grammar_from_regex(pattern))


def schema_grammar(schema: Mapping[str, Any]) -> str:
    from llguidance import LLMatcher

    return str(LLMatcher.grammar_from_json_schema(json.dumps(schema)))


def regex_problem(pattern: str) -> str:
    """Why the engines cannot use this regular expression ("" when they can)."""
    return _problem(regex_grammar(pattern))


def schema_problem(schema: Mapping[str, Any]) -> str:
    """Why the local engines cannot hold an answer to this JSON schema ("" when they can)."""
    try:
        grammar = schema_grammar(schema)
    except ValueError as exc:
        return str(exc)
    return _problem(grammar)


def mismatch(pattern: str, text: str) -> int | None:
    """None when the whole of `text` matches `pattern`; else where it stops matching: the index of the
    first character that cannot follow, or len(text) when the text ends before the pattern does."""
    return _mismatch(regex_grammar(pattern), text)


@functools.lru_cache(maxsize=64)
def _json_string_grammar(pattern: str) -> str:
    return schema_grammar({"type": "string", "pattern": pattern})


def json_string_matches(pattern: str, value: str) -> bool:
    """A JSON schema's `pattern` keyword on a string (found anywhere in it, as the keyword means),
    matched in linear time."""
    return _mismatch(_json_string_grammar(pattern), json.dumps(value, ensure_ascii=False)) is None


def _mismatch(grammar: str, text: str) -> int | None:
    from llguidance import LLMatcher

    matcher = LLMatcher(_tokenizer(), grammar, log_level=0)
    if matcher.is_error():
        raise ValueError(_first_lines(matcher.get_error()))
    data = list(text.encode("utf-8"))
    taken = matcher.validate_tokens(data)
    if taken < len(data):
        return len(bytes(data[:taken]).decode("utf-8", errors="ignore"))
    matcher.consume_tokens(data)
    return None if matcher.is_accepting() else len(text)
