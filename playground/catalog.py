"""The model catalog, read from catalog.toml (or another TOML file of the same shape)."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, InvalidOptionsError
from .options import GenerationOptions
from .types import Capability, ModelSpec

CATALOG_PATH = Path(__file__).with_name("catalog.toml")


SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty")


@dataclass(frozen=True)
class Sampling:
    """The sampling values a model's authors recommend, and where they say so."""

    source: str
    note: str = ""
    values: dict[str, float] = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Sampling:
        """From a [models.sampling] table; ValueError when a key or a value is not allowed."""
        unknown = set(raw) - {*SAMPLING_KEYS, "source", "note"}
        if unknown:
            raise ValueError(f"unknown sampling keys {sorted(unknown)}")
        source = raw.get("source")
        if not isinstance(source, str) or not source.startswith("https://"):
            raise ValueError("sampling needs a source: the https URL the values come from")
        values = {k: raw[k] for k in SAMPLING_KEYS if k in raw}
        try:
            GenerationOptions.parse(**values)
        except InvalidOptionsError as exc:
            raise ValueError(str(exc)) from None
        return cls(source, str(raw.get("note", "")), values)

    def apply(self, options: GenerationOptions) -> GenerationOptions:
        """These values wherever the caller gave none of its own."""
        return options.with_defaults(self.values)


@dataclass(frozen=True)
class CatalogEntry:
    """One model of the catalog with its sources per engine or provider."""

    key: str
    name: str
    family: str
    context: int
    capabilities: frozenset[Capability]
    params_total: str = ""
    params_active: str = ""
    description: str = ""
    experts: int = 0
    experts_active: int = 0
    hub_repo: str = ""  # the model's Hugging Face repo, for a script run elsewhere (Get code)
    sources: dict[str, dict[str, object]] = field(default_factory=dict, hash=False)
    sampling: Sampling | None = None

    def source(self, provider: str) -> dict[str, object] | None:
        return self.sources.get(provider)

    def size_bytes(self, provider: str) -> int:
        source = self.sources.get(provider) or {}
        size_gb = source.get("size_gb", 0)
        return int(float(size_gb) * 1e9) if isinstance(size_gb, int | float) else 0


def load_catalog(path: Path = CATALOG_PATH) -> list[CatalogEntry]:
    """Read the catalog file; raise ConfigError naming the entry at fault."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    entries = []
    for raw in data.get("models", []):
        try:
            entries.append(
                CatalogEntry(
                    key=raw["key"],
                    name=raw["name"],
                    family=raw.get("family", ""),
                    context=int(raw["context"]),
                    capabilities=frozenset(Capability(c) for c in raw.get("capabilities", ["chat"])),
                    params_total=raw.get("params_total", ""),
                    params_active=raw.get("params_active", ""),
                    description=raw.get("description", ""),
                    experts=int(raw.get("experts", 0)),
                    experts_active=int(raw.get("experts_active", 0)),
                    hub_repo=str(raw.get("hub_repo", "")),
                    sources=dict(raw.get("sources", {})),
                    sampling=Sampling.parse(raw["sampling"]) if "sampling" in raw else None,
                )
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{path}: bad entry {raw.get('key', '?')!r}: {exc}") from None
    keys = [e.key for e in entries]
    if len(keys) != len(set(keys)):
        raise ConfigError(f"{path}: duplicate model keys")
    return entries


@functools.cache
def _entries_by_key() -> dict[str, CatalogEntry]:
    return {e.key: e for e in load_catalog()}


def entry_for(spec: ModelSpec) -> CatalogEntry | None:
    """The catalog entry a spec stands for (None for a model the catalog does not list)."""
    key = spec.extra.get("catalog")
    return _entries_by_key().get(key) if isinstance(key, str) else None


def sampling_for(spec: ModelSpec) -> Sampling | None:
    """The recommended sampling of the catalog model a spec stands for (None for other models)."""
    entry = entry_for(spec)
    return entry.sampling if entry is not None else None
