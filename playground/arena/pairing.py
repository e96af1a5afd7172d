"""Choosing the two sides of a battle: named (both given), blind (a random pair), or a preset."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ModelUnavailableError, PlaygroundError, UnknownModelError
from ..options import GenerationOptions
from ..registry import PREFERENCE, Registry
from ..types import Capability, ModelSpec

Mode = Literal["named", "blind"]
SIDES = ("a", "b")


@dataclass(frozen=True)
class Side:
    """One side of a battle: which model (an id, a catalog key or a path) and how it is asked."""

    model: str
    provider: str | None = None
    options: GenerationOptions = field(default_factory=GenerationOptions)
    system: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "provider": self.provider,
            "options": self.options.model_dump(mode="json", exclude_unset=True),
            "system": self.system,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Side:
        options = data.get("options") or {}
        provider = data.get("provider")
        return cls(
            str(data["model"]),
            None if provider is None else str(provider),
            GenerationOptions.parse(**options) if isinstance(options, dict) else GenerationOptions(),
            str(data.get("system") or ""),
        )


@dataclass(frozen=True)
class Pair:
    a: Side
    b: Side
    mode: Mode = "named"
    preset: str = ""


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    a: str  # a model id or catalog key (the first available engine is taken)
    b: str
    note: str = ""


PRESETS: tuple[Preset, ...] = (
    Preset(
        "phi3-vs-phi35",
        "Phi-3-mini vs Phi-3.5-mini",
        "phi-3-mini-4k",
        "phi-3.5-mini",
        "The classic comparison; try the bilingual prompt set (English and Chinese).",
    ),
    Preset(
        "two-engines",
        "Same model, two engines",
        "smollm2-135m-instruct@onnx",
        "smollm2-135m-instruct@transformers",
        "The embedded SmolLM2 on ONNX Runtime GenAI (int4) and on transformers (float32): works offline.",
    ),
    Preset(
        "dense-vs-moe",
        "Dense Phi-3.5-mini vs Phi-3.5-MoE",
        "phi-3.5-mini",
        "phi-3.5-moe",
        "3.8B dense against 16 experts with 2 active (6.6B active of 42B).",
    ),
)


@dataclass(frozen=True)
class PresetState:
    preset: Preset
    available: bool
    reason: str = ""  # why not, in words a user can act on


def named(a: Side, b: Side) -> Pair:
    """Both sides chosen by the visitor: the names are shown from the start."""
    return Pair(a, b, "named")


def blind_pool(registry: Registry, capability: Capability = Capability.CHAT) -> list[ModelSpec]:
    """The models a blind battle may draw: available now, not a random-weights demo."""
    return [
        row.spec
        for row in registry.rows(capability)
        if row.availability.available and not row.spec.extra.get("demo")
    ]


def blind(
    registry: Registry,
    rng: random.Random | None = None,
    *,
    options: GenerationOptions | None = None,
    system: str = "",
    pool: list[ModelSpec] | None = None,
) -> Pair:
    """Two different available models (ids) drawn at random; `rng` seeded in tests."""
    candidates = blind_pool(registry) if pool is None else pool
    ids = sorted({spec.id for spec in candidates})
    if len(ids) < 2:
        raise ModelUnavailableError(
            "A blind battle needs two available models and "
            f"{'only one is' if ids else 'none is'} ready: download one in the Models tab or configure "
            "a provider (docs/providers.md)."
        )
    first, second = (rng or random.Random()).sample(ids, 2)
    opts = options or GenerationOptions()
    return Pair(Side(first, options=opts, system=system), Side(second, options=opts, system=system), "blind")


def preset_states(registry: Registry) -> list[PresetState]:
    """Every preset with whether both its models are ready, and why not."""
    states = []
    for preset in PRESETS:
        try:
            preset_pair(registry, preset.key)
            states.append(PresetState(preset, True))
        except PlaygroundError as exc:
            states.append(PresetState(preset, False, str(exc)))
    return states


def preset_pair(registry: Registry, key: str, *, options: GenerationOptions | None = None) -> Pair:
    """A preset's two sides, each on its first available engine; ModelUnavailableError says why not."""
    preset = next((p for p in PRESETS if p.key == key or p.title == key), None)
    if preset is None:
        known = ", ".join(p.key for p in PRESETS)
        raise UnknownModelError(f"Unknown arena preset {key!r}; presets: {known}.")
    opts = options or GenerationOptions()
    a = _available(registry, preset.a, preset)
    b = _available(registry, preset.b, preset)
    return Pair(Side(a.id, options=opts), Side(b.id, options=opts), "named", preset.key)


def _available(registry: Registry, ref: str, preset: Preset) -> ModelSpec:
    """The spec of `ref` on the first engine (in the registry's preference) where it is ready."""
    preferred = registry.resolve(ref)
    key = ref if "@" not in ref else None
    candidates = [preferred]
    if key is not None:
        same = [s for s in registry.specs() if s.extra.get("catalog", s.id.rsplit("@", 1)[0]) == key]
        same.sort(key=lambda s: PREFERENCE.index(s.provider) if s.provider in PREFERENCE else len(PREFERENCE))
        candidates += [s for s in same if s.id != preferred.id]
    for spec in candidates:
        if registry.availability(spec).available:
            return spec
    reason = registry.availability(preferred).reason
    raise ModelUnavailableError(f"{preset.title} needs {preferred.name}, which is not ready: {reason}.")
