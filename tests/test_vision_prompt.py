"""The Phi prompt builder: numbered <|image_N|> tags, consistent over the conversation, in the order the
processor receives the images (the tiny vision model uses another format, so this has its own test)."""

from __future__ import annotations

import pytest

from playground.providers.local.chat_template import image_tag, images_in_order, phi_format
from playground.types import Message


def test_one_image_follows_the_model_cards_form() -> None:
    prompt = phi_format([Message("user", "What is shown?", images=("a.png",))])
    assert prompt == "<|user|>\n<|image_1|>\nWhat is shown?<|end|>\n<|assistant|>\n"


def test_tags_are_numbered_across_turns_and_match_the_image_order() -> None:
    conversation = [
        Message("system", "Answer briefly."),
        Message("user", "Compare these two.", images=("red.png", "blue.png")),
        Message("assistant", "The first is red, the second blue."),
        Message("user", "And this one?", images=("green.png",)),
        Message("assistant", "Green."),
        Message("user", "Which of the three is darkest?"),
        Message("user", "Frames:", images=("f1.png", "f2.png", "f3.png")),
    ]
    prompt = phi_format(conversation)
    assert prompt == (
        "<|system|>\nAnswer briefly.<|end|>\n"
        "<|user|>\n<|image_1|>\n<|image_2|>\nCompare these two.<|end|>\n"
        "<|assistant|>\nThe first is red, the second blue.<|end|>\n"
        "<|user|>\n<|image_3|>\nAnd this one?<|end|>\n"
        "<|assistant|>\nGreen.<|end|>\n"
        "<|user|>\nWhich of the three is darkest?<|end|>\n"
        "<|user|>\n<|image_4|>\n<|image_5|>\n<|image_6|>\nFrames:<|end|>\n"
        "<|assistant|>\n"
    )
    order = images_in_order(conversation)
    assert order == ["red.png", "blue.png", "green.png", "f1.png", "f2.png", "f3.png"]
    for number, image in enumerate(order, 1):  # tag N is the N-th image the processor receives
        assert prompt.count(image_tag(number)) == 1
        assert order[number - 1] == image
    assert "<|image_7|>" not in prompt and "<|image_0|>" not in prompt


def test_numbering_is_stable_when_a_turn_is_added() -> None:
    """Earlier turns keep their numbers when the conversation grows (the prompt only grows at the end)."""
    first = [Message("user", "One", images=("a.png",)), Message("assistant", "ok")]
    grown = [*first, Message("user", "Two", images=("b.png",))]
    before = phi_format(first).removesuffix("<|assistant|>\n")
    assert phi_format(grown).startswith(before)
    assert phi_format(grown).endswith("<|user|>\n<|image_2|>\nTwo<|end|>\n<|assistant|>\n")


def test_text_only_conversations_are_unchanged() -> None:
    assert phi_format([Message("user", "Hi")]) == "<|user|>\nHi<|end|>\n<|assistant|>\n"
    assert images_in_order([Message("user", "Hi")]) == []
    with pytest.raises(ValueError):
        image_tag(0)
