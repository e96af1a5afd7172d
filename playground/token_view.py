"""The token view: an answer as its tokens, each with its probability and its best alternatives.

Records come from the pipeline's `Tokens` events (TokenRecord), or their dicts as the history keeps them
(`TokenRecord.to_dict`). This module says where the figures come from (`token_note`) and draws them: a
table for the terminal (`token_table`) and HTML for the page (`token_span`: one row of the view that
ui/delta.py streams, each token tinted by how unlikely it was, its alternatives on hover or tap). Every
token's text is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .types import ModelSpec, TokenRecord

TOKEN_VIEW_K = 10  # alternatives asked for when the page's token view is on
LOCAL_NOTE = (
    "Each probability is that of the distribution the token was drawn from, as this engine computed it: "
    "after the repetition penalty and, when sampling, the temperature, top-k and top-p (a token they "
    "cut off shows none). Greedy decoding picks the most likely token."
)
SERVER_NOTE = "Probabilities as the server reported them (OpenAI's `logprobs`, with `top_logprobs`)."


def token_note(spec: ModelSpec | None, has_records: bool) -> str:
    """Where the token view's figures come from, or why there are none for this answer."""
    name = spec.engine_label if spec is not None else "This provider"
    if has_records:
        return LOCAL_NOTE if spec is not None and spec.gives_logprobs else SERVER_NOTE
    if spec is not None and spec.gives_logprobs:
        return "No token view for this answer: turn the token view on, then ask again."
    return (
        f"{name} gives no token probabilities for this model, so there is no token view: it needs a "
        "local engine (ONNX Runtime GenAI or transformers) or a server that returns `logprobs`."
    )


def as_dicts(records: Sequence[TokenRecord | Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r.to_dict() if isinstance(r, TokenRecord) else r for r in records]


def probability(logprob: object) -> float | None:
    return math.exp(logprob) if isinstance(logprob, int | float) and math.isfinite(logprob) else None


def _percent(logprob: object) -> str:
    p = probability(logprob)
    if p is None:
        return "cut off"
    return f"{100 * p:.1f}%" if p >= 0.001 else f"{100 * p:.2g}%"


def token_table(records: Sequence[TokenRecord | Mapping[str, Any]]) -> str:
    """One line per token: its text, its probability, the entropy, then the alternatives."""
    lines = []
    for n, record in enumerate(as_dicts(records)):
        alternatives = ", ".join(
            f"{t['text']!r} {_percent(t.get('logprob'))}" for t in record.get("top") or []
        )
        entropy = record.get("entropy")
        spread = f" H={entropy:.2f}" if isinstance(entropy, int | float) else ""
        lines.append(
            f"{n:4d} {record.get('text')!r:>16} {_percent(record.get('logprob')):>8}{spread}  {alternatives}"
        )
    return "\n".join(lines)


def _tint(p: float | None) -> str:
    """Unlikely tokens stand out: the less likely, the stronger the orange (a cut-off token: grey)."""
    if p is None:
        return "background: #dddddd"
    return f"background: rgba(255, 140, 0, {min(0.85, (1 - p) * 0.85):.2f})"


def _alternatives(record: Mapping[str, Any], at: int | None) -> str:
    """The token's alternatives; with `at` (its place in a branchable answer), each other one is a
    button that branches the answer there (the page's script sends its place and id)."""
    chosen = record.get("id")
    rows = []
    for t in record.get("top") or []:
        label = f"<code>{html.escape(repr(t.get('text', '')))}</code> {_percent(t.get('logprob'))}"
        if t.get("id") == chosen and chosen is not None:
            rows.append(f'<span class="tv-alt tv-chosen">{label}</span>')
        elif at is not None and isinstance(t.get("id"), int):
            rows.append(f'<button class="tv-alt" data-at="{at}" data-token="{t["id"]}">{label} ↳</button>')
        else:
            rows.append(f'<span class="tv-alt">{label}</span>')
    entropy = record.get("entropy")
    head = f"{_percent(record.get('logprob'))}"
    if record.get("forced"):
        head += " · forced here (a branch)"
    if isinstance(entropy, int | float):
        head += f" · entropy {entropy:.2f} nats"
    return f'<span class="tv-alts"><b>{head}</b>{"".join(rows)}</span>'


def token_span(record: TokenRecord | Mapping[str, Any], at: int | None = None) -> str:
    """One token, tinted by its probability, with its alternatives on hover or tap (focus); `at`: its
    place in an answer that can be branched (its alternatives are then buttons)."""
    data = as_dicts([record])[0]
    shown = html.escape(str(data.get("text", ""))).replace("\n", "↵<br>") or "∅"
    tint = _tint(probability(data.get("logprob")))
    forced = " tv-forced" if data.get("forced") else ""
    alternatives = _alternatives(data, at if isinstance(data.get("id"), int) else None)
    return f'<span class="tv-tok{forced}" tabindex="0" style="{tint}">{shown}{alternatives}</span>'


# The page's script for the view: a click on an alternative's button sends the view's `branch` event
# with the token's place and the alternative's id (the region's `branch` handler takes them).
BRANCHER = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-token]');
  if (!button) return;
  event.preventDefault();
  trigger('branch', {at: Number(button.dataset.at), token: Number(button.dataset.token)});
});
"""
BRANCH_HINT = "Pick an alternative (↳) to branch: the answer again from that token, with it in place."

# The page's view streams by delta (ui/delta.py): its shell, then one row (a token's span) per token.
SHELL = '<div class="tv-tokens" data-rows></div><p class="tv-note" data-part="note"></p>'


CSS = """
.tv-tokens { line-height: 1.9; font-family: monospace; white-space: pre-wrap; }
.tv-tok { position: relative; border-radius: 3px; padding: 0 1px; margin: 0 1px; cursor: help; }
.tv-tok .tv-alts { display: none; position: absolute; z-index: 20; left: 0; top: 1.8em; min-width: 12em;
  background: var(--background-fill-primary); border: 1px solid var(--border-color-primary); padding: 4px 6px;
  box-shadow: 0 2px 6px rgba(0,0,0,.2); white-space: nowrap; font-size: 12px; line-height: 1.4; }
.tv-tok:hover .tv-alts, .tv-tok:focus .tv-alts, .tv-tok:focus-within .tv-alts { display: block; }
.tv-tok.tv-forced { outline: 2px solid #2563eb; }
.tv-alt { display: block; }
.tv-alt.tv-chosen { font-weight: bold; }
button.tv-alt { all: unset; display: block; cursor: pointer; width: 100%; }
button.tv-alt:hover, button.tv-alt:focus { background: rgba(37, 99, 235, 0.15); }
.tv-note { font-size: 0.85em; opacity: 0.8; margin-top: 4px; }
"""
