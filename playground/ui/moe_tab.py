"""The MoE tab: the chat region with mixture-of-experts models, the model's card, and beside the answer a
token × layer map of the experts each generated token was routed to, with the load on each expert.

The map is drawn from the expert records the stream carries (one per generated token, local transformers
models): by delta while the answer streams (each update adds only the new tokens' rows, moe_map.py), and
whole from the history's copy when a conversation is opened again (moe_view.py turns records into the
plot's data).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..context import AppContext
from ..errors import PlaygroundError
from ..moe_view import card
from ..types import Capability, ModelSpec
from . import delta, render
from .chat_parts import AnswerView
from .chat_region import ChatRegion, RegionConfig
from .moe_map import LiveMap, colour, expert_label, last_map, load_frame, map_value
from .moe_map import map_html as map_html  # the whole map's HTML, for the tab's readers
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
            expert_map = delta.delta_html(
                map_value(None), elem_id="moe-map", label="Which experts each token went to"
            )
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

    def shown(self, conversation: list[Turn], live: AnswerView | None = None) -> tuple[Any, ...]:
        """The map and the load: drawn whole for a conversation, by delta for the answer streaming now
        (one LiveMap per answer, kept with it)."""
        if live is None:
            routing = last_map(conversation)
            return map_value(routing), load_frame(routing)
        view = live.views.setdefault("moe", LiveMap())
        return view.update(live.records)
