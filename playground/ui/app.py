"""Assemble the tabs into one Gradio app, and launch it."""

from __future__ import annotations

import logging

import gradio as gr

from ..context import AppContext
from ..settings import Settings
from . import instruct, models_tab

TITLE = "SLM Playground"
INTRO = (
    "Chat with small language models — Microsoft's Phi-3, Phi-3.5 and Phi-4 family and the embedded "
    "SmolLM2 — on local engines (ONNX Runtime GenAI, transformers) and servers. Every answer shows its "
    "time to first token and decode speed."
)
CSS = """
#instruct-meter, #instruct-notice { font-size: 0.9em; }
"""


def build_app(ctx: AppContext) -> gr.Blocks:
    """The whole page: one tab builder per tab, each given the shared context."""
    with gr.Blocks(title=TITLE, fill_width=True) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Tabs():
            with gr.Tab("Instruct", id="instruct"):
                instruct.build(ctx)
            with gr.Tab("Models", id="models"):
                models_tab.build(ctx)
    return demo


def launch(settings: Settings, *, host: str | None = None, port: int | None = None, share: bool = False) -> None:
    """Build and serve the app; blocks until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ctx = AppContext.create(settings)
    demo = build_app(ctx)
    demo.queue(default_concurrency_limit=4)
    try:
        demo.launch(
            server_name=host or settings.server_name,
            server_port=port or settings.server_port,
            share=share,
            theme=gr.themes.Soft(),
            css=CSS,
            footer_links=["api", "gradio"],
        )
    finally:
        ctx.close()
