"""Blind mode's one boundary: what a visitor can read before the vote, without names.

`anonymise(view, specs)` is the only way a round reaches a visitor (the page and the API payloads alike):
in a blind round not yet voted it turns each side's label into "Model A"/"Model B", empties the model and
engine, hides the context window (the meter shows tokens used, not of how many) and rewrites the metrics'
note, the trimming notice and the error message without the model's names, ids, catalog key, family,
repository, engine or window size. Numbers of three digits or more, and decimals, in those texts become
"N" (a window, a token budget or a download size would tell the model). A text that still names a model after that is replaced by a plain
sentence (the full text is shown after the vote). The answers themselves are not touched: an answer that
names its model is flagged by `reveals_name` and left out of the ratings instead.
`anonymise_summaries` does the same for history listings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace

from ..history.records import ConversationSummary
from ..types import ModelSpec

LABELS = {"a": "Model A", "b": "Model B"}
HIDDEN_TEXT = "{label} could not answer this time (the details are shown after the vote)."
HIDDEN_NOTICE = "{label}'s conversation was shortened to fit its context window."

# Names an assistant may call itself by: an answer using one, in a blind round, is not rated (as FastChat's
# arena does), whichever side it is, since it tells (or misleads) the voter about the model.
ASSISTANT_NAMES = (
    "phi",
    "smollm",
    "microsoft",
    "hugging face",
    "huggingface",
    "llama",
    "meta ai",
    "mistral",
    "qwen",
    "alibaba",
    "gemma",
    "gemini",
    "google",
    "gpt",
    "chatgpt",
    "openai",
    "claude",
    "anthropic",
    "deepseek",
)
_BIG_NUMBER = re.compile(r"\d+(?:[.,]\d+)+|\d{3,}")


@dataclass(frozen=True)
class SideView:
    """What a visitor can read about one side of a round."""

    label: str  # the model's id in named mode, "Model A"/"Model B" in a blind round before the vote
    model: str = ""
    engine: str = ""
    text: str = ""
    metrics: dict[str, object] | None = None
    notice: str = ""
    error: str = ""
    window: int | None = None  # the context window the meter shows; None when hidden
    finish_reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class RoundView:
    """One round as a page or an API answer shows it."""

    battle_id: str
    thread: str
    round: int
    mode: str
    prompt: str
    a: SideView
    b: SideView
    vote: str | None = None

    @property
    def hidden(self) -> bool:
        return self.mode == "blind" and self.vote is None

    def side(self, name: str) -> SideView:
        return self.a if name == "a" else self.b

    def to_dict(self) -> dict[str, object]:
        return asdict(self)  # the sides as dicts too


def identity_words(spec: ModelSpec, *, engine: bool = True) -> list[str]:
    """Every string that names this model (and, with `engine`, where it runs), longest first."""
    key = str(spec.extra.get("catalog", spec.id.rsplit("@", 1)[0]))
    words = {
        spec.id,
        key,
        spec.name,
        spec.family,
        str(spec.extra.get("repo", "")),
        str(spec.extra.get("tag", "")),
    }
    words |= {spec.name.split("-")[0], spec.family.split("-")[0], key.split("-")[0]}
    if engine:
        words |= {spec.provider, spec.engine_label, spec.source, str(spec.extra.get("path", ""))}
    return sorted((w for w in words if len(w.strip()) >= 2), key=len, reverse=True)


def scrub(text: str, specs: Mapping[str, ModelSpec]) -> str:
    """`text` with each side's names replaced by its label ("a model" where both share a word, such as
    a family; "the engine" for an engine's name), and numbers of three digits or more (and decimals) by N."""
    owners: dict[str, set[str]] = {}
    engines = {w.lower() for spec in specs.values() for w in (spec.provider, spec.engine_label)}
    for side, spec in specs.items():
        for word in identity_words(spec):
            owners.setdefault(word.lower(), set()).add(side)
    if owners:
        words = sorted(owners, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)

        def label(match: re.Match[str]) -> str:
            word = match.group(0).lower()
            if word in engines:
                return "the engine"
            sides = owners[word]
            return LABELS[next(iter(sides))] if len(sides) == 1 else "a model"

        text = pattern.sub(label, text)
    return _BIG_NUMBER.sub("N", text)


def reveals_name(text: str, specs: Iterable[ModelSpec] = ()) -> bool:
    """Whether `text` names a model, a family or a maker (its own or a well-known assistant's); the
    engines' names (ONNX, transformers) do not count: an answer may well talk about transformers."""
    words = [w for spec in specs for w in identity_words(spec, engine=False)] + list(ASSISTANT_NAMES)
    lowered = text.lower()
    return any(
        re.search(r"(?<![a-z0-9])" + re.escape(word.lower()) + r"(?![a-z])", lowered) for word in words
    )


def revealed_sides(texts: Mapping[str, str], specs: Mapping[str, ModelSpec]) -> str:
    """ "", "a", "b" or "ab": the sides whose answer names a model."""
    return "".join(side for side in ("a", "b") if reveals_name(texts.get(side, ""), specs.values()))


def anonymise(view: RoundView, specs: Mapping[str, ModelSpec]) -> RoundView:
    """The round as a visitor may read it: unchanged when named or voted, without names otherwise."""
    if not view.hidden:
        return view
    return replace(view, a=_side(view.a, "a", specs), b=_side(view.b, "b", specs))


def _side(side: SideView, name: str, specs: Mapping[str, ModelSpec]) -> SideView:
    label = LABELS[name]
    metrics = None
    if side.metrics is not None:
        metrics = dict(side.metrics)
        if metrics.get("note"):
            metrics["note"] = safe_text(str(metrics["note"]), specs, HIDDEN_TEXT.format(label=label))
    return SideView(
        label=label,
        text=side.text,
        metrics=metrics,
        notice=safe_text(side.notice, specs, HIDDEN_NOTICE.format(label=label)) if side.notice else "",
        error=safe_text(side.error, specs, HIDDEN_TEXT.format(label=label)) if side.error else "",
        window=None,
        finish_reason=side.finish_reason,
    )


def safe_text(text: str, specs: Mapping[str, ModelSpec], fallback: str) -> str:
    """The text with the sides' names scrubbed; `fallback` when it would still name one."""
    cleaned = scrub(text, specs)
    return fallback if reveals_name(cleaned, specs.values()) else cleaned


def anonymise_summaries(
    summaries: Sequence[ConversationSummary], hidden: Mapping[str, str]
) -> list[ConversationSummary]:
    """History rows with the model of each hidden conversation (id -> "Model A"...) replaced."""
    return [replace(s, model=hidden[s.id]) if s.id in hidden else s for s in summaries]
