"""Assemble the tabs into one Gradio app, and launch it."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from functools import partial
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from .. import token_view
from ..context import AppContext
from ..history import BROWSER_STATE_KEY, BROWSER_STORAGE_SECRET, IdentityKey
from ..public.admission import Admission
from ..public.events import EventKind, pool_work
from ..public.gate import MAX_BODY_BYTES, PRIVATE_BODY_BYTES, UPLOADS_PER_WINDOW, Gate
from ..public.privacy import privacy_notice
from ..settings import Limits, Settings
from ..types import Capability
from ..vision_examples import IMAGES_DIR
from . import styles
from .arena_layout import ArenaUI
from .arena_tab import ArenaTab
from .chat_region import RegionUI
from .evaluate_tab import EvaluateTab
from .history_tab import HistoryTab, VisitorIdentity
from .instruct import InstructTab
from .lesson_view import render_lesson
from .models_tab import ModelsTab
from .moe_tab import MoeTab
from .providers_tab import ProvidersTab
from .vision_tab import VisionTab

log = logging.getLogger(__name__)

TITLE = "SLM Playground"
INTRO = (
    "Chat with small language models — Microsoft's Phi-3, Phi-3.5 and Phi-4 family and the embedded "
    "SmolLM2 — on local engines (ONNX Runtime GenAI, transformers) and servers. Every answer shows its "
    "time to first token and decode speed."
)
CSS = (
    """
