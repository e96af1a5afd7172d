"""Each generated token's probability and its alternatives, from the logits a local engine computed.

The distribution is the one the token was drawn from: the engine's repetition penalty, then (when
sampling) the temperature, top-k and top-p, as the engines apply them. A token that top-k or top-p cut
off could not have been drawn: its log-probability is None. Greedy decoding takes the top token of the
model's own distribution (temperature 1, after the penalty).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...options import GenerationOptions
from ...types import TokenChoice, TokenRecord

SETTINGS_NOTE = (
    "Probabilities of the distribution each token was drawn from: after the repetition penalty and, "
    "when sampling, the temperature, top-k and top-p (a token they cut off shows none)."
)


def penalised(logits: np.ndarray, seen: Sequence[int] | np.ndarray, penalty: float) -> np.ndarray:
    """The repetition penalty as both engines apply it: each token already in the sequence has its
    score divided by the penalty (multiplied, when negative)."""
    if penalty == 1.0 or not len(seen):
        return logits
    ids = np.unique(np.asarray(seen, dtype=np.int64))
    ids = ids[(ids >= 0) & (ids < logits.shape[0])]
    scores = logits[ids]
    logits = logits.copy()
    logits[ids] = np.where(scores < 0, scores * penalty, scores / penalty)
    return logits


def log_distribution(logits: np.ndarray, options: GenerationOptions) -> tuple[np.ndarray, float]:
    """Log-probabilities over the vocabulary after the temperature, top-k and top-p (-inf: cut off),
    and the distribution's entropy in nats. One pass of exp over the vocabulary (the token view runs
    this for every generated token)."""
    scores = logits.astype(np.float32, copy=False)
    cut = False
    if not options.greedy:
        scores = scores / np.float32(options.temperature)
        if options.top_k and options.top_k < scores.shape[0]:
            kth = np.partition(scores, -options.top_k)[-options.top_k]
            scores = np.where(scores < kth, -np.inf, scores)
            cut = True
    shifted = scores - scores.max()
    weights = np.exp(shifted)
    total = float(weights.sum())
    logprobs = shifted - np.float32(np.log(total))
    if not options.greedy and options.top_p < 1.0:
        return _nucleus(logprobs, options.top_p)
    kept = np.isfinite(shifted) if cut else slice(None)
    entropy = float(np.log(total) - float(np.dot(weights[kept], shifted[kept])) / total)
    return logprobs, max(0.0, entropy)


def _nucleus(logprobs: np.ndarray, top_p: float) -> tuple[np.ndarray, float]:
    """Keep the smallest set of best tokens whose probabilities reach top_p (at least one), renormalised."""
    order = np.argsort(-logprobs)
    cumulative = np.cumsum(np.exp(logprobs[order]))
    keep = int(np.searchsorted(cumulative, top_p)) + 1
    kept = np.full_like(logprobs, -np.inf)
    chosen = order[:keep]
    kept[chosen] = logprobs[chosen] - np.log(np.exp(logprobs[chosen]).sum())
    probs = np.exp(kept[chosen])
    return kept, max(0.0, float(-(probs * kept[chosen]).sum()))


def token_record(
    index: int,
    token: int,
    distribution: tuple[np.ndarray, float],
    k: int,
    text_of: Callable[[int], str],
) -> TokenRecord:
    """The record of `token`, drawn from `distribution` (log-probabilities and entropy): its own
    log-probability, the top `k` and the entropy (nats)."""
    logprobs, entropy = distribution
    k = max(0, min(k, logprobs.shape[0]))
    best = np.argpartition(logprobs, -k)[-k:] if k else np.empty(0, dtype=np.int64)
    best = best[np.argsort(-logprobs[best])]
    top = tuple(TokenChoice(text_of(int(i)), int(i), _finite(logprobs[i])) for i in best)
    return TokenRecord(index, text_of(token), token, _finite(logprobs[token]), top, entropy)


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


class TokenRecorder:
    """Each generated token's record, from the logits its step computed.

    `seen`: the prompt's token ids (the repetition penalty counts them, as both engines do).
    `penalised`: the logits handed over already carry the repetition penalty (transformers' own
    processor ran before ours); ONNX Runtime GenAI hands over the raw logits, and the penalty is applied
    here as the engine applies it."""

    def __init__(
        self,
        options: GenerationOptions,
        text_of: Callable[[int], str],
        seen: Sequence[int],
        *,
        penalised: bool = False,
    ) -> None:
        self.options = options
        self.text_of = text_of
        self.apply_penalty = not penalised and options.repetition_penalty != 1.0
        self._prompt = np.asarray(seen, dtype=np.int64)
        self._seen: np.ndarray | None = None  # which ids the sequence holds, sized by the first logits
        self.index = 0

    def record(self, logits: Any, token: int) -> TokenRecord:
        scores = np.asarray(logits, dtype=np.float32).reshape(-1)
        seen = self._mask(scores.shape[0])
        if self.apply_penalty:
            scores = penalised(scores, np.flatnonzero(seen), self.options.repetition_penalty)
        distribution = log_distribution(scores, self.options)
        record = token_record(self.index, token, distribution, self.options.logprobs, self.text_of)
        if 0 <= token < seen.shape[0]:
            seen[token] = True
        self.index += 1
        return record

    def _mask(self, vocabulary: int) -> np.ndarray:
        if self._seen is None:
            self._seen = np.zeros(vocabulary, dtype=bool)
            ids = self._prompt[(self._prompt >= 0) & (self._prompt < vocabulary)]
            self._seen[ids] = True
        return self._seen
