"""An endpoint as data: where it is, which variable holds its key, which models it serves."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...secret_urls import redact_url, url_secrets
from ...types import Capability

Kind = Literal["openai", "ollama", "azure-ai"]
VisionFormat = Literal["openai", "bare-string", "img-tag", "none"]

RESERVED_NAMES = frozenset({"onnx", "transformers"})
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_HEADER = re.compile(r"key|token|auth|secret|password", re.IGNORECASE)


class ModelEntry(BaseModel):
    """One model an endpoint serves, as listed in its configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="the model id (or deployment name) sent to the endpoint")
    name: str | None = None
    capabilities: tuple[Capability, ...] | None = None
    context: int | None = Field(None, gt=0)
    vision_format: VisionFormat | None = None
    tokenizer: str | None = Field(
        None, description="a local folder whose tokenizer counts this model's tokens"
    )


class EndpointSpec(BaseModel):
    """One OpenAI-compatible (or Azure AI Inference) endpoint, configured by data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="provider name: ids are <model>@<name>")
    label: str = ""
    kind: Kind = "openai"
    base_url: str
    base_url_env: str | None = None
    api_key_env: str | None = None
    key_required: bool = True
    key_header: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    models: tuple[ModelEntry, ...] = ()
    discover: str | None = None
    catalog_source: str | None = None
    vision_format: VisionFormat = "openai"
    vision_formats: dict[str, VisionFormat] = Field(default_factory=dict)
    usage_in_stream: bool = True
    sampling_extras: bool = False
    api_version: str | None = None
    retired: str | None = None
    note: str = ""

    @field_validator("models", mode="before")
    @classmethod
    def _entries(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple({"id": v} if isinstance(v, str) else v for v in value)
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must start with http:// or https:// and name a host, got {value!r}")
        return value.rstrip("/")

    @field_validator("discover")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression ({exc})") from None
        return value

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is a local engine's name; pick another")
        return value

    @model_validator(mode="after")
    def _azure_needs_key(self) -> EndpointSpec:
        if self.kind == "azure-ai" and not self.api_key_env:
            raise ValueError("an azure-ai endpoint needs api_key_env (the variable holding its key)")
        return self

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def keyless(self) -> bool:
        return self.api_key_env is None

    @property
    def discovers(self) -> bool:
        """Whether the model list comes (also) from the endpoint itself."""
        return self.discover is not None or not self.models

    @property
    def display_url(self) -> str:
        """The address users know: Ollama's host, without the /v1 suffix."""
        if self.kind == "ollama" and self.base_url.endswith("/v1"):
            return self.base_url[: -len("/v1")]
        return self.base_url

    @property
    def public_url(self) -> str:
        """The display URL as it may be shown (a page, a message, a log): credentials in it redacted."""
        return redact_url(self.display_url)

    @property
    def url_secrets(self) -> list[str]:
        """The credentials inside the base URL (user info, key parameters): scrubbed from messages."""
        return url_secrets(self.base_url)

    def matches(self, model_id: str) -> bool:
        return self.discover is None or re.search(self.discover, model_id) is not None

    def vision_format_for(self, model_id: str) -> VisionFormat:
        for entry in self.models:
            if entry.id == model_id and entry.vision_format:
                return entry.vision_format
        return self.vision_formats.get(model_id.lower(), self.vision_format)

    def key(self, env: Mapping[str, str]) -> str | None:
        return (env.get(self.api_key_env) or None) if self.api_key_env else None

    def resolved_headers(self, env: Mapping[str, str]) -> dict[str, str]:
        """Headers with ${VAR} references replaced from the environment."""
        return {name: _ENV_REF.sub(lambda m: env.get(m.group(1), ""), v) for name, v in self.headers.items()}

    def header_secrets(self, env: Mapping[str, str]) -> list[str]:
        """Values that must never be shown: every ${VAR} value, and literals of secret-looking headers."""
        found = [env.get(ref, "") for value in self.headers.values() for ref in _ENV_REF.findall(value)]
        found += [v for n, v in self.headers.items() if _SECRET_HEADER.search(n) and not _ENV_REF.search(v)]
        return [s for s in found if s]

    def public_headers(self) -> dict[str, str]:
        """Headers as they may be shown (Get code): ${VAR} kept, secret-looking literals masked."""
        return {
            name: value if _ENV_REF.search(value) or not _SECRET_HEADER.search(name) else "***"
            for name, value in self.headers.items()
        }
