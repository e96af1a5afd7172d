"""Batch mode: every prompt of a file through both sides (`python -m playground compare`).

The two sides answer one after the other, so each side's metrics are its own (two answers at once on a
small machine share its cores and slow each other down). Nothing is written to the history.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..answers import AnswerService, Request
from ..options import GenerationOptions
from ..types import Message, Metrics
from .library import ArenaPrompt

METRIC_KEYS = ("ttft_s", "tokens_per_s", "prompt_tokens", "completion_tokens", "total_s", "finish_reason")


@dataclass(frozen=True)
class CompareRow:
    """One answer: which prompt (0-based), which side, and what came back."""

    index: int
    prompt: str
    lang: str
    side: str
    model: str
    text: str
    metrics: Metrics | None
    error: str = ""
    notice: str = ""

    def to_dict(self) -> dict[str, object]:
        data = self.metrics.to_dict() if self.metrics else {}
        return {
            "index": self.index,
            "prompt": self.prompt,
            "lang": self.lang,
            "side": self.side,
            "model": self.model,
            "text": self.text,
            "metrics": {k: data[k] for k in METRIC_KEYS if k in data} or None,
            "error": self.error,
            "notice": self.notice,
        }


def compare(
    answers: AnswerService,
    models: Sequence[str],
    prompts: Sequence[ArenaPrompt],
    options: GenerationOptions,
    *,
    system: str = "",
    provider: str | None = None,
) -> Iterator[CompareRow]:
    """Each prompt to each model in turn; a side's error is its row's, the run goes on.
    An unknown or unready model is refused before the first prompt."""
    specs = [answers.chat.resolve(ref, provider) for ref in models]
    for index, prompt in enumerate(prompts):
        messages = [Message("system", system)] if system else []
        messages.append(Message("user", prompt.text))
        for side, spec in zip("ab", specs, strict=False):
            result = answers.complete(Request(spec.id, messages, options))
            yield CompareRow(
                index,
                prompt.text,
                prompt.lang,
                side,
                spec.id,
                result.text,
                result.metrics,
                error=result.error,
                notice=result.notice,
            )


def format_table(rows: Sequence[CompareRow], *, width: int = 60) -> str:
    """A plain-text table: one line per answer with its metrics, the answer cut to `width`."""
    header = f"{'#':>3} {'side':<4} {'model':<34} {'ttft s':>7} {'tok/s':>7} {'in':>5} {'out':>5} {'total s':>7}  answer"
    lines = [header, "-" * len(header)]
    for row in rows:
        m = row.metrics or Metrics()
        answer = " ".join((row.text or f"[error] {row.error}").split())
        answer = answer if len(answer) <= width else answer[: width - 3] + "..."
        lines.append(
            f"{row.index + 1:>3} {row.side.upper():<4} {row.model:<34} {_num(m.ttft_s, 3):>7} "
            f"{_num(m.tokens_per_s, 1):>7} {m.prompt_tokens:>5} {m.completion_tokens:>5} {m.total_s:>7.2f}  {answer}"
        )
    return "\n".join(lines)


def json_lines(rows: Sequence[CompareRow]) -> str:
    return "\n".join(json.dumps(row.to_dict(), ensure_ascii=False) for row in rows)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
