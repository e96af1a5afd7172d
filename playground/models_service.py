"""Model management for the UI and the CLI: download on request, local models, delete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import PlaygroundError
from .providers.base import WorkerInfo, WorkerPool
from .providers.local import store
from .types import ModelSpec

if TYPE_CHECKING:
    from .context import AppContext

Progress = Callable[[float, str], None]
human_size = store.human_size  # sizes as the Models tab and the CLI show them


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    workers: list[WorkerInfo]
    memory_bytes: int
    busy: bool
    max_workers: int


class ModelManager:
    """Downloads catalog models when a user asks, lists and deletes what is on disk."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    @property
    def models_dir(self) -> Path:
        return self.ctx.settings.models_dir

    def download(self, model_ref: str, progress: Progress | None = None) -> Path:
        spec = self.ctx.registry.resolve(model_ref)
        repo = store.source_str(spec.extra, "repo")
        if not spec.local or not repo:
            raise PlaygroundError(f"{spec.id} is not downloaded from the Hub: nothing to download.")
        if self.ctx.settings.public:
            raise PlaygroundError("Downloads are turned off on this public deployment.")
        subfolder = store.source_str(spec.extra, "subfolder")
        return store.download(
            self.models_dir, repo, subfolder=subfolder, token=self.ctx.settings.hf_token, progress=progress
        )

    def convert(self, src: str, name: str, progress: Progress | None = None) -> Path:
        """Convert a local Hugging Face folder or GGUF file to ONNX Runtime GenAI int4, as
        `<models>/converted/<name>`; refused on a public deployment and for a name that is not a plain
        folder name."""
        if self.ctx.settings.public:
            raise PlaygroundError("Converting local files is turned off on this public deployment.")
        src, name = src.strip(), name.strip()
        if not src or not name or "/" in name or "\\" in name or name.startswith("."):
            raise PlaygroundError("Give a source path and a plain folder name for the result.")
        from .providers.local.convert import convert_to_onnx  # the builder's imports are heavy

        return convert_to_onnx(Path(src), self.models_dir / "converted" / name, progress=progress)

    def local(self) -> list[store.LocalModel]:
        return store.list_local(self.models_dir)

    def delete(self, name: str) -> store.LocalModel:
        if self.ctx.settings.public:
            raise PlaygroundError("Deleting models is turned off on this public deployment.")
        removed = store.delete_local(self.models_dir, name)
        for model in self.ctx.registry.loaded():
            if self._uses(model.spec, removed):
                self.ctx.registry.unload(model.spec.id)
        return removed

    def loaded(self) -> list[LoadedModel]:
        """The models in memory now, with their worker processes (none for in-process and cloud models)."""
        rows = []
        for model in self.ctx.registry.loaded():
            pool = model if isinstance(model, WorkerPool) else None
            rows.append(
                LoadedModel(
                    model.spec,
                    pool.describe() if pool is not None else [],
                    self.ctx.registry.memory_bytes(model.spec.id),
                    self.ctx.registry.busy(model.spec.id),
                    pool.max_workers if pool is not None else 0,
                )
            )
        return rows

    def unload(self, model_id: str) -> str:
        """End a loaded model's workers and return their memory; refused while it answers."""
        if self.ctx.settings.public:
            raise PlaygroundError("Unloading models is turned off on this public deployment.")
        model_id = model_id.strip()
        if model_id not in {m.spec.id for m in self.ctx.registry.loaded()}:
            raise PlaygroundError(f"{model_id or 'That model'} is not loaded.")
        if self.ctx.registry.busy(model_id):
            raise PlaygroundError(f"{model_id} is answering now: stop it or wait, then unload.")
        self.ctx.registry.unload(model_id)
        return model_id

    def _uses(self, spec: ModelSpec, removed: store.LocalModel) -> bool:
        """Whether a loaded model was read from the folder just deleted."""
        return spec.local and store.reads_from(spec, removed, self.models_dir)


def prepare_embedded(models_dir: Path) -> Path:
    """Convert the embedded model once (`python -m playground prepare`, and a Space at start): its
    ONNX Runtime GenAI folder, made from the packaged GGUF file the first time."""
    from .providers.local import embedded

    return embedded.ensure_onnx_folder(models_dir)
