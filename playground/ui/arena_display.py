"""What the Arena tab shows, from the arena's views only (already anonymised in a blind round before the
vote): each pane's chat, header and metrics line, its token view (streamed by delta), the chart after a
round, and the leaderboard's tables.

Nothing here reads a model's name from anywhere but a `RoundView` dict, so a blind round shows "Model A"
and "Model B" and metrics without labels. The one exception, the token view's note (where its figures come
from), reads a side's spec, and in a blind round never names its engine (`tokens_note`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..answers import Event, Text, Tokens
from ..arena.ratings import Leaderboard, Table
from ..token_view import SHELL, token_note
from ..types import ModelSpec, TokenRecord
from . import render
from .delta import redraw
from .region_tools import tokens_since

SIDES = ("a", "b")
NAMED, BLIND = "Named: pick both models", "Blind: two random models, named after your vote"
RoundDict = dict[str, Any]  # RoundView.to_dict()
CHARTS = (
    ("tokens_per_s", "Tokens/s", 1.0),
    ("ttft_s", "Time to first token (ms)", 1000.0),
    ("total_s", "Total time (s)", 1.0),
)
RATING_HEADERS = ["Rank", "Name", "Rating", "95% interval", "Games", "Wins"]
MIN_GAMES_FOR_INTERVAL = 5  # under this, a bootstrap interval says nothing: none is shown
VOTE_WORDS = {"a": "A is better", "b": "B is better", "tie": "a tie", "both_bad": "both are bad"}
NO_TOKENS = redraw(SHELL)  # a pane's token view emptied (a new battle)


@dataclass
class LivePane:
    """A pane's own clock while it streams (the engine's figures replace these at the end)."""

    started: float = field(default_factory=time.perf_counter)
    first: float | None = None
    tokens: int = 0
    ended: float | None = None
    records: list[TokenRecord] = field(default_factory=list)  # the token view's, when asked for
    sent: int | None = None  # records the token view has drawn so far (None: not drawn yet)
    noted: bool = False  # whether the token view's note was sent

    def take(self, events: Sequence[Event]) -> None:
        now = time.perf_counter()
        for event in events:
            if isinstance(event, Text) and event.text:
                self.tokens += 1
                if self.first is None:
                    self.first = now
            elif isinstance(event, Tokens):
                self.records.append(event.record)

    def token_view(self, spec: ModelSpec, *, ended: bool, blind: bool) -> Any:
        """The pane's token view by delta (ui/delta.py, as the chat tabs draw theirs): drawn from the
        start at first, then only the records since the last update, and the note once the side ends."""
        note = None
        if ended and not self.noted:
            note, self.noted = tokens_note(spec, bool(self.records), blind=blind), True
        payload = tokens_since(self.records, self.sent, note)
        self.sent = len(self.records)
        return payload

    def metrics(self, prompt_tokens: int | None) -> dict[str, object]:
        now = self.ended or time.perf_counter()
        rate = None
        if self.first is not None and self.tokens > 1 and now > self.first:
            rate = (self.tokens - 1) / (now - self.first)
        return {
            "ttft_s": None if self.first is None else self.first - self.started,
            "tokens_per_s": rate,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": self.tokens,
            "total_s": now - self.started,
            "estimated": True,
        }


BLIND_NOTE = (
    "Each token's probability and its likeliest alternatives, as this side reported them; where they came "
    "from (a local engine or a server) is shown with the names, after the vote."
)


def tokens_note(spec: ModelSpec, has_records: bool, *, blind: bool) -> str:
    """The chat tabs' note under a token view (where its figures come from, or why there are none); in a
    blind round, one note whatever computed them (the chat tabs' differs for a local engine and a
    server), and a provider without probabilities is not named ("This provider gives no...")."""
    if blind and has_records:
        return BLIND_NOTE
    hide = blind and not spec.gives_logprobs
    return token_note(None if hide else spec, has_records)


def side_of(round_: RoundDict, name: str) -> dict[str, Any]:
    side = round_[name]
    return side if isinstance(side, dict) else {}


def chat(rounds: Sequence[RoundDict], name: str, *, streaming: bool = False) -> list[dict[str, Any]]:
    """One pane's chat: every round's prompt and this side's answer, with its metrics line."""
    turns: list[render.Turn] = []
    for round_ in rounds:
        side = side_of(round_, name)
        turns.append({"role": "user", "content": str(round_["prompt"])})
        finish = side.get("finish_reason")
        turns.append(
            {
                "role": "assistant",
                "content": str(side.get("text") or ""),
                "model_name": str(side.get("model") or ""),
                "engine": str(side.get("engine") or ""),
                "metrics": side.get("metrics"),
                "finish": finish if finish is not None or streaming else "cancelled",
            }
        )
    live = streaming and bool(rounds) and side_of(rounds[-1], name).get("finish_reason") is None
    return render.to_chatbot(turns, streaming=live)


def header(round_: RoundDict | None, name: str, fallback: str = "") -> str:
    """`### A · SmolLM2-135M-Instruct · ONNX Runtime GenAI` (named), `### Model A` (blind, before the vote)."""
    if round_ is None:
        return f"### {fallback or 'Model ' + name.upper()}"
    side = side_of(round_, name)
    model, engine = str(side.get("model") or ""), str(side.get("engine") or "")
    if not model:
        return f"### {render.safe_markdown(str(side.get('label') or 'Model ' + name.upper()))}"
    return f"### {name.upper()} · `{model}`" + (f" · {render.safe_markdown(engine)}" if engine else "")


