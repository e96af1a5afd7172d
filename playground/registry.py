"""The registry: every model of every provider, looked up by id; leased through the scheduler, which
loads them lazily and keeps them within the memory budget."""

from __future__ import annotations

import difflib
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelUnavailableError, UnknownModelError
from .providers.base import ChatModel, HasFolders, Provider
from .providers.local import path_spec
from .scheduler import Lease, Scheduler
from .types import Availability, Capability, ModelSpec

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


MAX_REFERENCE_CHARS = 1024  # a model id, a catalog key or a folder's path
PATH_STARTS = ("/", ".", "~")


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
    """Lookup and resolution of every provider's models, what a public deployment offers, and leases
    on loaded models (the scheduler behind it loads, evicts and runs them within the memory budget)."""

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
        self.scheduler = Scheduler(cache_budget_bytes, self._load)
        self._guard = threading.Lock()
        self._path_specs: dict[str, ModelSpec] = {}

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
        check_reference(ref)
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
        if not self.allow_paths and ref.startswith(PATH_STARTS):  # public: a visitor's text is no path
            raise UnknownModelError("This is a public deployment: pick a model from the list.")
        if self.allow_paths and _looks_like_path(ref):
            return self._path_spec(Path(ref), provider)
        shown = [s.id for s in specs if self.offered(s)]
        close = difflib.get_close_matches(ref, shown + [i.split("@")[0] for i in shown], n=3)
        hint = f" Did you mean {', '.join(dict.fromkeys(close))}?" if close else ""
        shown_ref = ref if len(ref) <= 80 else f"{ref[:60]}…"
        raise UnknownModelError(
            f"Unknown model {shown_ref!r}.{hint}{self._listing_problem(provider)} "
            "`python -m playground models` lists them."
        )

    def _listing_problem(self, provider: str | None) -> str:
        """Why a provider's models may be missing: its endpoint could not list them (it timed out)."""
        if provider is None or provider not in self.providers:
            return ""
        from .providers.cloud import provider_statuses

        status = provider_statuses([self.providers[provider]])[0]
        if status.reachable is False and status.error:
            return f" {status.label} could not list its models: {status.error}"
        return ""

    def _path_spec(self, path: Path, provider: str | None) -> ModelSpec:
        spec = path_spec(path, provider)
        self._path_specs[spec.id] = spec
        return spec

    # Loaded models: the scheduler owns them (memory budget, leases, workers, eviction)

    def lease(self, spec: ModelSpec, *, stop: threading.Event | None = None) -> Lease:
        """Load the model if it is not loaded (once, even under concurrent first requests) and hold
        it: a leased model is never evicted. Room for a load is made by closing idle local models,
        least recently used first, only when closing them frees enough; when only leased models stand
        in the way, it waits until they are released (StoppedError when `stop` is set meanwhile). A
        model larger than the whole budget still loads when it is alone. Remote models use no budget.
        """
        if spec.id not in self._path_specs and not self.offered(spec):
            raise self._not_offered(spec)
        self._backend(spec)  # an unknown provider is refused before anything is evicted for it
        return self.scheduler.lease(spec, budgeted=_is_local(spec), stop=stop)

    def _backend(self, spec: ModelSpec) -> Provider:
        backend = self.providers.get(spec.provider)
        if backend is None:
            raise ModelUnavailableError(f"Provider {spec.provider!r} is not configured.")
        return backend

    def _load(self, spec: ModelSpec) -> ChatModel:
        """The scheduler's way to load a model (called outside its lock)."""
        return self._backend(spec).load(spec)

    @property
    def loads(self) -> Counter[str]:
        """Loads per model id, since the start."""
        return self.scheduler.loads

    def is_loaded(self, model_id: str) -> bool:
        return self.scheduler.is_loaded(model_id)

    def folder(self, spec: ModelSpec) -> Path | None:
        """Where a local model's files lie on this machine (None: not a local model, or not known)."""
        provider = self.providers.get(spec.provider)
        return provider.folder(spec) if isinstance(provider, HasFolders) else None

    def loaded(self) -> list[ChatModel]:
        """The loaded models, least recently leased first."""
        return self.scheduler.loaded()

    def busy(self, model_id: str) -> bool:
        """Whether a loaded model is leased or answering."""
        return self.scheduler.busy(model_id)

    def load_seconds(self, model_id: str) -> float | None:
        """How long the model's last load took (None: never loaded here)."""
        return self.scheduler.load_s.get(model_id)

    def memory_bytes(self, model_id: str) -> int:
        """What a loaded model holds: its workers' measured memory, or the estimate the budget counts."""
        return self.scheduler.memory_bytes(model_id)

    def unload(self, model_id: str) -> None:
        """Close a model now when it is idle; a leased one when its last lease and answer end."""
        self.scheduler.unload(model_id)

    def close_all(self) -> None:
        self.scheduler.close_all()


def _is_local(spec: ModelSpec) -> bool:
    return spec.local


def _preference(spec: ModelSpec) -> int:
    return PREFERENCE.index(spec.provider) if spec.provider in PREFERENCE else len(PREFERENCE)


def check_reference(ref: str) -> None:
    """A model reference's length and shape, checked before anything touches the file system."""
    if not ref:
        raise UnknownModelError("No model given: pick one from the list (`python -m playground models`).")
    if len(ref) > MAX_REFERENCE_CHARS:
        raise UnknownModelError(
            f"That model reference is {len(ref):,} characters long; a model id or a folder's path is at "
            f"most {MAX_REFERENCE_CHARS:,}. Pick a model from the list (`python -m playground models`)."
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in ref):
        raise UnknownModelError(
            "A model reference holds no control characters (a new line, a tab): pick a model from the list."
        )


def _looks_like_path(ref: str) -> bool:
    if ref.startswith(PATH_STARTS):
        return True
    try:
        return Path(ref).expanduser().exists()
    except (OSError, RuntimeError, ValueError):  # too long a name, ~unknownuser: not a path here
        return False
