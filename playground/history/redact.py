"""Keep secrets out of the history: parameters never carry a key, a token or a password."""

from __future__ import annotations

import re
from collections.abc import Mapping

_SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "bearer",
        "cookie",
    }
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def is_secret_name(name: str) -> bool:
    """True for names like api_key, hf_token, apiKey, client-secret (but not max_new_tokens)."""
    words = [w.lower() for w in _WORD.findall(name)]
    joined = "".join(words)
    return any(w in _SECRET_WORDS for w in words) or joined in _SECRET_WORDS


def clean_parameters(parameters: Mapping[str, object] | None) -> dict[str, object]:
    """A copy without any entry whose name looks like a credential, at any depth."""
    return {str(k): _clean(v) for k, v in (parameters or {}).items() if not is_secret_name(str(k))}


def _clean(value: object) -> object:
    if isinstance(value, Mapping):
        return clean_parameters(value)
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
