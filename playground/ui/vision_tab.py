"""The Vision tab: the chat region with images (upload, paste, webcam), vision models, example tasks.

Images are checked by the chat service before anything is sent (playground/images.py); a model that
cannot take them refuses with a message, which this tab shows as it shows any error.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..context import AppContext
from ..errors import PlaygroundError
from ..types import Capability, ModelSpec
from ..vision_examples import load_vision_examples
from . import render
from .chat_region import ChatRegion, RegionConfig

CONFIG = RegionConfig(
    prefix="vision",
    tab="vision",
    capability=Capability.VISION,
    images=True,
    custom_models=True,  # any model may be typed: one that takes no images says so when asked
    chat_placeholder="Attach one or several images (📎, paste, or the webcam below) and ask about them.",
    input_placeholder="Ask about the images; attach with 📎 or paste, Enter to send",
)
DEMO_NOTE = (
    "**Random weights**: this tiny model shows the mechanism (the image goes through the real processor "
    "and vision encoder), not what a vision model sees; its answers are gibberish."
)


def vision_note(spec: ModelSpec) -> str:
    """Under the card: the demo's label, and what the images become for this model."""
    lines = [DEMO_NOTE] if spec.extra.get("demo") else []
    if Capability.VISION not in spec.capabilities:
        lines.append(f"⚠ {spec.name} on {spec.engine_label} does not take images.")
    elif spec.takes_num_crops:
        lines.append(
            "Each image is cut into `num_crops` tiles (Parameters): 16 for one detailed image, 4 for frames."
        )
    return "\n\n".join(lines)


class VisionTab(ChatRegion):
    """The chat region with images and the vision models."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx, CONFIG)

    def render_card_extra(self, spec: ModelSpec) -> list[Any]:
        return [gr.Markdown(vision_note(spec), elem_id="vision-note")]

    def describe_extra(self, model_id: str) -> tuple[Any, ...]:
        try:
            spec = self.ctx.registry.resolve(model_id)
        except PlaygroundError:
            return ("",)
        return (render.safe_markdown(vision_note(spec)),)

    def render_examples(self, question: Any, num_crops: Any) -> None:
        """The example tasks of prompts/vision.toml, with the sample images the project draws."""
        examples = load_vision_examples()
        if not examples:
            return
        gr.Examples(
            [[{"text": e.prompt, "files": [str(p) for p in e.images]}, e.num_crops or 0] for e in examples],
            inputs=[question, num_crops],
            example_labels=[e.title for e in examples],
            label="Example tasks (the images are drawn by the project)",
        )
