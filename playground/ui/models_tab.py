"""The Models tab: what each engine can run, downloads on request (with progress), local models."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from ..context import AppContext
from ..errors import PlaygroundError
from ..models_service import ModelManager, human_size

LOCAL_HEADERS = ["Name", "Kind", "Size", "Path"]
LOADED_HEADERS = ["Id", "Engine", "State", "Memory", "Workers (process id · memory · load time · threads)"]
CATALOG_HEADERS = ["Id", "Model", "Engine", "Parameters", "Context", "Ready", "Reason"]
CATALOG_WIDTHS: list[str | int] = ["20%", "16%", "12%", "9%", "7%", "5%", "31%"]  # all fit: long reasons wrap


def catalog_rows(ctx: AppContext) -> list[list[str]]:
    rows = []
    for row in ctx.registry.rows():
        spec = row.spec
        params = spec.params_total + (f" ({spec.params_active} active)" if spec.params_active else "")
        ready = "yes" if row.availability.available else "no"
        rows.append(
            [
                spec.id,
                spec.name,
                spec.engine_label,
                params,
                f"{spec.context_window:,}",
                ready,
                row.availability.reason,
            ]
        )
    return rows


def local_rows(manager: ModelManager) -> list[list[str]]:
    """The models on this machine; on a public deployment the folder without the server's own path."""
    public = manager.ctx.settings.public
    return [
        [m.name, m.kind, human_size(m.size_bytes), f"…/{m.path.name}" if public else str(m.path)]
        for m in manager.local()
    ]


def loaded_rows(manager: ModelManager) -> list[list[str]]:
    rows = []
    for loaded in manager.loaded():
        workers = "; ".join(
            f"{w.pid} · {human_size(w.memory_bytes)} · {w.load_s:.1f} s · {w.threads or 'default'}"
            + (" · busy" if w.busy else "")
            for w in loaded.workers
        )
        if loaded.max_workers:
            workers = f"{len(loaded.workers)} of up to {loaded.max_workers}: {workers}"
        else:
            workers = "in the app's process"
        state = "answering" if loaded.busy else "idle"
        rows.append(
            [loaded.spec.id, loaded.spec.engine_label, state, human_size(loaded.memory_bytes), workers]
        )
    return rows


def loaded_picker(manager: ModelManager) -> Any:
    """The models loaded now, to pick one to unload."""
    ids = [loaded.spec.id for loaded in manager.loaded()]
    return gr.Dropdown(choices=ids, value=ids[0] if ids else None)


def local_picker(manager: ModelManager) -> Any:
    """The models on this disk, to pick one to delete."""
    names = [m.name for m in manager.local()]
    return gr.Dropdown(choices=names, value=None)


def unload(ctx: AppContext, model_id: str | None) -> tuple[str, list[list[str]], Any]:
    manager = ModelManager(ctx)
    if not model_id:
        message = "Pick a loaded model to unload (none is loaded now: ask one a question first)."
    else:
        try:
            message = f"⏏ Unloaded {manager.unload(model_id)}: its processes ended and their memory is free."
        except PlaygroundError as exc:
            message = f"⚠ {exc}"
    return message, loaded_rows(manager), loaded_picker(manager)


def downloadable(ctx: AppContext) -> list[str]:
    return [
        r.spec.id
        for r in ctx.registry.rows()
        if not r.availability.available and "download" in r.availability.reason
    ]


