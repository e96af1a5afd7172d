"""The chat region's optional controls (chat_layout.py lays them out): the webcam of a tab that takes
images, the num_crops slider, the Response format control (structured output) and the Token view's
toggle, with the events that belong to them alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from ..structured import KINDS, ResponseFormat
from .chat_parts import attach_photo

if TYPE_CHECKING:
    from .chat_region import ChatRegion

PRIVATE: dict[str, Any] = {"api_visibility": "private"}


@dataclass
class ResponseFormatInputs:
    """Structured output: text, JSON, a JSON schema or a regex, and the schema or pattern."""

    kind: gr.Radio
    example: gr.Dropdown
    spec: gr.Code

    @property
    def inputs(self) -> list[Any]:
        """What a handler reads of it: the kind, then the schema or pattern."""
        return [self.kind, self.spec]


def render_webcam(prefix: str, question: Any) -> None:
    """A webcam snapshot, attached to the question being written (its event is wired here: it
    belongs to the camera alone)."""
    with gr.Accordion("Webcam", open=False):
        camera = gr.Image(
            sources=["webcam"],
            type="filepath",
            label="Take a photo",
            elem_id=f"{prefix}-webcam",
            height=240,
        )
        attach = gr.Button("Attach the photo to the question", size="sm", elem_id=f"{prefix}-attach-photo")
    attach.click(attach_photo, [camera, question], [question, camera], queue=False, **PRIVATE)


def render_num_crops(prefix: str, spec: Any, *, images: bool) -> Any:
    """The setting only Phi-3/3.5-vision on transformers takes: a slider where images are taken,
    shown for the models that read it; a hidden None elsewhere."""
    if not images:
        return gr.State(None)
    return gr.Slider(
        0,
        16,
        value=0,
        step=1,
        label="Crops per image (num_crops)",
        info="0 = the model's own setting; 16 for one detailed image, 4 for several frames",
        visible=spec.takes_num_crops,
        elem_id=f"{prefix}-num-crops",
    )


def render_response_format(prefix: str, examples: Mapping[str, ResponseFormat]) -> ResponseFormatInputs:
    """Structured output: the kind, an example from prompts/formats.toml, the schema or pattern."""
    p = prefix
    with gr.Accordion("Response format", open=False, elem_id=f"{p}-format-box"):
        kind = gr.Radio(list(KINDS), value="Text", label="Hold the answer to", elem_id=f"{p}-format")
        example = gr.Dropdown(list(examples), value=None, label="Examples", elem_id=f"{p}-format-example")
        spec = gr.Code(
            "",
            language="json",
            label="JSON schema or pattern",
            interactive=True,
            elem_id=f"{p}-format-spec",
        )
    return ResponseFormatInputs(kind, example, spec)


def wire_answer_controls(
    region: ChatRegion, token_view: gr.Checkbox, tokens: Any, response: ResponseFormatInputs
) -> None:
    """The Token view toggle shows or hides the view; an example fills the Response format control."""
    token_view.change(region.toggle_tokens, token_view, tokens, queue=False, **PRIVATE)
    response.example.change(
        region.pick_format, response.example, [response.kind, response.spec], queue=False, **PRIVATE
    )
