"""The arithmetic of fidelity, on two teacher-forced runs of one text (providers/base.Forced). No I/O.

At position t both models predict token t + 1. KL(reference ‖ model) = Σ p_ref · (log p_ref − log p_model):
0 when the two distributions are the same, larger as the model puts its probability elsewhere. The
perplexity of a variant is exp of the mean negative log-probability it gave the text's actual tokens.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InvalidOptionsError
from ..providers.base import Forced


@dataclass(frozen=True)
class TokenFidelity:
    """One token of the text: how the model's prediction of it differs from the reference's."""

    position: int  # the token's index in the text (from 1: the first token has no prediction)
    token: str
    kl: float
    top_model: str  # each variant's most likely token at this position
    top_reference: str
    same_top: bool
    logprob_model: float  # of the text's actual token
    logprob_reference: float


@dataclass(frozen=True)
class Fidelity:
    """The comparison of `model` with `reference` over one text."""

    model: str
    reference: str
    tokens: tuple[TokenFidelity, ...]
    mean_kl: float
    max_kl: float
    same_top: float  # the share of positions whose most likely tokens agree, 0..1
    perplexity_model: float
    perplexity_reference: float
    text_tokens: int  # the text's tokens (more than were compared when it was cut)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["same_top_percent"] = round(100 * self.same_top, 2)
        return data


def _log_softmax(values: np.ndarray) -> np.ndarray:
    top = values.max(axis=-1, keepdims=True)
    return values - top - np.log(np.exp(values - top).sum(axis=-1, keepdims=True))


def compare(model: Forced, reference: Forced, names: tuple[str, str] = ("model", "reference")) -> Fidelity:
    """Fidelity of `model` to `reference` over the same tokens (refused when they split the text apart)."""
    if model.ids != reference.ids:
        raise InvalidOptionsError(
            f"{names[0]} and {names[1]} do not share a tokenizer (they split the text into different "
            "tokens): compare two variants of one model, such as its ONNX int4 and transformers float32 builds."
        )
    ours = np.asarray(model.logprobs, dtype=np.float64)[:-1]
    theirs = np.asarray(reference.logprobs, dtype=np.float64)[:-1]
    note = ""
    if ours.shape[-1] != theirs.shape[-1]:  # a padded embedding: the tokens both know
        vocab = min(ours.shape[-1], theirs.shape[-1])
        ours, theirs = _log_softmax(ours[:, :vocab]), _log_softmax(theirs[:, :vocab])
        note = f"The two vocabularies differ in size; compared over the first {vocab:,} tokens."
    kl = (np.exp(theirs) * (theirs - ours)).sum(axis=-1).clip(min=0.0)
    agree = ours.argmax(axis=-1) == theirs.argmax(axis=-1)
    targets = np.asarray(model.ids[1:])
    rows = np.arange(len(targets))
    got_ours, got_theirs = ours[rows, targets], theirs[rows, targets]
    tokens = tuple(
        TokenFidelity(
            position=t + 1,
            token=model.tokens[t + 1],
            kl=float(kl[t]),
            top_model=model.top[t],
            top_reference=reference.top[t],
            same_top=bool(agree[t]),
            logprob_model=float(got_ours[t]),
            logprob_reference=float(got_theirs[t]),
        )
        for t in range(len(targets))
    )
    return Fidelity(
        model=names[0],
        reference=names[1],
        tokens=tokens,
        mean_kl=float(kl.mean()),
        max_kl=float(kl.max()),
        same_top=float(agree.mean()),
        perplexity_model=math.exp(-float(got_ours.mean())),
        perplexity_reference=math.exp(-float(got_theirs.mean())),
        text_tokens=max(model.total, reference.total),
        note=note,
    )
