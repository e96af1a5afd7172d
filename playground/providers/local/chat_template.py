"""The Phi chat format, used when a model folder carries no chat template of its own."""

from __future__ import annotations

from collections.abc import Sequence

from ...types import Message


def phi_format(messages: Sequence[Message]) -> str:
    """`<|system|>\\n…<|end|>\\n<|user|>\\n…<|end|>\\n<|assistant|>\\n`, as the Phi-3 model cards give it."""
    parts = [f"<|{m.role}|>\n{m.content}<|end|>\n" for m in messages]
    return "".join(parts) + "<|assistant|>\n"
