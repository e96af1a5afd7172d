"""The endpoints file (PLAYGROUND_ENDPOINTS): further OpenAI-compatible servers, as TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from ...errors import ConfigError
from .endpoint import EndpointSpec


def load_endpoints(path: Path) -> list[EndpointSpec]:
    """Read and validate the endpoints file; ConfigError names the file, the entry and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"PLAYGROUND_ENDPOINTS names {path}, which does not exist.") from None
    except OSError as exc:
        raise ConfigError(f"PLAYGROUND_ENDPOINTS: cannot read {path}: {exc.strerror}.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"PLAYGROUND_ENDPOINTS names {path}, which is not a text file (byte {exc.start} is not UTF-8): "
            "point it at the TOML endpoints file (format in docs/providers.md)."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from None
    unknown = sorted(set(data) - {"endpoints"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key(s) {', '.join(unknown)}; expected [[endpoints]] tables."
        )
    raw = data.get("endpoints", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: `endpoints` must be an array of tables ([[endpoints]]).")
    endpoints = [_entry(path, number, item) for number, item in enumerate(raw, start=1)]
    names = [e.name for e in endpoints]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{path}: endpoint name(s) used twice: {', '.join(duplicates)}.")
    return endpoints


def _entry(path: Path, number: int, item: object) -> EndpointSpec:
    if not isinstance(item, dict):
        raise ConfigError(f"{path}: endpoint #{number} must be a table.")
    try:
        return EndpointSpec.model_validate(item)
    except ValidationError as exc:
        name = item.get("name", "?")
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"{path}: endpoint #{number} ({name}): {problems}.") from None


def _problem(err: object) -> str:
    assert isinstance(err, dict)
    where = ".".join(str(p) for p in err.get("loc", ())) or "entry"
    message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        message = "unknown field"
    return f"{where}: {message}"
