"""Teacher forcing, the engines' shared part: a text's token ids cut to what fits, and each position's
logits turned into log-probabilities (what `ScoresText.teacher_forced` returns: providers/base.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...errors import InvalidOptionsError
from ..base import Forced


def fitted(ids: Sequence[int], limit: int, window: int) -> tuple[list[int], int]:
    """The first `limit` token ids (and no more than the model's window), and how many the text had; at
    least two are needed: the first token has no prediction."""
    every = [int(t) for t in ids]
    kept = every[: max(0, min(limit, window))]
    if len(kept) < 2:
        raise InvalidOptionsError("The text is too short: give at least two tokens of text to compare on.")
    return kept, len(every)


def forced(ids: Sequence[int], total: int, decode: Callable[[list[int]], str], logits: Any) -> Forced:
    """The result: ids, each token's own text, log-softmax of the logits ([tokens, vocabulary]) and the
    most likely next token's text at each position."""
    values = np.asarray(logits, dtype=np.float32).reshape(len(ids), -1)
    top = values.max(axis=-1, keepdims=True)
    logprobs = values - top - np.log(np.exp(values - top).sum(axis=-1, keepdims=True))
    best = [int(t) for t in values.argmax(axis=-1)]
    return Forced(
        ids=tuple(ids),
        tokens=tuple(decode([t]) for t in ids),
        logprobs=logprobs.astype(np.float32),
        top=tuple(decode([t]) for t in best),
        total=total,
    )
