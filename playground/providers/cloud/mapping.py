"""From an endpoint's model ids to specs: catalog models keep the catalog's name, family and capabilities."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ...catalog import CatalogEntry
from ...types import Capability, ModelSpec, Sdk
from .discovery import Found
from .endpoint import EndpointSpec, ModelEntry

_SOURCE_KEYS = ("id", "tag", "repo")
_VISION = re.compile(r"vision|multimodal|\bvl\b|-vl-", re.IGNORECASE)
_MOE = re.compile(r"moe|mixtral", re.IGNORECASE)


def normalise(model_id: str, *, ollama: bool) -> str:
    """A comparable form: lower case; Ollama's bare names mean the `latest` tag."""
    value = model_id.strip().lower()
    return f"{value}:latest" if ollama and ":" not in value else value


class CatalogIndex:
    """Finds the catalog entry a served model id stands for (an NVIDIA id, an Ollama tag, a hub repo)."""

    def __init__(self, catalog: Iterable[CatalogEntry], endpoint: EndpointSpec) -> None:
        self.endpoint = endpoint
        self.ollama = endpoint.kind == "ollama"
        self._entries = list(catalog)
        self._by_id: dict[str, CatalogEntry] = {}
        names = [v for e in self._entries for v in self._source_ids(e)]
        for entry, value in names:
            self._by_id.setdefault(normalise(value, ollama=self.ollama), entry)
        if (
            not self.ollama
        ):  # "Phi-4-mini-instruct" (an Azure deployment, an old GitHub id) is the repo's name
            for entry, value in names:
                self._by_id.setdefault(normalise(value.rsplit("/", 1)[-1], ollama=False), entry)

    @staticmethod
    def _source_ids(entry: CatalogEntry) -> list[tuple[CatalogEntry, str]]:
        found = []
        for source in entry.sources.values():
            for key in _SOURCE_KEYS:
                value = source.get(key)
                if isinstance(value, str) and value:
                    found.append((entry, value))
        return found

    def same(self, a: str, b: str) -> bool:
        return normalise(a, ollama=self.ollama) == normalise(b, ollama=self.ollama)

    def lookup(self, model_id: str) -> CatalogEntry | None:
        return self._by_id.get(normalise(model_id, ollama=self.ollama))

    def listed(self) -> list[tuple[str, CatalogEntry]]:
        """(model id, entry) for every catalog model with a source for this endpoint's service."""
        name = self.endpoint.catalog_source
        found = []
        for entry in self._entries:
            source = entry.source(name) if name else None
            wire = next(
                (source.get(k) for k in _SOURCE_KEYS if source and isinstance(source.get(k), str)), None
            )
            if isinstance(wire, str):
                found.append((wire, entry))
        return found


def build_specs(
    endpoint: EndpointSpec, index: CatalogIndex, *, discovered: Iterable[Found] = ()
) -> list[ModelSpec]:
    """Configured models, then catalog models for this service, then discovered ones; one spec per model."""
    specs: list[ModelSpec] = []
    seen_ids: set[str] = set()
    seen_models: set[str] = set()
    found = {normalise(f.id, ollama=index.ollama): f for f in discovered}
    candidates: list[tuple[str, ModelEntry | None]] = [(m.id, m) for m in endpoint.models]
    candidates += [(wire, None) for wire, _ in index.listed()]
    candidates += [(f.id, None) for f in found.values()]
    for wire, configured in candidates:
        key = normalise(wire, ollama=index.ollama)
        if key in seen_models:
            continue
        seen_models.add(key)
        spec = model_spec(endpoint, wire, index.lookup(wire), found.get(key), configured, taken=seen_ids)
        seen_ids.add(spec.id)
        specs.append(spec)
    return specs


def model_spec(
    endpoint: EndpointSpec,
    wire: str,
    entry: CatalogEntry | None,
    found: Found | None,
    configured: ModelEntry | None,
    *,
    taken: set[str] | frozenset[str] = frozenset(),
) -> ModelSpec:
    """The spec of one served model; its id is `<catalog key>@<provider>`, else `<model id>@<provider>`."""
    if entry is not None and f"{entry.key}@{endpoint.name}" in taken:
        entry = None  # a second id for the same catalog model keeps its own id
    extra: dict[str, object] = {
        "model": wire,
        "endpoint": endpoint.name,
        "kind": endpoint.kind,
        "base_url": endpoint.public_url if endpoint.url_secrets else endpoint.base_url,
        "base_url_env": endpoint.base_url_env if endpoint.url_secrets else None,
        "api_key_env": endpoint.api_key_env,
        "key_required": endpoint.key_required and not endpoint.keyless,
        "vision_format": endpoint.vision_format_for(wire),
    }
    if endpoint.headers:
        extra["headers"] = endpoint.public_headers()
    if endpoint.key_header:
        extra["key_header"] = endpoint.key_header
    if endpoint.sampling_extras:
        extra["sampling_extras"] = True
    if endpoint.api_version:
        extra["api_version"] = endpoint.api_version
    if configured is not None and configured.tokenizer:
        extra["tokenizer"] = configured.tokenizer
    if entry is not None:
        extra["catalog"] = entry.key
    capabilities = _capabilities(wire, entry, configured)
    if extra["vision_format"] == "none":  # the endpoint takes no images for this model: it claims none
        capabilities = capabilities - {Capability.VISION}
    return ModelSpec(
        id=f"{entry.key if entry else wire}@{endpoint.name}",
        name=(configured.name if configured and configured.name else None) or (entry.name if entry else wire),
        provider=endpoint.name,
        family=entry.family if entry else (found.family if found else ""),
        capabilities=capabilities,
        context_window=(configured.context if configured and configured.context else None)
        or (entry.context if entry else 4096),
        source=wire,
        params_total=entry.params_total if entry else (found.params if found else ""),
        params_active=entry.params_active if entry else "",
        sdk=Sdk.AZURE_AI_INFERENCE if endpoint.kind == "azure-ai" else Sdk.OPENAI,
        extra=extra,
    )


def _capabilities(
    wire: str, entry: CatalogEntry | None, configured: ModelEntry | None
) -> frozenset[Capability]:
    if configured is not None and configured.capabilities:
        return frozenset({Capability.CHAT, *configured.capabilities})
    if entry is not None:
        return entry.capabilities
    found = {Capability.CHAT}
    if _VISION.search(wire):
        found.add(Capability.VISION)
    if _MOE.search(wire):
        found.add(Capability.MOE)
    return frozenset(found)
