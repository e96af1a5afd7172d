"""Fidelity's service: both models leased in turn (one at a time, so two variants never need room in
memory together), the text fed through each, then compared (compute.py)."""

from __future__ import annotations

from dataclasses import replace

from ..errors import InvalidOptionsError
from ..providers.base import Forced, ScoresText
from ..registry import Registry
from ..text import valid_text
from .compute import Fidelity, compare

MAX_TOKENS = 256  # of the text: each position's whole distribution travels from the engine's process
MAX_CHARS = 20_000


def measure(
    registry: Registry, model: str, reference: str, text: str, *, limit: int = MAX_TOKENS
) -> Fidelity:
    """Fidelity of `model` to `reference` over the first `limit` tokens of `text`."""
    text = valid_text(text or "")
    if not text.strip():
        raise InvalidOptionsError("The text is empty: give a text to feed through both models.")
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]  # far more than `limit` tokens: the rest would be cut anyway
    if not 2 <= limit <= 4096:
        raise InvalidOptionsError(f"The token limit is 2 to 4,096, got {limit}.")
    runs = [_forced(registry, ref, text, limit) for ref in (model, reference)]
    names = (runs[0][0], runs[1][0])
    result = compare(runs[0][1], runs[1][1], names)
    if result.text_tokens > len(result.tokens) + 1:
        cut = f"Compared on the first {len(result.tokens) + 1:,} of the text's {result.text_tokens:,} tokens."
        result = _noted(result, cut)
    return result


def _forced(registry: Registry, ref: str, text: str, limit: int) -> tuple[str, Forced]:
    spec = registry.resolve(ref)
    if not spec.local:
        raise InvalidOptionsError(
            f"{spec.name} on {spec.engine_label} runs elsewhere: a text can be fed token by token only "
            "through a model run here (ONNX Runtime GenAI or transformers)."
        )
    with registry.lease(spec) as lease:
        model = lease.model
        if not isinstance(model, ScoresText):
            raise InvalidOptionsError(
                f"{spec.engine_label} cannot feed {spec.name} a text token by token: pick a model run "
                "here with ONNX Runtime GenAI or transformers."
            )
        return spec.id, model.teacher_forced(text, limit)


def _noted(result: Fidelity, note: str) -> Fidelity:
    return replace(result, note=" ".join(part for part in (result.note, note) if part))
