"""The model catalog, read from catalog.toml (or another TOML file of the same shape)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .types import Capability

CATALOG_PATH = Path(__file__).with_name("catalog.toml")


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
    sources: dict[str, dict[str, object]] = field(default_factory=dict, hash=False)

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
                    sources=dict(raw.get("sources", {})),
                )
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{path}: bad entry {raw.get('key', '?')!r}: {exc}") from None
    keys = [e.key for e in entries]
    if len(keys) != len(set(keys)):
        raise ConfigError(f"{path}: duplicate model keys")
    return entries
