"""The registry: every model of every provider, looked up by id, loaded lazily and cached."""

from __future__ import annotations

import difflib
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelUnavailableError, UnknownModelError
from .options import GenerationOptions
from .providers.base import ChatModel, HasFolders, Provider
from .providers.local import path_spec
from .types import Availability, Capability, Chunk, Message, ModelSpec

if TYPE_CHECKING:
    from .settings import Settings

LOCAL_ENGINES = ("onnx", "transformers")
SHOWN_OFFERED = 12  # model ids a refusal lists

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


@dataclass(frozen=True)
class Offer:
    """The models a visitor may pick on a public deployment.

    `models`: the owner's list of ids (PLAYGROUND_PUBLIC_MODELS), exactly those. Without it: every model
    an endpoint serves (it uses no memory here), and each catalog model on ONE local engine, the fastest
    that is ready (`engines`, fastest first: ONNX Runtime GenAI on a CPU, transformers on a ZeroGPU),
    and only where its size fits the memory budget (PLAYGROUND_MODEL_CACHE_MB).
    """

    models: tuple[str, ...] | None = None
    engines: tuple[str, ...] = LOCAL_ENGINES

    @classmethod
    def from_settings(cls, settings: Settings) -> Offer | None:
        """The offer of a public deployment; None (every model) in private mode."""
        if not settings.public:
            return None
        engines = ("transformers", "onnx") if settings.zerogpu else LOCAL_ENGINES
        return cls(settings.limits.models, engines)


