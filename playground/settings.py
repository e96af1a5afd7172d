"""Configuration: the only module that reads os.environ."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "slm-playground"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    """A yes/no setting; a value that is neither (a typo such as `PLAYGROUND_PUBLIC=ture`) is refused."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE | _FALSE:
        return raw in _TRUE
    raise ConfigError(f"{name} must be 1 or 0 (or true/false, yes/no, on/off), got {_shown(raw)}")


def _shown(raw: str) -> str:
    """A value as an error message quotes it: at most 60 characters."""
    return repr(raw if len(raw) <= 60 else raw[:57] + "...")


def _positive(
    env: Mapping[str, str], name: str, top: float, default: float | None = None, *, integer: bool = False
) -> float | None:
    """A positive, finite number up to `top`; `default` when unset (None: no limit)."""
    hint = "; leave it unset for no limit" if default is None else ""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    kind = "a whole number" if integer else "a number"
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {kind}, got {_shown(raw)}{hint}") from None
    if not math.isfinite(value):  # float("nan"), float("inf") parse, and then break every use
        raise ConfigError(f"{name} must be a finite number, got {_shown(raw)}{hint}")
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value:g}{hint}")
    if value > top:
        raise ConfigError(f"{name} must be at most {top:g}, got {value:g}{hint}")
    return value


def _number(env: Mapping[str, str], name: str, default: float, top: float, *, integer: bool = False) -> float:
    """`_positive` with a default: never None."""
    value = _positive(env, name, top, default, integer=integer)
    return default if value is None else value


def _count(env: Mapping[str, str], name: str, top: int) -> int | None:
    value = _positive(env, name, top, integer=True)
    return None if value is None else int(value)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a port number (1-65535), got {_shown(raw)}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} must be a port number (1-65535), got {port}")
    return port


def _host_port(env: Mapping[str, str], name: str) -> None:
    """A `host[:port]` or URL setting (OLLAMA_HOST) whose port, when given, is a valid port number."""
    raw = env.get(name, "").strip()
    if not raw:
        return
    parts = urlsplit(raw if "://" in raw else f"http://{raw}")
    try:
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number in 0-65535)
    except ValueError:
        raise ConfigError(
            f"{name} must be host, host:port or http(s)://host:port with a port in 1-65535, got {_shown(raw)}"
        ) from None


def _secret(env: Mapping[str, str], name: str, shortest: int = 16) -> str | None:
    """A signing key: long enough that nobody guesses it from the ids it signs."""
    raw = env.get(name, "")
    if not raw:
        return None
    if len(raw.strip()) < shortest:
        raise ConfigError(
            f"{name} must be at least {shortest} characters (it signs visitor ids); make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return raw


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


# Upper bounds of the numeric settings: far above any sensible value, low enough that every use
# (timedelta, int(bytes), socket timeouts) works.
MAX_TIMEOUT_S = 86_400.0  # a day
MAX_CACHE_MB = 16_777_216.0  # 16 TB
MAX_AGE_DAYS = 36_500.0  # a century
MAX_COUNT = 1_000_000_000
MAX_WORKERS = 256
MAX_DAILY_VOTES = 1_000_000


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment, read once."""

    data_dir: Path
    public: bool = False
    timeout_s: float = 60.0
    hf_token: str | None = field(default=None, repr=False)
    model_cache_mb: float = 8192.0
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    browser_secret: str | None = field(default=None, repr=False)
    endpoints_file: Path | None = None
    models_dir_override: Path | None = None
    github_models: bool = False
    discovery_timeout_s: float = 3.0
    history_path_override: Path | None = None
    history_max_age_days: float | None = None
    history_max_count: int | None = None
    browser_history: bool = False
    space_id: str | None = None
    oauth: bool = False
    trace_stream: bool = False
    engine_processes: bool = True
    engine_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    arena_daily_votes: int = 200  # a visitor's arena votes per UTC day, in public mode only
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def models_dir(self) -> Path:
        return self.models_dir_override or self.data_dir / "models"

    @property
    def history_path(self) -> Path:
        return self.history_path_override or self.data_dir / "history.db"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("PLAYGROUND_DATA_DIR") or _default_data_dir()).expanduser()
        endpoints = env.get("PLAYGROUND_ENDPOINTS")
        models_dir = env.get("PLAYGROUND_MODELS_DIR")
        _host_port(env, "OLLAMA_HOST")
        return cls(
            data_dir=data_dir,
            public=_flag(env, "PLAYGROUND_PUBLIC"),
            timeout_s=_number(env, "PLAYGROUND_TIMEOUT_S", 60.0, top=MAX_TIMEOUT_S),
            hf_token=env.get("HF_TOKEN") or None,
            model_cache_mb=_number(env, "PLAYGROUND_MODEL_CACHE_MB", 8192.0, top=MAX_CACHE_MB),
            server_name=env.get("GRADIO_SERVER_NAME", "").strip() or "127.0.0.1",
            server_port=_port(env, "GRADIO_SERVER_PORT", 7860),
            browser_secret=_secret(env, "PLAYGROUND_BROWSER_SECRET"),
            endpoints_file=Path(endpoints).expanduser() if endpoints else None,
            models_dir_override=Path(models_dir).expanduser() if models_dir else None,
            github_models=_flag(env, "PLAYGROUND_GITHUB_MODELS"),
            discovery_timeout_s=_number(env, "PLAYGROUND_DISCOVERY_TIMEOUT_S", 3.0, top=MAX_TIMEOUT_S),
            history_path_override=_path(env, "PLAYGROUND_HISTORY_DB"),
            history_max_age_days=_positive(env, "PLAYGROUND_HISTORY_MAX_AGE_DAYS", MAX_AGE_DAYS),
            history_max_count=_count(env, "PLAYGROUND_HISTORY_MAX_COUNT", MAX_COUNT),
            browser_history=_flag(env, "PLAYGROUND_BROWSER_HISTORY") or bool(env.get("SPACE_ID")),
            space_id=env.get("SPACE_ID") or None,
            oauth=bool(env.get("SPACE_ID") and env.get("OAUTH_CLIENT_ID")),
            trace_stream=_flag(env, "PLAYGROUND_TRACE_STREAM"),
            engine_processes=_flag(env, "PLAYGROUND_ENGINE_PROCESSES", default=True),
            engine_workers=int(
                _number(env, "PLAYGROUND_ENGINE_WORKERS", os.cpu_count() or 1, MAX_WORKERS, integer=True)
            ),
            arena_daily_votes=int(
                _number(env, "PLAYGROUND_ARENA_DAILY_VOTES", 200, MAX_DAILY_VOTES, integer=True)
            ),
            env=env,
        )