def download(
    ctx: AppContext,
    model_id: str | None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple[str, list[list[str]], list[list[str]]]:
    """Download a catalog model from the Hub, showing a progress bar."""
    manager = ModelManager(ctx)
    if not model_id:
        return "Pick a model to download.", catalog_rows(ctx), local_rows(manager)
    try:
        path = manager.download(model_id, progress=lambda f, m: progress(f, desc=m))
        message = f"✅ Downloaded {model_id} to {path}"
    except PlaygroundError as exc:
        message = f"⚠ {exc}"
    return message, catalog_rows(ctx), local_rows(manager)


def delete(ctx: AppContext, name: str | None) -> tuple[str, list[list[str]], list[list[str]], Any]:
    manager = ModelManager(ctx)
    if not name:
        message = "Pick a model on this machine to delete."
    else:
        try:
            removed = manager.delete(name.strip())
            message = f"🗑 Deleted {removed.name} ({human_size(removed.size_bytes)})"
        except PlaygroundError as exc:
            message = f"⚠ {exc}"
    return message, catalog_rows(ctx), local_rows(manager), local_picker(manager)


def current(ctx: AppContext) -> tuple[Any, ...]:
    """Everything the tab lists, as it is now (on opening the tab, and on Refresh); a public page has no
    unload picker, so no value for it."""
    manager = ModelManager(ctx)
    lists = (catalog_rows(ctx), local_rows(manager), loaded_rows(manager), local_picker(manager))
    return lists if ctx.settings.public else (*lists, loaded_picker(manager))


def convert(
    ctx: AppContext,
    src: str,
    name: str,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple[str, list[list[str]]]:
    """Convert a local folder or GGUF file to an ONNX Runtime GenAI int4 model under converted/."""
    manager = ModelManager(ctx)
    try:
        path = manager.convert(src, name, progress=lambda f, m: progress(f, desc=m))
        message = f"✅ Converted to {path}. Use it by its path in the model box or the CLI (`-m {path}`)."
    except PlaygroundError as exc:
        message = f"⚠ {exc}"
    return message, local_rows(manager)


class ModelsTab:
    """The catalog, what is loaded now, what is on disk: downloads, unloads, deletes and conversions."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.manager = ModelManager(ctx)

    def build(self, page: gr.Tab | None = None) -> ModelsUI:
        """Lay the tab out, then wire its events; opening `page` (the tab) shows what is loaded now."""
        ui = ModelsUI(*self.render_catalog(), *self.render_loaded(), *self.render_local())
        self.wire(ui)
        if page is not None:
            page.select(self.current, None, self.listed(ui), api_visibility="private", queue=False)
        return ui

    def current(self) -> tuple[Any, ...]:
        """The lists as they are now (opening the tab, Refresh)."""
        return current(self.ctx)

    def listed(self, ui: ModelsUI) -> list[Any]:
        outputs = [ui.catalog, ui.local, ui.loaded, ui.doomed]
        return [*outputs, ui.unloading] if ui.unloading is not None else outputs

    def render_catalog(self) -> tuple[Any, ...]:
        ctx = self.ctx
        gr.Markdown(
            "Every model the catalog knows, on each engine, and whether it is ready. Hub models are "
            "downloaded only when you ask; the embedded SmolLM2 works offline."
            if not ctx.settings.public
            else "The models this public deployment offers, and whether each is ready: the owner's list "
            "(`PLAYGROUND_PUBLIC_MODELS`), or else each model on its fastest engine here, within the memory "
            "budget, and the models of the configured endpoints."
        )
        catalog = gr.Dataframe(
            catalog_rows(ctx),
            headers=CATALOG_HEADERS,
            interactive=False,
            wrap=True,
            column_widths=CATALOG_WIDTHS,
            elem_id="models-catalog",
        )
        status = gr.Markdown(elem_id="models-status")
        with gr.Row():
            choice = gr.Dropdown(downloadable(ctx), label="Download from the Hugging Face Hub", scale=3)
            fetch = gr.Button("Download", scale=1, interactive=not ctx.settings.public)
        return catalog, status, choice, fetch

    def render_loaded(self) -> tuple[Any, ...]:
        gr.Markdown(
            "### Loaded now\n"
            "Each local model runs in worker processes of its own (`PLAYGROUND_ENGINE_PROCESSES`), up to "
            "`PLAYGROUND_ENGINE_WORKERS` per model, each answering one question at a time with its share of "
            "the cores; the memory budget (`PLAYGROUND_MODEL_CACHE_MB`) counts what they hold."
        )
        loaded = gr.Dataframe(
            loaded_rows(self.manager),
            headers=LOADED_HEADERS,
            interactive=False,
            wrap=True,
            elem_id="models-loaded",
        )
        unloading = eject = None
        if not self.ctx.settings.public:  # nothing of the server's memory is changed from a public page
            # (current() leaves its value out under the same condition)
            with gr.Row():
                unloading = gr.Dropdown(
                    [], label="Unload a loaded model", scale=3, elem_id="models-unload-id"
                )
                eject = gr.Button("Unload", scale=1, elem_id="models-unload")
        return loaded, unloading, eject

    def render_local(self) -> tuple[Any, ...]:
        public = self.ctx.settings.public
        gr.Markdown("### On this machine")
        local = gr.Dataframe(
            local_rows(self.manager), headers=LOCAL_HEADERS, interactive=False, elem_id="models-local"
        )
        with gr.Row():
            doomed = gr.Dropdown(
                [m.name for m in self.manager.local()],
                value=None,
                label="Delete a model from this machine",
                scale=3,
                elem_id="models-delete-name",
            )
            remove = gr.Button("Delete", variant="stop", scale=1, interactive=not public)
        src = name = run = None
        if not public:  # nor of its disk
            with gr.Accordion("Convert a local model to ONNX Runtime GenAI (int4, CPU)", open=False):
                src = gr.Textbox(label="Hugging Face folder or .gguf file on this machine")
                name = gr.Textbox(label="Name of the converted model")
                run = gr.Button("Convert")
        refresh = gr.Button("Refresh", size="sm")
        return local, doomed, remove, src, name, run, refresh

    def wire(self, ui: ModelsUI) -> None:
        ctx = self.ctx
        private: dict[str, Any] = {"api_visibility": "private"}
        if ui.eject is not None and ui.unloading is not None:
            ui.eject.click(
                partial(unload, ctx), ui.unloading, [ui.status, ui.loaded, ui.unloading], **private
            )
        if ui.run is not None and ui.src is not None and ui.name is not None:
            ui.run.click(partial(convert, ctx), [ui.src, ui.name], [ui.status, ui.local], **private)
        ui.fetch.click(partial(download, ctx), ui.choice, [ui.status, ui.catalog, ui.local], **private)
        ui.remove.click(
            partial(delete, ctx), ui.doomed, [ui.status, ui.catalog, ui.local, ui.doomed], **private
        )
        ui.refresh.click(self.current, None, self.listed(ui), **private)


@dataclass
class ModelsUI:
    catalog: gr.Dataframe
    status: gr.Markdown
    choice: gr.Dropdown
    fetch: gr.Button
    loaded: gr.Dataframe
    unloading: gr.Dropdown | None  # None on a public deployment
    eject: gr.Button | None
    local: gr.Dataframe
    doomed: gr.Dropdown
    remove: gr.Button
    src: gr.Textbox | None  # None on a public deployment
    name: gr.Textbox | None
    run: gr.Button | None
    refresh: gr.Button
