"""The expert map as the page shows it: a token × layer table (one row per generated token, a cell's
colour its top expert) and the load on each expert, drawn whole for a stored answer and by delta while an
answer streams (delta.py: each update carries only the new tokens' rows).

    map_value(routing)          the whole map, as the map component's value (an opened conversation)
    LiveMap().update(records)   per update of a streaming answer: the new rows, and the load so far
    map_html(routing)           the whole map as plain HTML (what the page holds once it is drawn)

A live map's work per update is the new tokens' rows and one count per expert: the same at token 4,000
as at token 10 (bench/moe_map.py measures it at Phi-3.5-MoE's shape).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

from ..errors import PlaygroundError
from ..moe_view import (
    LoadCounter,
    MapRow,
    MapShape,
    RoutingMap,
    map_row,
    map_shape,
    stored_form,
    stored_map,
)
from ..types import ExpertRecord
from . import delta
from .render import Turn

# One colour per expert (cycled past 20): Tableau 20, light and dark pairs split apart.
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#bab0ac", "#a0cbe8", "#ffbe7d", "#ff9d9a", "#86bcb6", "#8cd17d", "#f1ce63", "#d4a6c8", "#fabfd2",
    "#d7b5a6", "#79706e",
)  # fmt: skip
LOAD_COLUMNS = ["expert", "count", "share"]
TOKEN_CHARS = 12  # a row's label: longer tokens are cut, whole in the hover
WAITING = "The map fills in as the answer streams: one row per generated token, one column per layer."
EMPTY = "No expert map yet: ask a question with a local MoE model."
GAP = "Some rows were missed while the answer streamed: open the conversation from History to see them all."


def colour(expert: int) -> str:
    return PALETTE[expert % len(PALETTE)] if expert >= 0 else "#eeeeee"


def expert_label(expert: int) -> str:
    return f"{expert:02d}"


def short_token(text: str, limit: int = TOKEN_CHARS) -> str:
    """A row's label cut to `limit` characters (the whole text is its hover)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message_html(text: str) -> str:
    return f'<p class="moe-empty">{html.escape(text)}</p>'


def shell_html(shape: MapShape) -> str:
    """The map's frame: its caption (the token count is a part the updates set), then the table's head
    in a box that scrolls (and follows new rows while it is scrolled to its end); rows go into its body."""
    head = "".join(f"<th>L{layer}</th>" for layer in range(shape.layers))
    caption = (
        f" × {shape.layers} layers; {shape.top_k} of {shape.num_experts} experts per token and layer. "
        "Colour: the expert with the highest weight; hover a cell for the weights."
    )
    return (
        f'<p><span {delta.PART}="count"></span>{html.escape(caption)}</p>'
        f'<p class="moe-gap" data-gap hidden>{html.escape(GAP)}</p>'
        f'<div class="moe-map" data-follow><table><thead><tr><th>token</th>{head}</tr></thead>'
        f"<tbody {delta.ROWS}></tbody></table></div>"
    )


def row_html(position: int, row: MapRow) -> str:
    """One token's row: its label (cut; whole on hover), then a cell per layer, every text escaped."""
    cells = "".join(
        f'<td class="moe-cell" style="background:{colour(top)}" title="{html.escape(hover, quote=True)}">'
        f"{html.escape(' '.join(str(e) for e in experts))}</td>"
        for top, experts, hover in zip(row.top, row.experts, row.hover, strict=True)
    )
    full = f"{position} {row.token}"
    return (
        f'<tr><th class="moe-token" title="{html.escape(full, quote=True)}">'
        f"{html.escape(short_token(full))}</th>{cells}</tr>"
    )


def count_parts(tokens: int) -> dict[str, str]:
    return {"count": f"{tokens} token{'s' if tokens != 1 else ''}"}


def map_value(routing: RoutingMap | None, waiting: bool = False) -> str:
    """The whole map as the map component's value (delta.redraw): the shell and every row."""
    if routing is None or routing.empty:
        return delta.redraw(message_html(WAITING if waiting else EMPTY))
    shape = MapShape(routing.layers, routing.num_experts, routing.top_k)
    rows = [row_html(t, row) for t, row in enumerate(routing.rows())]
    return delta.redraw(shell_html(shape), rows, count_parts(len(rows)))


def map_html(routing: RoutingMap | None, waiting: bool = False) -> str:
    """The token × layer map as an HTML table (what the page holds once `map_value` is drawn): a cell's
    colour is its top expert, its text every chosen expert, and its hover the token, the experts and their
    weights. Every token is escaped."""
    page = delta.DeltaPage()
    page.apply(map_value(routing, waiting))
    return page.html


def load_frame(routing: RoutingMap | None) -> pd.DataFrame | None:
    """The load on each expert, for the bar plot (None before any record: an empty plot, not NaN axes)."""
    if routing is None or routing.empty:
        return None
    return load_table(routing.load)


def load_table(load: Sequence[int]) -> pd.DataFrame:
    """The bar plot's rows: each expert's label, how often it was chosen, and its share of all choices."""
    total = sum(load) or 1
    rows = [[expert_label(e), count, count / total] for e, count in enumerate(load)]
    return pd.DataFrame(rows, columns=LOAD_COLUMNS)


def last_map(conversation: list[Turn]) -> RoutingMap | None:
    """The map of the latest answer that has one (kept in the turn, live or from the history)."""
    for turn in reversed(conversation):
        if turn["role"] == "assistant" and turn.get("experts"):
            try:
                return stored_map(turn["experts"])
            except PlaygroundError:
                return None
    return None


class LiveMap:
    """The map of one streaming answer, drawn by delta: `update(records)` (every record so far, the same
    list growing) returns the map's value and the load's rows for one update.

    The first update redraws the map (a new question clears the last answer's map): the waiting line until
    the first record, then the shell with the rows so far. Each later update carries only the rows added
    since the one before; an update with no new record repeats the last value (Gradio sends nothing for
    it). The load is counted record by record. `drawn`: the rows the last update rendered."""

    def __init__(self) -> None:
        self.sent = 0  # records sent to the page
        self.drawn = 0
        self.value = ""
        self.shape: MapShape | None = None
        self.counter: LoadCounter | None = None
        self.load: pd.DataFrame | None = None

    def update(self, records: Sequence[ExpertRecord]) -> tuple[str, pd.DataFrame | None]:
        new = records[self.sent :]
        self.drawn = len(new)
        if not self.value and not new:
            self.value = map_value(None, waiting=True)
        if not new:
            return self.value, self.load
        redraw = self.shape is None
        if self.shape is None or self.counter is None:
            self.shape = map_shape(new[:1])
            self.counter = LoadCounter(self.shape)
        rows = []
        for position, record in enumerate(new, start=self.sent):
            self.counter.add(record)
            rows.append(row_html(position, map_row(stored_form(record), self.shape.layers)))
        start, self.sent = self.sent, self.sent + len(new)
        parts = count_parts(self.sent)
        self.value = (
            delta.redraw(shell_html(self.shape), rows, parts) if redraw else delta.append(start, rows, parts)
        )
        self.load = load_table(self.counter.load)
        return self.value, self.load
