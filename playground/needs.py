"""What a not-ready model or Arena preset needs, every requirement at once: each missing model with each
way to get it ready (a download here with its size, a provider's key, an Ollama pull). The Arena's
presets and the lesson's paragraphs say it with this; nothing here runs or downloads anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from .arena.pairing import PRESETS, Preset
from .catalog import CatalogEntry, load_catalog
from .providers_service import BUILT_IN
from .registry import Registry
from .types import ENGINE_LABELS


@dataclass(frozen=True)
class Need:
    """A model that is not ready on any engine here, and every way to make it ready."""

    name: str
    ways: tuple[str, ...]

    def markdown(self) -> str:
        ways = "; or ".join(self.ways) if self.ways else "no engine here can run it"
        return f"**{self.name}**: {ways}."


def _entry(key: str) -> CatalogEntry | None:
    return next((e for e in load_catalog() if e.key == key), None)


def _way(entry: CatalogEntry, provider: str, source: dict[str, object]) -> str:
    """One way to get the model ready on this source: by what the source holds (a download's size, an
    Ollama tag), else what enables its provider (providers_service.BUILT_IN)."""
    engine = ENGINE_LABELS.get(provider, provider)
    if "size_gb" in source:
        size = entry.size_bytes(provider) / 1e9
        return (
            f"download {size:.1f} GB here for {engine} (the Models tab, or "
            f"`python -m playground download {entry.key}@{provider}`)"
        )
    if "tag" in source:
        return f"`ollama pull {source['tag']}` with {engine} running"
    enable = {name: text for name, _, _, _, text in BUILT_IN}.get(provider)
    if enable:
        return f"{engine}: {enable.rstrip('.')}"
    return f"{engine} configured (docs/providers.md)"


def model_need(registry: Registry, ref: str) -> Need | None:
    """None when the model (a catalog key, or an id `key@provider`) is ready on some engine here (on the
    one named, for an id); else each way to get it ready."""
    key, _, only = ref.partition("@")
    ready = [
        row.spec.id
        for row in registry.rows()
        if row.availability.available
        and row.spec.extra.get("catalog", row.spec.id.rsplit("@", 1)[0]) == key
        and (not only or row.spec.provider == only)
    ]
    if ready:
        return None
    entry = _entry(key)
    if entry is None:
        return Need(ref, ())
    sources = {p: s for p, s in entry.sources.items() if not only or p == only}
    return Need(entry.name, tuple(_way(entry, p, s) for p, s in sources.items()))


def preset_needs(registry: Registry, preset: Preset) -> list[Need]:
    """Every model of the preset that is not ready, with how to get each (empty: the preset runs here)."""
    needs = [model_need(registry, ref) for ref in (preset.a, preset.b)]
    return [n for n in needs if n is not None]


def preset_problem(registry: Registry, key: str) -> str | None:
    """A not-ready preset's whole story in Markdown (None: it runs here, or no such preset)."""
    preset = next((p for p in PRESETS if p.key == key), None)
    if preset is None:
        return None
    needs = preset_needs(registry, preset)
    if not needs:
        return None
    lines = "\n".join(f"- {need.markdown()}" for need in needs)
    return f"⛔ **{preset.title}** is not ready here. It needs:\n{lines}"


def runnable_presets(registry: Registry) -> list[Preset]:
    """The presets whose models are all ready here."""
    return [p for p in PRESETS if not preset_needs(registry, p)]


def problem_with_alternatives(registry: Registry, problem: str) -> str:
    """A not-ready comparison's needs, then the comparisons that do run here, each labelled."""
    runnable = runnable_presets(registry)
    if not runnable:
        return problem
    offered = "\n".join(f"- **{p.title}**: {p.note}" for p in runnable)
    return f"{problem}\n\nWhat runs here now (pick it in Preset):\n{offered}"
