"""How much a quantized variant changes a model: one text fed through two local variants (teacher forcing),
compared token by token as llama.cpp's `llama-perplexity --kl-divergence` does.

At each position: the KL divergence of the variant's next-token distribution from the reference's
(KL(P_ref || P_variant), in nats), whether their most likely tokens agree, and each one's log-probability
of the text's actual next token. Totals: the mean KL, the share of positions whose top tokens agree, and
each variant's perplexity on the text. The two must share a tokenizer (the same text, the same ids).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidOptionsError

MAX_TOKENS = 2048  # of the text: the ONNX variant runs one step a token


@dataclass(frozen=True)
class Position:
    """One token of the text, predicted from the ones before it."""

    text: str
    id: int
    kl: float
    same_top: bool
    top: str  # the variant's most likely token
    reference_top: str
    logprob: float  # the variant's log-probability of the actual token
    reference_logprob: float


@dataclass
class Fidelity:
    variant: str
    reference: str
    positions: list[Position] = field(default_factory=list)

    @property
    def mean_kl(self) -> float:
        return float(np.mean([p.kl for p in self.positions])) if self.positions else 0.0

    @property
    def same_top(self) -> float:
        """The share of positions (0 to 1) where both variants' most likely tokens agree."""
        return sum(p.same_top for p in self.positions) / len(self.positions) if self.positions else 1.0

    def perplexity(self, reference: bool = False) -> float:
        values = [p.reference_logprob if reference else p.logprob for p in self.positions]
        return math.exp(-float(np.mean(values))) if values else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "reference": self.reference,
            "tokens": len(self.positions),
            "mean_kl": self.mean_kl,
            "same_top": self.same_top,
            "perplexity": self.perplexity(),
            "reference_perplexity": self.perplexity(reference=True),
            "positions": [asdict(p) for p in self.positions],
        }


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - float(np.max(logits))
    return shifted - math.log(float(np.exp(shifted).sum()))


def compare(variant: Any, reference: Any, text: str, names: tuple[str, str]) -> Fidelity:
    """`variant` against `reference` (engines with `encode`, `next_logits` and a tokenizer decode) on
    `text`; InvalidOptionsError when they tokenize it differently or it is too short or too long."""
    ids = variant.encode(text)
    if ids != reference.encode(text):
        raise InvalidOptionsError(
            f"{names[0]} and {names[1]} do not share a tokenizer (the text becomes different tokens): "
            "compare two variants of one model, such as its ONNX int4 and transformers builds."
        )
    if len(ids) < 2:
        raise InvalidOptionsError("The text is too short: give at least two tokens of text.")
    if len(ids) > MAX_TOKENS:
        raise InvalidOptionsError(f"The text is {len(ids)} tokens; give at most {MAX_TOKENS}.")
    result = Fidelity(*names)
    for n, (a, b) in enumerate(zip(variant.next_logits(ids), reference.next_logits(ids), strict=True)):
        result.positions.append(_position(_log_softmax(a), _log_softmax(b), ids[n + 1], variant))
    return result


def _position(mine: np.ndarray, theirs: np.ndarray, actual: int, variant: Any) -> Position:
    size = min(mine.shape[0], theirs.shape[0])  # a padded vocabulary: the real tokens only
    mine, theirs = mine[:size], theirs[:size]
    kl = float(np.sum(np.exp(theirs) * (theirs - mine)))
    top, reference_top = int(np.argmax(mine)), int(np.argmax(theirs))
    text_of = variant._text_of
    return Position(
        text_of(actual), actual, max(0.0, kl), top == reference_top, text_of(top), text_of(reference_top),
        float(mine[actual]), float(theirs[actual]),
    )  # fmt: skip


def summary(result: Fidelity) -> str:
    """The totals in a few lines, for the terminal."""
    return "\n".join(
        [
            f"{result.variant} against {result.reference}, {len(result.positions)} tokens of text:",
            f"  mean KL divergence {result.mean_kl:.4f} nats",
            f"  same top token at {100 * result.same_top:.1f}% of positions",
            f"  perplexity {result.perplexity():.2f} ({result.variant}), "
            f"{result.perplexity(reference=True):.2f} ({result.reference})",
        ]
    )


def worst(result: Fidelity, count: int = 10) -> Sequence[Position]:
    return sorted(result.positions, key=lambda p: p.kl, reverse=True)[:count]
