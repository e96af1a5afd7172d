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
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def models_dir(self) -> Path:
        return self.models_dir_override or self.data_dir / "models"

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
            env=env,
        )
