"""The MoE tab: the chat region with mixture-of-experts models, the model's card, and beside the answer a
token × layer map of the experts each generated token was routed to, with the load on each expert.

The map is drawn from the expert records the stream carries (one per generated token, local transformers
models), once per update while the answer streams, and from the history's copy when a conversation is
opened again (playground/moe_view.py turns records into the plot's data).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import gradio as gr
import pandas as pd

from ..context import AppContext
from ..errors import PlaygroundError
from ..moe_view import RoutingMap, card, routing_map, stored_map
from ..types import Capability, ExpertRecord, ModelSpec
from . import render
from .chat_region import ChatRegion, RegionConfig
from .render import Turn

CONFIG = RegionConfig(
    prefix="moe",
    tab="moe",
    capability=Capability.MOE,
    chat_placeholder="Ask anything: beside the answer, the experts each token was routed to.",
)
DEMO_LABEL = "Random weights: this shows the mechanism, not learned specialisation."
ARENA_NOTE = (
    "How does it compare with a dense model? The Arena tab has a preset, *Dense Phi-3.5-mini vs "
    "Phi-3.5-MoE*, that asks both the same question side by side."
)
# One colour per expert (cycled past 20): Tableau 20, light and dark pairs split apart.
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#bab0ac", "#a0cbe8", "#ffbe7d", "#ff9d9a", "#86bcb6", "#8cd17d", "#f1ce63", "#d4a6c8", "#fabfd2",
    "#d7b5a6", "#79706e",
)  # fmt: skip
LOAD_COLUMNS = ["expert", "count", "share"]
TOKEN_CHARS = 12  # a row's label: longer tokens are cut, whole in the hover
WAITING = "The map fills in as the answer streams: one row per generated token, one column per layer."


def colour(expert: int) -> str:
    return PALETTE[expert % len(PALETTE)] if expert >= 0 else "#eeeeee"


def expert_label(expert: int) -> str:
    return f"{expert:02d}"


def card_markdown(spec: ModelSpec) -> str:
    """What the tab says about the picked model: experts, active parameters, the demo's label."""
    moe = card(spec)
    if moe is None:
        return f"{spec.name} is not a mixture-of-experts model."
    lines = [f"**{moe.name}**: {moe.summary()}" if moe.summary() else f"**{moe.name}**"]
    if moe.demo:
        lines.append(f"⚠ **{DEMO_LABEL}**")
    description = moe.description.removeprefix(DEMO_LABEL).strip() if moe.demo else moe.description
    if description:
        lines.append(description)
    if not moe.records_experts:
        lines.append(
            f"{spec.engine_label} does not report which experts a token went to: the map needs the model "
            "run locally with transformers."
        )
    lines.append(ARENA_NOTE)
    return "\n\n".join(lines)


def map_html(routing: RoutingMap | None, waiting: bool = False) -> str:
    """The token × layer map as an HTML table: a cell's colour is its top expert, its text every chosen
    expert, and its hover the token, the experts and their weights. Every token is escaped."""
    if routing is None or routing.empty:
        text = WAITING if waiting else "No expert map yet: ask a question with a local MoE model."
        return f'<p class="moe-empty">{html.escape(text)}</p>'
    head = "".join(f"<th>L{layer}</th>" for layer in range(routing.layers))
    rows = []
    for t, token in enumerate(routing.tokens):
        cells = "".join(
            f'<td class="moe-cell" style="background:{colour(routing.top[t][layer])}" '
            f'title="{html.escape(routing.hover[t][layer], quote=True)}">'
            f"{html.escape(' '.join(str(e) for e in routing.experts[t][layer]))}</td>"
            for layer in range(routing.layers)
        )
        full = f"{t} {token}"
        rows.append(
            f'<tr><th class="moe-token" title="{html.escape(full, quote=True)}">'
            f"{html.escape(short_token(full))}</th>{cells}</tr>"
        )
    caption = (
        f"{len(routing.tokens)} tokens × {routing.layers} layers; {routing.top_k} of {routing.num_experts} "
        "experts per token and layer. Colour: the expert with the highest weight; hover a cell for the "
        "weights."
    )
    return (
        f'<div class="moe-map"><p>{html.escape(caption)}</p><table><thead><tr><th>token</th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def short_token(text: str, limit: int = TOKEN_CHARS) -> str:
    """A row's label cut to `limit` characters (the whole text is its hover)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_frame(routing: RoutingMap | None) -> pd.DataFrame | None:
    """The load on each expert, for the bar plot (None before any record: an empty plot, not NaN axes)."""
    if routing is None or routing.empty:
        return None
    rows = [{**row, "expert": expert_label(int(row["expert"]))} for row in routing.load_rows()]  # type: ignore[call-overload]
    return pd.DataFrame(rows, columns=LOAD_COLUMNS)


def last_map(conversation: list[Turn]) -> RoutingMap | None:
    """The map of the latest answer that has one (kept in the turn, live or from the history)."""
    for turn in reversed(conversation):
        if turn["role"] == "assistant" and turn.get("experts"):
            try:
                return stored_map(turn["experts"])
            except PlaygroundError:
                return None
    return None


class MoeTab(ChatRegion):
    """The chat region with mixture-of-experts models and the expert map."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx, CONFIG)

    def render_card_extra(self, spec: ModelSpec) -> list[Any]:
        return [gr.Markdown(render.safe_markdown(card_markdown(spec)), elem_id="moe-card")]

    def describe_extra(self, model_id: str) -> tuple[Any, ...]:
        try:
            return (render.safe_markdown(card_markdown(self.ctx.registry.resolve(model_id))),)
        except PlaygroundError as exc:
            return (render.safe_markdown(f"⚠ {exc}"),)

    def render_beside(self) -> list[Any]:
        with gr.Column(scale=2, min_width=280):
            expert_map = gr.HTML(map_html(None), elem_id="moe-map", label="Which experts each token went to")
            load = gr.BarPlot(
                load_frame(None),
                x="expert",
                y="count",
                color="expert",
                color_map={expert_label(e): colour(e) for e in range(self.most_experts())},
                title="Load on each expert",
                x_title="expert",
                y_title="times chosen (tokens × layers)",
                y_lim=[0, None],
                tooltip=["expert", "count", "share"],
                height=200,
                elem_id="moe-load",
            )
        return [expert_map, load]

    def most_experts(self) -> int:
        """The most experts any listed MoE model has (the colours the plot's legend names)."""
        cards = [card(spec) for spec in self.ctx.registry.specs(Capability.MOE)]
        return max((c.experts for c in cards if c is not None), default=16) or 16

    def shown(self, conversation: list[Turn], live: Sequence[ExpertRecord] | None = None) -> tuple[Any, ...]:
        routing = routing_map(live) if live else (None if live is not None else last_map(conversation))
        return map_html(routing, waiting=live is not None), load_frame(routing)
