"""The Arena's "Compare token by token": when both sides are models run here (named mode), one text is fed
through both and the page shows, per token, how far side A's next-token distribution is from the
reference's (KL divergence) and whether their most likely tokens agree, with the totals (fidelity/).

Meant for two variants of one model (its ONNX Runtime GenAI int4 build against its transformers float32
one): two models that split the text differently are refused with a message.
"""

from __future__ import annotations

import html
import json
from typing import Any

import gradio as gr

from ..context import AppContext
from ..errors import PlaygroundError
from ..fidelity import Fidelity, measure
from . import render
from .arena_display import NAMED
from .downloads import DownloadFolder

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
SAMPLE = (
    "The capital of France is Paris. It is known for the Eiffel Tower, its museums and the cafés along "
    "the Seine, and millions of people visit it every year."
)
REFERENCES = ("B is the reference", "A is the reference")
HOW = (
    "Both sides run here: feed one text through both and see, per token, how far one variant's "
    "prediction is from the reference's (KL divergence, 0 when they agree exactly) and whether their most "
    "likely next tokens are the same. For two variants of one model (same tokenizer), such as its ONNX "
    "int4 build against its transformers float32 one."
)
FULL_KL = 2.0  # nats: a token this far from the reference is drawn in the strongest colour


class FidelityPanel:
    """The accordion under the Arena's panes and its one action."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        age = ctx.settings.limits.files_max_age_min
        self.downloads = DownloadFolder("fidelity", None if age is None else age * 60)  # pruned by age

    def build(self, mode: gr.Radio, model_a: gr.Dropdown, model_b: gr.Dropdown) -> Any:
        """Lay the panel out under the panes; its Compare event (the gate admits it as an answer)."""
        shown = self.available(str(mode.value), str(model_a.value), str(model_b.value))
        with gr.Accordion(
            "Compare token by token (how much a variant changes the model)",
            open=False,
            visible=shown,
            elem_id="arena-fidelity",
        ) as box:
            gr.Markdown(HOW)
            text = gr.Textbox(
                SAMPLE, lines=3, max_lines=10, label="Text fed through both", elem_id="arena-fidelity-text"
            )
            reference = gr.Radio(
                list(REFERENCES), value=REFERENCES[0], label="Reference", elem_id="arena-fidelity-reference"
            )
            run = gr.Button("Compare token by token", elem_id="arena-fidelity-run")
            summary = gr.Markdown(elem_id="arena-fidelity-summary")
            tokens = gr.HTML(elem_id="arena-fidelity-tokens")
            download = gr.DownloadButton(
                "Download as JSON", visible=False, size="sm", elem_id="arena-fidelity-download"
            )
        for changed in (mode.change, model_a.change, model_b.change):
            changed(self.show, [mode, model_a, model_b], box, queue=False, **PRIVATE)
        return run.click(
            self.compare, [model_a, model_b, text, reference], [summary, tokens, download], **PRIVATE
        )

    def available(self, mode: str, model_a: str, model_b: str) -> bool:
        """Named mode, and both sides are models run here."""
        if mode != NAMED:
            return False
        try:
            return all(self.ctx.registry.resolve(ref).local for ref in (model_a, model_b))
        except PlaygroundError:
            return False

    def show(self, mode: str, model_a: str, model_b: str) -> Any:
        return gr.Accordion(visible=self.available(mode, model_a or "", model_b or ""))

    def compare(self, model_a: str, model_b: str, text: str, reference: str) -> tuple[str, str, Any]:
        """The totals, the tokens and the comparison as a JSON file (what `python -m playground
        fidelity --json` prints), or why they cannot be had."""
        model, ref = (model_b, model_a) if reference == REFERENCES[1] else (model_a, model_b)
        try:
            result = measure(self.ctx.registry, model, ref, text or "")
        except PlaygroundError as exc:
            render.warn(exc)
            return render.safe_markdown(f"⚠ {exc}"), "", gr.DownloadButton(visible=False)
        path = self.downloads.write(
            "fidelity.json", json.dumps(result.to_dict(), ensure_ascii=False, indent=2)
        )
        return summary_markdown(result), tokens_html(result), gr.DownloadButton(value=str(path), visible=True)


def summary_markdown(result: Fidelity) -> str:
    lines = [
        f"**Mean KL {result.mean_kl:.4f} nats** (largest {result.max_kl:.4f}) · **same top token at "
        f"{100 * result.same_top:.1f}%** of {len(result.tokens)} positions",
        f"Perplexity on the text: {result.model} **{result.perplexity_model:.2f}**, reference "
        f"{result.reference} **{result.perplexity_reference:.2f}**",
    ]
    if result.note:
        lines.append(result.note)
    return render.safe_markdown("\n\n".join(lines))


def tokens_html(result: Fidelity) -> str:
    """The text's tokens, each tinted by its KL (hover: the numbers, both top tokens); a token whose top
    tokens differ is underlined. Every text is escaped."""
    spans = []
    for row in result.tokens:
        alpha = min(1.0, row.kl / FULL_KL)
        title = (
            f"KL {row.kl:.4f} · top token: {row.top_model!r} (model), {row.top_reference!r} (reference) · "
            f"log-probability {row.logprob_model:.3f} (model), {row.logprob_reference:.3f} (reference)"
        )
        style = f"background:rgba(225,87,89,{alpha:.2f})"
        differs = "" if row.same_top else " fid-differs"
        spans.append(
            f'<span class="fid-token{differs}" style="{style}" title="{html.escape(title, quote=True)}">'
            f"{html.escape(row.token)}</span>"
        )
    return f'<div class="fid-tokens">{"".join(spans)}</div>'
