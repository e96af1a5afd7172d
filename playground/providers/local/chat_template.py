"""The Phi chat format, used when a model folder carries no chat template of its own, and by the Phi
vision models (Phi-3-vision, Phi-3.5-vision, Phi-4-multimodal's ONNX builds), whose prompts name each
image with a numbered tag `<|image_N|>`.

The numbers run over the whole conversation: the first image of the first turn is `<|image_1|>`, the
first image of the second turn continues after the last of the first, and the images go to the
processor in the same order (`images_in_order`), so tag N is always the N-th image it receives.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...types import Message


def image_tag(number: int) -> str:
    """`<|image_N|>`, numbered from 1."""
    if number < 1:
        raise ValueError("image tags are numbered from 1")
    return f"<|image_{number}|>"


def phi_format(messages: Sequence[Message]) -> str:
    """`<|system|>\\n…<|end|>\\n<|user|>\\n…<|end|>\\n<|assistant|>\\n`, as the Phi-3 model cards give it.

    A message's images come first in its turn, one numbered tag per line (the model cards' form:
    `<|user|>\\n<|image_1|>\\nWhat is shown?<|end|>`), numbered across the whole conversation.
    """
    parts = []
    number = 0
    for message in messages:
        tags = ""
        for _ in message.images:
            number += 1
            tags += f"{image_tag(number)}\n"
        parts.append(f"<|{message.role}|>\n{tags}{message.content}<|end|>\n")
    return "".join(parts) + "<|assistant|>\n"


def images_in_order(messages: Sequence[Message]) -> list[str]:
    """Every image of the conversation in the order of its tags (tag N is item N-1)."""
    return [image for message in messages for image in message.images]