def metrics_line(metrics: Mapping[str, object] | None, *, live: bool = False) -> str:
    """`TTFT 120 ms · 70.2 tok/s · in 23 · out 64 tokens · total 1.2 s`, no model or engine."""
    if not metrics:
        return "⏳ waiting for the first token…" if live else ""
    parts: list[str] = []
    ttft, rate = metrics.get("ttft_s"), metrics.get("tokens_per_s")
    if isinstance(ttft, int | float):
        parts.append(f"TTFT {ttft * 1000:.0f} ms")
    if isinstance(rate, int | float):
        parts.append(f"{rate:.1f} tok/s")
    if isinstance(metrics.get("prompt_tokens"), int):
        parts.append(f"in {metrics['prompt_tokens']}")
    if isinstance(metrics.get("completion_tokens"), int):
        approx = "~" if metrics.get("estimated") else ""
        parts.append(f"out {approx}{metrics['completion_tokens']} tokens")
    if isinstance(metrics.get("total_s"), int | float):
        parts.append(f"total {float(metrics['total_s']):.1f} s")  # type: ignore[arg-type]
    return ("🔴 live · " if live else "") + " · ".join(parts)


def pane_status(round_: RoundDict | None, name: str, live: Mapping[str, object] | None = None) -> str:
    """The metrics line under a pane, and its notice or error (anonymised by the view)."""
    if round_ is None:
        return ""
    side = side_of(round_, name)
    lines = [metrics_line(live, live=True) if live is not None else metrics_line(side.get("metrics"))]
    if side.get("notice"):
        lines.append(f"ℹ {render.safe_markdown(str(side['notice']))}")
    if side.get("error"):
        lines.append(f"⚠ {render.safe_markdown(str(side['error']))}")
    return "\n\n".join(line for line in lines if line)


def chart_frames(round_: RoundDict | None) -> list[pd.DataFrame | None]:
    """One small frame per chart (tokens/s, TTFT, total time): a row per side, labelled A and B (the
    panes' headers name the models, when named)."""
    frames: list[pd.DataFrame | None] = []
    for key, _, scale in CHARTS:
        rows = []
        for name in SIDES:
            side = side_of(round_, name) if round_ else {}
            value = (side.get("metrics") or {}).get(key)
            if isinstance(value, int | float):
                rows.append({"side": name.upper(), "value": round(float(value) * scale, 2)})
        frames.append(pd.DataFrame(rows, columns=["side", "value"]) if len(rows) == 2 else None)
    return frames


def reveal_text(round_: RoundDict) -> str:
    """After the vote: who was who."""
    vote = VOTE_WORDS.get(str(round_.get("vote")), str(round_.get("vote")))
    sides = []
    for name in SIDES:
        side = side_of(round_, name)
        sides.append(f"**{name.upper()}** was `{side.get('model')}` on {side.get('engine')}")
    return f"Your vote: {vote}. " + "; ".join(sides) + "."


# The leaderboard


def ratings_frame(table: Table) -> pd.DataFrame:
    """One scale (Bradley–Terry, 1000 the average side); the interval only from 5 games."""
    rows = [
        [
            rank,
            r.name,
            round(r.rating),
            f"{r.low:.0f} – {r.high:.0f}"
            if r.games >= MIN_GAMES_FOR_INTERVAL
            else f"— (under {MIN_GAMES_FOR_INTERVAL} games)",
            r.games,
            r.wins,
        ]
        for rank, r in enumerate(table.ratings, 1)
    ]
    return pd.DataFrame(rows, columns=RATING_HEADERS)


def win_rate_frame(table: Table) -> pd.DataFrame:
    """Row's score against column (ties as halves), with the games played."""
    rows = []
    for i, name in enumerate(table.names):
        cells = [
            "—" if rate is None else f"{rate:.0%} ({table.games[i][j]})"
            for j, rate in enumerate(table.win_rate[i])
        ]
        rows.append([name, *cells])
    return pd.DataFrame(rows, columns=["vs →", *table.names])


def plural(count: int, word: str) -> str:
    """`1 vote`, `2 votes`."""
    return f"{count} {word}" + ("" if count == 1 else "s")


def counts_line(board: Leaderboard, table: Table | None = None) -> str:
    """The votes behind the table shown; a per-model table leaves out a model against itself."""
    kinds = ", ".join(f"{VOTE_WORDS.get(k, k)}: {n}" for k, n in board.counts.items())
    line = f"**{plural(board.votes, 'vote')}** counted" + (f" ({kinds})." if kinds else ".")
    if table is not None and board.votes and not table.ratings:
        line += " None of them is between two different models: this view rates models, not engines."
    if board.excluded:
        line += f" {plural(board.excluded, 'blind vote')} left out: an answer named its model."
    if board.style is not None:
        line += " " + style_line(board.style)
    return line


def style_line(coefficients: dict[str, float]) -> str:
    """What each style feature was worth to the voters (the odds of winning, for an answer that has all
    of it against one that has none), under style control."""
    if not coefficients:
        return "Style control: no votes to fit yet."
    worth = ", ".join(f"{name} ×{math.exp(value):.2f}" for name, value in coefficients.items())
    return (
        "Style control on: ratings with answer length and Markdown held equal. What each was worth to "
        f"voters (odds of winning with all of it against none): {worth}."
    )
