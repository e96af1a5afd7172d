"""The registry: every model of every provider, looked up by id, loaded lazily and cached."""

from __future__ import annotations

import difflib
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelUnavailableError, UnknownModelError
from .providers.base import ChatModel, Provider
from .providers.local import path_spec
from .types import Availability, Capability, ModelSpec

# Where a bare catalog key (no "@provider") resolves when several providers serve it.
PREFERENCE = (
    "onnx",
    "transformers",
    "ollama",
    "openai-compatible",
    "azure-openai",
    "azure-ai",
    "nvidia",
    "github",
)


@dataclass(frozen=True)
class ModelRow:
    spec: ModelSpec
    availability: Availability


class Registry:
    """Lookup, lazy load (once, even under concurrent first requests), and a small LRU cache."""

    def __init__(
        self, providers: Sequence[Provider], *, cache_budget_bytes: int = 8 * 10**9, allow_paths: bool = True
    ) -> None:
        self.providers = {p.name: p for p in providers}
        self.allow_paths = allow_paths
        self.cache_budget_bytes = cache_budget_bytes
        self.loads: Counter[str] = Counter()
        self._loaded: OrderedDict[str, ChatModel] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._path_specs: dict[str, ModelSpec] = {}

    def specs(self, capability: Capability | None = None) -> list[ModelSpec]:
        found = [s for p in self.providers.values() for s in p.specs()]
        return [s for s in found if capability is None or capability in s.capabilities]

    def rows(self, capability: Capability | None = None) -> list[ModelRow]:
        return [ModelRow(s, self.availability(s)) for s in self.specs(capability)]

    def availability(self, spec: ModelSpec) -> Availability:
        provider = self.providers.get(spec.provider)
        if provider is None:
            return Availability.no(f"provider {spec.provider!r} is not configured")
        return provider.availability(spec)

    def resolve(self, ref: str, provider: str | None = None) -> ModelSpec:
        """A model id, a catalog key (narrowed by provider), or a local path, to its spec."""
        ref = ref.strip()
        specs = self.specs()
        if provider is not None and provider not in self.providers:
            raise UnknownModelError(
                f"Unknown provider or engine {provider!r}; configured: {', '.join(self.providers)}."
            )
        by_id = {s.id: s for s in specs}
        if ref in by_id and (provider is None or by_id[ref].provider == provider):
            return by_id[ref]
        if "@" in ref and provider is None:
            ref, provider = ref.rsplit("@", 1)
        same_key = [s for s in specs if s.extra.get("catalog", s.id.rsplit("@", 1)[0]) == ref]
        if provider is not None:
            same_key = [s for s in same_key if s.provider == provider]
        if same_key:
            return min(same_key, key=_preference)
        if _looks_like_path(ref):
            if not self.allow_paths:
                raise UnknownModelError("This is a public deployment: pick a model from the list.")
            return self._path_spec(Path(ref), provider)
        close = difflib.get_close_matches(ref, list(by_id) + [s.id.split("@")[0] for s in specs], n=3)
        hint = f" Did you mean {', '.join(dict.fromkeys(close))}?" if close else ""
        raise UnknownModelError(f"Unknown model {ref!r}.{hint} `python -m playground models` lists them.")

    def _path_spec(self, path: Path, provider: str | None) -> ModelSpec:
        spec = path_spec(path, provider)
        self._path_specs[spec.id] = spec
        return spec

    def get(self, ref: str | ModelSpec, provider: str | None = None) -> ChatModel:
        """The loaded model for a reference; loads it on first use, once."""
        spec = ref if isinstance(ref, ModelSpec) else self.resolve(ref, provider)
        with self._guard:
            model = self._loaded.get(spec.id)
            if model is not None:
                self._loaded.move_to_end(spec.id)
                return model
            lock = self._locks.setdefault(spec.id, threading.Lock())
        with lock:
            with self._guard:
                if spec.id in self._loaded:
                    return self._loaded[spec.id]
            backend = self.providers.get(spec.provider)
            if backend is None:
                raise ModelUnavailableError(f"Provider {spec.provider!r} is not configured.")
            model = backend.load(spec)
            with self._guard:
                self.loads[spec.id] += 1
                self._loaded[spec.id] = model
                self._evict(keep=spec.id)
            return model

    def loaded(self) -> list[ChatModel]:
        with self._guard:
            return list(self._loaded.values())

    def _evict(self, keep: str) -> None:
        """Close least recently used local models until the loaded ones fit the budget."""

        def used() -> int:
            return sum(m.spec.size_bytes for m in self._loaded.values())

        for model_id in list(self._loaded):
            if used() <= self.cache_budget_bytes:
                break
            if model_id != keep:
                self._loaded.pop(model_id).close()

    def unload(self, model_id: str) -> None:
        with self._guard:
            model = self._loaded.pop(model_id, None)
        if model is not None:
            model.close()

    def close_all(self) -> None:
        with self._guard:
            models, self._loaded = list(self._loaded.values()), OrderedDict()
        for model in models:
            model.close()


def _preference(spec: ModelSpec) -> int:
    return PREFERENCE.index(spec.provider) if spec.provider in PREFERENCE else len(PREFERENCE)


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or Path(ref).expanduser().exists()
