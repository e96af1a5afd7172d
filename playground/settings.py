"""Configuration: the only module that reads os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "slm-playground"


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _optional_positive(env: Mapping[str, str], name: str, *, integer: bool = False) -> float | None:
    """A positive number, or None when unset (meaning: no limit)."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    kind = "a whole number" if integer else "a number"
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {kind}, got {raw!r}; leave it unset for no limit") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}; leave it unset for no limit")
    return value


def _count(env: Mapping[str, str], name: str) -> int | None:
    value = _optional_positive(env, name, integer=True)
    return None if value is None else int(value)


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


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
        port_raw = env.get("GRADIO_SERVER_PORT", "7860")
        try:
            port = int(port_raw)
        except ValueError:
            raise ConfigError(f"GRADIO_SERVER_PORT must be a port number, got {port_raw!r}") from None
        endpoints = env.get("PLAYGROUND_ENDPOINTS")
        models_dir = env.get("PLAYGROUND_MODELS_DIR")
        return cls(
            data_dir=data_dir,
            public=_flag(env, "PLAYGROUND_PUBLIC"),
            timeout_s=_number(env, "PLAYGROUND_TIMEOUT_S", 60.0),
            hf_token=env.get("HF_TOKEN") or None,
            model_cache_mb=_number(env, "PLAYGROUND_MODEL_CACHE_MB", 8192.0),
            server_name=env.get("GRADIO_SERVER_NAME", "127.0.0.1"),
            server_port=port,
            browser_secret=env.get("PLAYGROUND_BROWSER_SECRET") or None,
            endpoints_file=Path(endpoints).expanduser() if endpoints else None,
            models_dir_override=Path(models_dir).expanduser() if models_dir else None,
            github_models=_flag(env, "PLAYGROUND_GITHUB_MODELS"),
            discovery_timeout_s=_number(env, "PLAYGROUND_DISCOVERY_TIMEOUT_S", 3.0),
            history_path_override=_path(env, "PLAYGROUND_HISTORY_DB"),
            history_max_age_days=_optional_positive(env, "PLAYGROUND_HISTORY_MAX_AGE_DAYS"),
            history_max_count=_count(env, "PLAYGROUND_HISTORY_MAX_COUNT"),
            browser_history=_flag(env, "PLAYGROUND_BROWSER_HISTORY") or bool(env.get("SPACE_ID")),
            space_id=env.get("SPACE_ID") or None,
            oauth=bool(env.get("SPACE_ID") and env.get("OAUTH_CLIENT_ID")),
            trace_stream=_flag(env, "PLAYGROUND_TRACE_STREAM"),
            engine_processes=env.get("PLAYGROUND_ENGINE_PROCESSES", "1").strip().lower()
            not in {"0", "false", "no", "off"},
            engine_workers=_count(env, "PLAYGROUND_ENGINE_WORKERS") or (os.cpu_count() or 1),
            env=env,
        )
