"""Configuration: the only module that reads os.environ."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
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


def _spaces_flag(env: Mapping[str, str], name: str) -> bool:
    """A flag the Spaces platform sets, read as the `spaces` package reads it (1, t, true); never an error."""
    return env.get(name, "").strip().lower() in {"1", "t", "true"}


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
    try:  # urlsplit raises ValueError on a broken IPv6 address, .port on a port not in 0-65535
        urlsplit(raw if "://" in raw else f"http://{raw}").port  # noqa: B018
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


def _limit(
    env: Mapping[str, str],
    name: str,
    public: bool,
    public_default: float | None,
    top: float,
    *,
    private_default: float | None = None,
    integer: bool = False,
) -> float | None:
    """A limit: its default depends on public mode; `0` or `off` turns it off (None)."""
    raw = env.get(name, "").strip().lower()
    if raw in {"0", "off", "none"}:
        return None
    default = public_default if public else private_default
    return _positive(env, name, top, default, integer=integer)


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    """A comma-separated list (PLAYGROUND_PUBLIC_MODELS); None when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    return tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


def _per_provider(env: Mapping[str, str], name: str, public: bool, public_default: int) -> dict[str, int]:
    """Answers at once per provider: `3` (every provider) or `nvidia=4,azure=2,*=2`; `0`/`off`: none.

    The key `*` is every provider not named; an empty mapping means no limit.
    """
    raw = env.get(name, "").strip()
    if raw.lower() in {"0", "off", "none"} or (not raw and not public):
        return {}
    if not raw:
        return {"*": public_default}
    limits: dict[str, int] = {}
    for part in raw.split(","):
        key, _, value = part.strip().rpartition("=")
        key = key.strip() or "*"
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(
                f"{name} must be a number (for every provider) or name=number pairs such as "
                f"'nvidia=4,azure=2,*=2', got {_shown(raw)}"
            ) from None
        if not 1 <= number <= MAX_WORKERS:
            raise ConfigError(f"{name}: {key} must be between 1 and {MAX_WORKERS}, got {number}")
        limits[key] = number
    return limits


@dataclass(frozen=True)
class Limits:
    """What one visitor may use. None means no limit; public mode turns most of them on by default.

    Every field is one environment variable (docs/security.md lists them with their defaults).
    """

    # Admission of questions (checked when a job joins the queue)
    visitor_jobs: int | None = None  # PLAYGROUND_VISITOR_JOBS: jobs queued or running per session
    address_jobs: int | None = None  # PLAYGROUND_ADDRESS_JOBS: the same per client address
    rate_per_minute: int | None = None  # PLAYGROUND_RATE_PER_MINUTE: questions per session a minute
    address_rate_per_minute: int | None = None  # PLAYGROUND_ADDRESS_RATE_PER_MINUTE: per address
    queue_size: int | None = None  # PLAYGROUND_QUEUE_SIZE: jobs waiting in the whole queue
    provider_concurrency: Mapping[str, int] = field(default_factory=dict)  # PLAYGROUND_PROVIDER_CONCURRENCY
    trust_forwarded: bool = False  # PLAYGROUND_TRUST_FORWARDED: the address from X-Forwarded-For
    # Sizes
    upload_mb: float = 20.0  # PLAYGROUND_UPLOAD_MB: any upload, refused before it is read
    import_mb: float = 20.0  # PLAYGROUND_IMPORT_MB: a history import file
    import_conversations: int | None = None  # PLAYGROUND_IMPORT_CONVERSATIONS: conversations per import
    prompt_chars: int | None = None  # PLAYGROUND_PROMPT_CHARS: one question (system prompt included)
    max_new_tokens: int | None = None  # PLAYGROUND_MAX_NEW_TOKENS: the longest answer
    image_mb: float = 20.0  # PLAYGROUND_IMAGE_MB: one image
    # Models and storage
    models: tuple[str, ...] | None = None  # PLAYGROUND_PUBLIC_MODELS: the models a visitor may pick
    history_conversations: int | None = None  # PLAYGROUND_VISITOR_CONVERSATIONS: kept per visitor
    history_mb: float | None = None  # PLAYGROUND_VISITOR_HISTORY_MB: bytes of history per visitor
    address_history_mb: float | None = None  # PLAYGROUND_ADDRESS_HISTORY_MB: written a day per address
    files_max_age_min: float | None = None  # PLAYGROUND_FILES_MAX_AGE_MIN: uploads and exports kept
    refresh_interval_s: float | None = None  # PLAYGROUND_REFRESH_INTERVAL_S: Providers refresh, shared
    abandon_grace_s: float = 5.0  # PLAYGROUND_ABANDON_GRACE_S: a job's client has this long to read it
    sessions: int | None = None  # PLAYGROUND_SESSIONS: page sessions whose state the server keeps

    @classmethod
    def from_env(cls, env: Mapping[str, str], public: bool) -> Limits:
        def limit(name: str, public_default: float | None, top: float = MAX_COUNT, **kw: Any) -> float | None:
            return _limit(env, name, public, public_default, top, **kw)

        upload_mb = _number(env, "PLAYGROUND_UPLOAD_MB", 20.0, top=MAX_CACHE_MB)
        import_mb = _number(env, "PLAYGROUND_IMPORT_MB", 5.0 if public else 20.0, top=MAX_CACHE_MB)
        image_mb = _number(env, "PLAYGROUND_IMAGE_MB", 10.0 if public else 20.0, top=MAX_CACHE_MB)
        for name, size in (("PLAYGROUND_IMPORT_MB", import_mb), ("PLAYGROUND_IMAGE_MB", image_mb)):
            if size > upload_mb:
                raise ConfigError(
                    f"{name} ({size:g}) cannot be more than PLAYGROUND_UPLOAD_MB ({upload_mb:g})"
                )
        return cls(
            visitor_jobs=_whole(limit("PLAYGROUND_VISITOR_JOBS", 2, integer=True)),
            address_jobs=_whole(limit("PLAYGROUND_ADDRESS_JOBS", 6, integer=True)),
            rate_per_minute=_whole(limit("PLAYGROUND_RATE_PER_MINUTE", 12, integer=True)),
            address_rate_per_minute=_whole(limit("PLAYGROUND_ADDRESS_RATE_PER_MINUTE", 30, integer=True)),
            queue_size=_whole(limit("PLAYGROUND_QUEUE_SIZE", 64, integer=True)),
            provider_concurrency=_per_provider(env, "PLAYGROUND_PROVIDER_CONCURRENCY", public, 2),
            trust_forwarded=_flag(env, "PLAYGROUND_TRUST_FORWARDED", default=bool(env.get("SPACE_ID"))),
            upload_mb=upload_mb,
            import_mb=import_mb,
            import_conversations=_whole(limit("PLAYGROUND_IMPORT_CONVERSATIONS", 200, integer=True)),
            prompt_chars=_whole(limit("PLAYGROUND_PROMPT_CHARS", 8000, integer=True)),
            max_new_tokens=_whole(limit("PLAYGROUND_MAX_NEW_TOKENS", 512, integer=True)),
            image_mb=image_mb,
            models=_names(env, "PLAYGROUND_PUBLIC_MODELS"),
            history_conversations=_whole(limit("PLAYGROUND_VISITOR_CONVERSATIONS", 200, integer=True)),
            history_mb=limit("PLAYGROUND_VISITOR_HISTORY_MB", 10.0, MAX_CACHE_MB),
            address_history_mb=limit("PLAYGROUND_ADDRESS_HISTORY_MB", 50.0, MAX_CACHE_MB),
            files_max_age_min=limit("PLAYGROUND_FILES_MAX_AGE_MIN", 60.0, MAX_AGE_DAYS * 1440),
            refresh_interval_s=limit("PLAYGROUND_REFRESH_INTERVAL_S", 60.0, MAX_TIMEOUT_S),
            abandon_grace_s=_number(env, "PLAYGROUND_ABANDON_GRACE_S", 5.0, top=MAX_TIMEOUT_S),
            sessions=_whole(limit("PLAYGROUND_SESSIONS", 2000, integer=True)),
        )


