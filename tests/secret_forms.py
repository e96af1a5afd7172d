"""The forms a leaked secret may take in a page, a payload or a log: itself, URL-encoded, base64."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus


def base64_forms(value: str) -> set[str]:
    """The value's base64 as it appears inside a longer encoded string, at each of the 3 alignments
    (standard and URL-safe alphabets): the encoded characters that depend on the value alone."""
    found = set()
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + value.encode()).decode().rstrip("=")
        middle = encoded[4 if pad else 0 : -4]
        found |= {middle, middle.replace("+", "-").replace("/", "_")}
    return found


def secret_forms(value: str, core: str | None = None) -> dict[str, str]:
    """What to look for, by a label for a failure message. `core`: a distinctive part of the value, found
    inside any escaping of the whole (JSON's "\\/", HTML entities)."""
    found = {"value": value, "url-encoded": quote(value, safe=""), "form-encoded": quote_plus(value)}
    if core:
        found["core"] = core
    for i, form in enumerate(sorted(base64_forms(value) | (base64_forms(core) if core else set()))):
        found[f"base64 #{i}"] = form
    return found


def leaked(secrets: dict[str, str], places: dict[str, str], cores: dict[str, str] | None = None) -> list[str]:
    """'NAME (form) in PLACE' for each secret (name -> value) found in a place (label -> text)."""
    return [
        f"{name} ({label}) in {place}"
        for name, value in secrets.items()
        for label, form in secret_forms(value, (cores or {}).get(name)).items()
        for place, text in places.items()
        if form in text
    ]
