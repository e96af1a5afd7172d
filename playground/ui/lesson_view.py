"""The lesson's paragraph at the top of a demo tab (playground/lesson.py writes it)."""

from __future__ import annotations

import gradio as gr

from ..context import AppContext
from ..lesson import lesson_markdown


def render_lesson(ctx: AppContext, tab: str) -> gr.Markdown:
    """One short paragraph in plain words, and a "Try this" that works offline."""
    return gr.Markdown(lesson_markdown(tab, ctx.registry), elem_id=f"{tab}-lesson", elem_classes=["lesson"])