.chat-notice { font-size: 0.9em; }
#moe-map table { border-collapse: collapse; font-size: 11px; line-height: 1.1; }
#moe-map th, #moe-map td { border: 1px solid #fff; padding: 1px 4px; text-align: center; white-space: nowrap; }
#moe-map td.moe-cell { color: #111; min-width: 2.2em; cursor: default; }
#moe-map th.moe-token { text-align: left; font-family: monospace; font-weight: normal; }
#moe-map .moe-map { max-height: 300px; overflow: auto; }
#moe-map p { margin: 0 0 4px 0; font-size: 0.85em; }
#vision-chat [data-testid="user"] img { max-height: 96px; width: auto; }
"""
    + styles.CSS
    + token_view.CSS
)  # the lesson's tables, map and paragraphs (styles.py)
BROWSER_COPY_KEY = "slm-playground-history-copy"


def build_app(ctx: AppContext, key: IdentityKey | None = None) -> gr.Blocks:
    """The whole page: one builder per tab, each given the shared context and the visitor's id.

    `key` signs visitor ids (default: PLAYGROUND_BROWSER_SECRET, or the key kept in the data folder);
    it stays on the server. The BrowserStates' `secret` goes to the page, so it is a public constant.
    """
    settings = ctx.settings
    identity = VisitorIdentity(key or IdentityKey.from_settings(settings.browser_secret, settings.data_dir))
    with gr.Blocks(title=TITLE, fill_width=True) as demo:
        browser_id = gr.BrowserState(None, storage_key=BROWSER_STATE_KEY, secret=BROWSER_STORAGE_SECRET)
        owner = gr.State(None)  # who this session is, set on page load; server-side, never from a request
        replaced = gr.State(False)  # the browser presented an id this server did not sign
        with gr.Row():
            gr.Markdown(f"# {TITLE}\n{INTRO}")
            if ctx.settings.oauth:
                gr.LoginButton(scale=0)
        history, providers, instruct_tab = HistoryTab(ctx), ProvidersTab(ctx), InstructTab(ctx)
        with gr.Tabs() as tabs:
            with gr.Tab("Instruct", id="instruct"):
                render_lesson(ctx, "instruct")
                instruct = instruct_tab.build(owner)
            with gr.Tab("Vision", id="vision"):
                render_lesson(ctx, "vision")
                vision = VisionTab(ctx).build(owner)
            with gr.Tab("MoE", id="moe"):
                render_lesson(ctx, "moe")
                moe = MoeTab(ctx).build(owner)
            regions = [instruct, vision, moe]
            with gr.Tab("Arena", id="arena"):
                render_lesson(ctx, "arena")
                arena = ArenaTab(ctx).build(owner)
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate = EvaluateTab(ctx).build(owner)
            with gr.Tab("History", id="history"):
                kept = history.build(owner, tabs)
            with gr.Tab("Models", id="models") as models_page:
                ModelsTab(ctx).build(models_page)
            with gr.Tab("Providers", id="providers"):
                listed = providers.build()
        with gr.Accordion("Privacy: what is stored, and for how long", open=False, elem_id="privacy"):
            gr.Markdown(privacy_notice(settings), elem_id="privacy-notice")
        # Across tabs: History opens a conversation into its chat tab; Refresh updates every picker.
        opened = [component for region in regions for component in region.opened]
        kept.open_button.click(
            partial(history.open, regions), [kept.selected, owner], [*opened, tabs], api_visibility="private"
        )
        pickers = [(r.model, r.capability) for r in regions] + [(p, Capability.CHAT) for p in arena.pickers]
        providers.wire(listed, pickers)
        _wire_load(demo, settings, identity, history, regions, arena, (browser_id, owner, replaced, tabs))
    answers: dict[int, str | None] = {dep["id"]: region.tab for region in regions for dep in region.answered}
    answers.update({dep["id"]: "arena" for dep in arena.answered})
    answers.update({dep["id"]: "arena-fidelity" for dep in arena.measured})
    answers.update({dep["id"]: "evaluate" for dep in evaluate.answered})
    for event in (instruct_tab.api_event, instruct_tab.token_event, instruct_tab.branch_event):
        if event is not None:
            answers[event["id"]] = None  # the API: no pane (each call stands alone)
    _ANSWERS[demo] = answers
    return demo


# The events that write an answer, by function id, with their pane (admission counts only these)
_ANSWERS: weakref.WeakKeyDictionary[gr.Blocks, dict[int, str | None]] = weakref.WeakKeyDictionary()


def answering_events(demo: gr.Blocks) -> dict[int, str | None]:
    """The answering events of an app `build_app` made: function id -> pane key (None: the API)."""
    return dict(_ANSWERS.get(demo, {}))


LAUNCH_OPTIONS: dict[str, Any] = {
    "theme": gr.themes.Soft(),
    "css": CSS,
    "footer_links": ["api", "gradio"],
    "show_error": True,  # an API call with a missing argument gets Gradio's message, not an empty error
    "allowed_paths": [str(IMAGES_DIR)],  # the Vision tab's sample images (drawn by the project)
}
CONCURRENCY = 4  # answers Gradio runs at once per event (the providers' own limits come on top)
MIN_CLEAN_EVERY_S = 60


def serve_options(demo: gr.Blocks, ctx: AppContext, limits: Limits | None = None) -> dict[str, Any]:
    """Set up the app's queue and clean-up, and the options of `demo.launch` (tests launch with these).

    The queue is bounded (PLAYGROUND_QUEUE_SIZE), uploads are refused past PLAYGROUND_UPLOAD_MB before
    their bytes are read (Gradio's max_file_size), Gradio's cached files (uploads included) are deleted
    after PLAYGROUND_FILES_MAX_AGE_MIN, and the gate (admission, abandoned jobs, /healthz) sits in front.
    """
    settings = ctx.settings
    limits = limits or settings.limits  # tests pass their own
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=limits.queue_size)
    if limits.files_max_age_min is not None:
        age = int(limits.files_max_age_min * 60)
        demo.delete_cache = (max(MIN_CLEAN_EVERY_S, age // 4), age)
    kinds = pool_work(demo.fns)  # work events share one small pool: they never take an answer's place
    work = {fn_id for fn_id, kind in kinds.items() if kind == EventKind.WORK}
    public = limits.visitor_jobs is not None  # the public limits are set (tests pass their own)
    answers = answering_events(demo)
    api_answers = {
        fn.api_name: answers[fn_id] for fn_id, fn in demo.fns.items() if fn_id in answers and fn.api_name
    }

    def health() -> dict[str, Any]:
        return {"status": "ok", "public": settings.public, "models_loaded": len(ctx.registry.loaded())}

    gate = Middleware(
        Gate,  # type: ignore[arg-type]
        blocks=demo,
        admission=Admission(limits),
        answers=answers,
        api_answers=api_answers,
        work=work if public else (),  # counted per session and per address in public mode
        upload_budget=int(limits.upload_mb * 1e6 * UPLOADS_PER_WINDOW) if public else None,
        max_body=MAX_BODY_BYTES if public else PRIVATE_BODY_BYTES,
        trust_forwarded=limits.trust_forwarded,
        grace_s=limits.abandon_grace_s,
        health=health,
    )
    options = {
        **LAUNCH_OPTIONS,
        "max_file_size": int(limits.upload_mb * 1024 * 1024),
        "app_kwargs": {"middleware": [gate]},
    }
    if limits.sessions is not None:  # each session costs Gradio ~0.6 MB here (a copy of the page's config)
        options["state_session_capacity"] = limits.sessions
    return options


def listening_line(host: str, port: int, share_url: str | None) -> str:
    """The one line `python app.py` prints once the app serves."""
    shown = f"[{host}]" if ":" in host else host
    line = f"{TITLE} listening on http://{shown}:{port}"
    return f"{line} (public link: {share_url})" if share_url else line


def launch(
    settings: Settings, *, host: str | None = None, port: int | None = None, share: bool = False
) -> None:
    """Build and serve the app, print where it listens; blocks until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if settings.trace_stream:  # per-update timings of every stream (bench/app_vs_engine.py reads them)
        logging.getLogger("playground.trace").setLevel(logging.DEBUG)
    ctx = AppContext.create(settings)
    demo = build_app(ctx)
    if settings.space_id:  # the disk starts empty after each restart: convert before the first visitor asks
        threading.Thread(target=_prepare_embedded, args=(settings,), daemon=True, name="prepare").start()
    try:
        _, _, share_url = demo.launch(
            server_name=host or settings.server_name,
            server_port=port or settings.server_port,
            share=share,
            prevent_thread_lock=True,
            quiet=True,
            **serve_options(demo, ctx),
        )
        print(listening_line(demo.server_name, demo.server_port, share_url), flush=True)
        demo.block_thread()
    finally:
        ctx.close()


def _wire_load(
    demo: gr.Blocks,
    settings: Settings,
    identity: VisitorIdentity,
    history: HistoryTab,
    regions: list[RegionUI],
    arena: ArenaUI,
    states: tuple[Any, ...],
) -> None:
    """On page load: the visitor's id, the Arena's preset link, the history's notice (and, where the
    history also lives in the browser, its copy after every answer)."""
    browser_id, owner, replaced, tabs = states
    loaded = demo.load(identity.load, browser_id, [browser_id, owner, replaced], api_visibility="private")
    demo.load(arena.open_link, None, [tabs, *arena.link_outputs], api_visibility="private")
    if not settings.browser_history:
        loaded.then(history.on_load, [owner, replaced], history.notice, api_visibility="private")
        return
    copy = gr.BrowserState(None, storage_key=BROWSER_COPY_KEY, secret=BROWSER_STORAGE_SECRET)
    loaded.then(history.on_load, [owner, replaced, copy], history.notice, api_visibility="private")
    for event in (event for region in regions for event in region.answered):
        event.then(history.browser_copy, owner, copy, api_visibility="private")


def _prepare_embedded(settings: Settings) -> None:
    """`python -m playground prepare`, in the background (a visitor asking meanwhile waits for the same
    conversion: it is locked per folder and published whole)."""
    from ..models_service import prepare_embedded

    try:
        started = time.perf_counter()
        folder = prepare_embedded(settings.models_dir)
        log.info("Embedded model ready in %.0f s: %s", time.perf_counter() - started, folder)
    except Exception:  # the page still works: the first chat converts it, or says why it cannot
        log.exception("Could not convert the embedded model ahead of the first chat")
