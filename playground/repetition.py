"""Whether an answer repeats itself: small models at a low temperature loop (SmolLM2-135M at its card's
0.2 does), and a newcomer should hear why and what helps, not just see the loop."""

from __future__ import annotations

from collections import Counter

SPAN = 6  # words in a repeated run
TIMES = 3  # how often the same run must come back
HINT = (
    "This answer repeats itself: small models often loop, most at a low temperature. Try a repetition "
    "penalty of 1.1–1.3 (Parameters), or a higher temperature."
)


def repeats(text: str, span: int = SPAN, times: int = TIMES) -> bool:
    """True when some run of `span` words comes back `times` times or more."""
    words = text.lower().split()
    if len(words) < span * times:
        return False
    runs = Counter(tuple(words[i : i + span]) for i in range(len(words) - span + 1))
    return max(runs.values()) >= times


def repetition_hint(text: str, repetition_penalty: float | None) -> str:
    """The hint for a looping answer, unless a repetition penalty was already set."""
    if repetition_penalty is not None and repetition_penalty > 1.0:
        return ""
    return HINT if repeats(text) else ""