@dataclass(frozen=True)
class EvalLimits:
    """What one evaluation run may ask (the Evaluate tab, `python -m playground eval`). None: no limit.

    In public mode evaluation is on with small limits, or off with PLAYGROUND_EVAL=0 (docs/security.md)."""

    enabled: bool = True  # PLAYGROUND_EVAL
    models: int = 6  # PLAYGROUND_EVAL_MODELS: models in one run (at most 6)
    items: int | None = None  # PLAYGROUND_EVAL_ITEMS: items of the set a run asks
    max_new_tokens: int | None = None  # PLAYGROUND_EVAL_TOKENS: the longest answer in a run

    @classmethod
    def from_env(cls, env: Mapping[str, str], public: bool) -> EvalLimits:
        return cls(
            enabled=_flag(env, "PLAYGROUND_EVAL", default=True),
            models=int(_number(env, "PLAYGROUND_EVAL_MODELS", 3 if public else 6, 6, integer=True)),
            items=_whole(_limit(env, "PLAYGROUND_EVAL_ITEMS", public, 20, MAX_COUNT, integer=True)),
            max_new_tokens=_whole(
                _limit(env, "PLAYGROUND_EVAL_TOKENS", public, 128, MAX_COUNT, integer=True)
            ),
        )


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
    limits: Limits = field(default_factory=Limits)
    eval_limits: EvalLimits = field(default_factory=EvalLimits)
    zerogpu: bool = False  # on a ZeroGPU Space (SPACES_ZERO_GPU set by the platform)
    default_model: str | None = None  # PLAYGROUND_DEFAULT_MODEL: the pickers' first choice, when ready
    dataset: str | None = None  # PLAYGROUND_DATASET: the dataset repository arena votes are pushed to
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
        public = _flag(env, "PLAYGROUND_PUBLIC", default=bool(env.get("SPACE_ID")))  # a Space is public
        return cls(
            data_dir=data_dir,
            public=public,
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
            limits=Limits.from_env(env, public),
            eval_limits=EvalLimits.from_env(env, public),
            zerogpu=_spaces_flag(env, "SPACES_ZERO_GPU"),
            default_model=env.get("PLAYGROUND_DEFAULT_MODEL", "").strip() or None,
            dataset=env.get("PLAYGROUND_DATASET", "").strip() or None,
            env=env,
        )