class Registry:
    """Lookup, lazy load (once, even under concurrent first requests), and a small LRU cache."""

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        cache_budget_bytes: int = 8 * 10**9,
        allow_paths: bool = True,
        offer: Offer | None = None,
    ) -> None:
        self.providers = {p.name: p for p in providers}
        self.allow_paths = allow_paths
        self.offer = offer  # None: every model (private mode)
        self._local_offer: frozenset[str] | None = None
        self.cache_budget_bytes = cache_budget_bytes
        self.loads: Counter[str] = Counter()
        self._loaded: OrderedDict[str, ChatModel] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._path_specs: dict[str, ModelSpec] = {}
        self._leases: Counter[str] = Counter()

    def specs(self, capability: Capability | None = None) -> list[ModelSpec]:
        """The models a visitor may pick (all of them in private mode)."""
        return [s for s in self._all_specs(capability) if self.offered(s)]

    def _all_specs(self, capability: Capability | None = None) -> list[ModelSpec]:
        found = [s for p in self.providers.values() for s in p.specs()]
        return [s for s in found if capability is None or capability in s.capabilities]

    # What a public deployment offers

    def offered(self, spec: ModelSpec) -> bool:
        """Whether visitors may pick this model (always, without an offer)."""
        if self.offer is None:
            return True
        if self.offer.models is not None:
            return spec.id in self.offer.models
        return not _is_local(spec) or spec.id in self._default_local_offer()

    def _default_local_offer(self) -> frozenset[str]:
        """Each catalog model on its fastest ready local engine that fits the budget (worked out once:
        downloads are off on a public deployment, so what is ready does not change)."""
        with self._guard:
            if self._local_offer is not None:
                return self._local_offer
        assert self.offer is not None
        engines = self.offer.engines
        by_key: dict[str, list[ModelSpec]] = {}
        for spec in self._all_specs():
            if spec.provider in engines and spec.size_bytes <= self.cache_budget_bytes:
                by_key.setdefault(str(spec.extra.get("catalog", spec.id)), []).append(spec)
        chosen = set()
        for candidates in by_key.values():
            candidates.sort(key=lambda s: engines.index(s.provider))
            ready = [s for s in candidates if self.availability(s).available]
            chosen.add((ready or candidates)[0].id)
        with self._guard:
            self._local_offer = frozenset(chosen)
            return self._local_offer

    def _not_offered(self, spec: ModelSpec) -> UnknownModelError:
        ids = [r.spec.id for r in sorted(self.rows(), key=lambda r: not r.availability.available)]
        shown = ", ".join(ids[:SHOWN_OFFERED]) + (
            f" and {len(ids) - SHOWN_OFFERED} more" if len(ids) > SHOWN_OFFERED else ""
        )
        return UnknownModelError(
            f"{spec.name} on {spec.engine_label} is not offered on this public deployment: pick one of "
            f"the models it offers ({shown or 'none'})."
        )

    def rows(self, capability: Capability | None = None) -> list[ModelRow]:
        return [ModelRow(s, self.availability(s)) for s in self.specs(capability)]

    def availability(self, spec: ModelSpec) -> Availability:
        provider = self.providers.get(spec.provider)
        if provider is None:
            return Availability.no(f"provider {spec.provider!r} is not configured")
        return provider.availability(spec)

    def resolve(self, ref: str, provider: str | None = None) -> ModelSpec:
        """A model id, a catalog key (narrowed by provider), or a local path, to its spec."""
        spec = self._resolve(ref.strip(), provider)
        if not self.offered(spec):
            raise self._not_offered(spec)
        return spec

    def _resolve(self, ref: str, provider: str | None) -> ModelSpec:
        specs = self._all_specs()
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
        if same_key:  # a bare catalog key: the engine offered, else the preferred one
            return min(same_key, key=lambda s: (not self.offered(s), _preference(s)))
        if _looks_like_path(ref):
            if not self.allow_paths:
                raise UnknownModelError("This is a public deployment: pick a model from the list.")
            return self._path_spec(Path(ref), provider)
        shown = [s.id for s in specs if self.offered(s)]
        close = difflib.get_close_matches(ref, shown + [i.split("@")[0] for i in shown], n=3)
        hint = f" Did you mean {', '.join(dict.fromkeys(close))}?" if close else ""
        raise UnknownModelError(f"Unknown model {ref!r}.{hint} `python -m playground models` lists them.")

    def _path_spec(self, path: Path, provider: str | None) -> ModelSpec:
        spec = path_spec(path, provider)
        self._path_specs[spec.id] = spec
        return spec

    def get(self, ref: str | ModelSpec, provider: str | None = None) -> ChatModel:
        """The loaded model for a reference; loads it on first use, once, within the memory budget."""
        spec = ref if isinstance(ref, ModelSpec) else self.resolve(ref, provider)
        if spec.id not in self._path_specs and not self.offered(spec):
            raise self._not_offered(spec)
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
            if _is_local(spec):
                self._make_room(spec, spec.size_bytes)  # the catalog's estimate, before the load
            model = backend.load(spec)
            if hasattr(model, "room"):
                model.room = lambda size, model_id=spec.id: self._room_for_worker(model_id, size)
            with self._guard:
                self.loads[spec.id] += 1
                self._loaded[spec.id] = model
            self._make_room(spec, 0)  # again, with the memory the load measured
            return model

    def folder(self, spec: ModelSpec) -> Path | None:
        """Where a local model's files lie on this machine (None: not a local model, or not known)."""
        provider = self.providers.get(spec.provider)
        return provider.folder(spec) if isinstance(provider, HasFolders) else None

    def is_loaded(self, model_id: str) -> bool:
        with self._guard:
            return model_id in self._loaded

    def loaded(self) -> list[ChatModel]:
        with self._guard:
            return list(self._loaded.values())

    # The memory budget and leases

    def lease(self, spec: ModelSpec, *, stop: threading.Event | None = None) -> Lease:
        """The loaded model, held until the lease is released (placeholder until the scheduler lands)."""
        model = self.get(spec)
        with self._guard:
            self._leases[spec.id] += 1
        return Lease(self, spec, model)

    def _release(self, model_id: str) -> None:
        with self._guard:
            self._leases[model_id] -= 1
            if self._leases[model_id] <= 0:
                del self._leases[model_id]

    def busy(self, model_id: str) -> bool:
        with self._guard:
            if self._leases.get(model_id):
                return True
            model = self._loaded.get(model_id)
        return bool(getattr(model, "busy", False))

    def used_bytes(self) -> int:
        return sum(memory_of(m) for m in self.loaded())

    def _make_room(self, incoming: ModelSpec, extra: int) -> None:
        """Close idle local models, least recently used first, until `extra` more bytes fit the budget.

        Models that are streaming are never closed; when only they stand in the way, the load is
        refused with their names. A model larger than the whole budget still loads when it is alone.
        """
        while self.used_bytes() + extra > self.cache_budget_bytes:
            with self._guard:
                others = [m for i, m in self._loaded.items() if i != incoming.id and _is_local(m.spec)]
            if not others:
                return
            idle = [m for m in others if not self.busy(m.spec.id)]
            if not idle:
                names = ", ".join(m.spec.id for m in others)
                raise ModelUnavailableError(
                    f"Not enough memory for {incoming.id} (budget {self.cache_budget_bytes / 1e6:,.0f} MB, "
                    f"PLAYGROUND_MODEL_CACHE_MB) while {names} answer: ask again when they finish."
                )
            self.unload(idle[0].spec.id)

    def _room_for_worker(self, model_id: str, size: int) -> bool:
        """Whether a model may start one more worker of `size` bytes (closing idle models if needed)."""
        with self._guard:
            spec = self._loaded[model_id].spec if model_id in self._loaded else None
        if spec is None:
            return False
        try:
            self._make_room(spec, size)
        except ModelUnavailableError:
            return False
        return self.used_bytes() + size <= self.cache_budget_bytes

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


class Lease:
    """A model held by one request: never evicted until released."""

    def __init__(self, registry: Registry, spec: ModelSpec, model: ChatModel) -> None:
        self.spec, self.model = spec, model
        self._registry = registry
        self._released = False

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions, *, stop: threading.Event | None = None
    ) -> Iterator[Chunk]:
        return self.model.stream(messages, options)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._registry._release(self.spec.id)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def memory_of(model: ChatModel) -> int:
    """What a loaded model holds: its workers' measured memory, or the catalog's estimate."""
    measure = getattr(model, "memory_bytes", None)
    measured = measure() if callable(measure) else 0
    return int(measured) or (model.spec.size_bytes if _is_local(model.spec) else 0)


def _is_local(spec: ModelSpec) -> bool:
    return spec.provider in LOCAL_ENGINES


def _preference(spec: ModelSpec) -> int:
    return PREFERENCE.index(spec.provider) if spec.provider in PREFERENCE else len(PREFERENCE)


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or Path(ref).expanduser().exists()
