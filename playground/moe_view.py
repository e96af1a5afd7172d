"""The expert routing of an answer as data a plot needs, and as the history keeps it. No Gradio here.

A mixture-of-experts answer streams one ExpertRecord per generated token (see
providers/local/moe.py). This module turns a list of them into:
- `routing_map(records)`: a token × layer matrix of chosen experts with hover text, long-form rows for a
  scatter or heat-map plot, and the load on each expert (how often the routers chose it);
- `map_shape`, `map_row`, `LoadCounter`: the same, a token at a time, for a map that streams by delta
  (ui/moe_map.py);
- `pack(records)` / `unpack(data)`: the compact JSON the history stores with the answer;
- `card(spec)`: what the MoE tab says about a model (experts, active per token, the demo's label).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .catalog import entry_for
from .errors import HistoryError
from .types import Capability, ExpertRecord, LayerRoute, ModelSpec

PACK_VERSION = 1
DIGITS = 5  # weights and probabilities are stored rounded: enough for any plot, a third of the size


@dataclass(frozen=True)
class RoutingMap:
    """What an expert-map plot shows: rows are generated tokens, columns are layers.

    top[t][l]: the expert with the highest weight for token t in layer l (a cell's colour);
    experts[t][l]: all chosen experts, best first; hover[t][l]: the cell's hover text;
    load[e]: how many (token, layer) choices went to expert e; load_by_layer[l][e]: the same per layer.
    """

    tokens: tuple[str, ...]
    layers: int
    num_experts: int
    top_k: int
    top: tuple[tuple[int, ...], ...]
    experts: tuple[tuple[tuple[int, ...], ...], ...]
    hover: tuple[tuple[str, ...], ...]
    load: tuple[int, ...]
    load_by_layer: tuple[tuple[int, ...], ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.tokens

    def cells(self) -> list[dict[str, object]]:
        """One row per (token, layer) cell: the long form a scatter or heat-map plot takes."""
        return [
            {
                "position": t,
                "token": token,
                "layer": layer,
                "expert": self.top[t][layer],
                "experts": ", ".join(str(e) for e in self.experts[t][layer]),
                "hover": self.hover[t][layer],
            }
            for t, token in enumerate(self.tokens)
            for layer in range(self.layers)
        ]

    def rows(self) -> list[MapRow]:
        """The map's rows, one per token, as a streaming map draws them."""
        return [
            MapRow(token, self.top[t], self.experts[t], self.hover[t]) for t, token in enumerate(self.tokens)
        ]

    def load_rows(self) -> list[dict[str, object]]:
        """One row per expert: its number, how often it was chosen, and its share of all choices."""
        total = sum(self.load) or 1
        return [{"expert": e, "count": count, "share": count / total} for e, count in enumerate(self.load)]


def shown_token(text: str) -> str:
    """A token's text made visible: spaces and line breaks as symbols, an empty token as ∅."""
    if not text:
        return "∅"
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")


def distinct(values: Sequence[float], least: int = 3, most: int = 6) -> list[str]:
    """Values with the fewest decimals (from `least`) that tell different values apart: two weights
    that differ never both read 1.000 while the colour says one is higher."""
    for digits in range(least, most + 1):
        shown = [f"{v:.{digits}f}" for v in values]
        if len(set(shown)) == len(set(values)):
            return shown
    return [f"{v:.{most}f}" for v in values]


def _hover(record: ExpertRecord, layer: int, route: LayerRoute) -> str:
    weights, probs = distinct(route.weights), distinct(route.probs)
    choices = "; ".join(
        f"expert {e}: weight {w}, p {p}" for e, w, p in zip(route.experts, weights, probs, strict=False)
    )
    return f"token {record.index} {shown_token(record.token)!r} · layer {layer} · {choices}"


@dataclass(frozen=True)
class MapShape:
    """A map's columns: its layers, the experts a router chooses from, how many it picks per token."""

    layers: int
    num_experts: int
    top_k: int


def map_shape(records: Sequence[ExpertRecord]) -> MapShape:
    """The shape of a map of these records (all of an answer's, or its first one while it streams)."""
    layers = max((len(r.layers) for r in records), default=0)
    num_experts = max((r.num_experts for r in records), default=0)
    num_experts = max(
        num_experts, 1 + max((e for r in records for lr in r.layers for e in lr.experts), default=-1)
    )
    top_k = max((len(lr.experts) for r in records for lr in r.layers), default=0)
    return MapShape(layers, num_experts, top_k)


@dataclass(frozen=True)
class MapRow:
    """One generated token's row of the map: its shown text and, per layer, the top expert, every chosen
    expert (best first) and the cell's hover text."""

    token: str
    top: tuple[int, ...]
    experts: tuple[tuple[int, ...], ...]
    hover: tuple[str, ...]


def map_row(record: ExpertRecord, layers: int) -> MapRow:
    """A token's row over `layers` columns (a layer the record lacks is an empty cell)."""
    top, experts, hover = [], [], []
    for layer in range(layers):
        route = record.layers[layer] if layer < len(record.layers) else LayerRoute((), (), ())
        best = max(zip(route.weights, route.probs, route.experts, strict=False), default=None)
        top.append(best[2] if best is not None else -1)
        experts.append(route.experts)
        hover.append(_hover(record, layer, route))
    return MapRow(shown_token(record.token), tuple(top), tuple(experts), tuple(hover))


class LoadCounter:
    """How often the routers chose each expert, per layer, counted record by record (a streaming map adds
    each new token's choices once: nothing is counted again)."""

    def __init__(self, shape: MapShape) -> None:
        self.shape = shape
        self.by_layer = [[0] * shape.num_experts for _ in range(shape.layers)]

    def add(self, record: ExpertRecord) -> None:
        for layer, route in enumerate(record.layers[: self.shape.layers]):
            counts = self.by_layer[layer]
            for e in route.experts:
                if 0 <= e < len(counts):
                    counts[e] += 1

    @property
    def load(self) -> tuple[int, ...]:
        return tuple(sum(per_layer[e] for per_layer in self.by_layer) for e in range(self.shape.num_experts))


def routing_map(records: Sequence[ExpertRecord]) -> RoutingMap:
    """The plot's data for an answer's records (live from the stream, or `unpack`ed from the history)."""
    shape = map_shape(records)
    counter = LoadCounter(shape)
    rows = []
    for record in records:
        counter.add(record)
        rows.append(map_row(record, shape.layers))
    return RoutingMap(
        tokens=tuple(row.token for row in rows),
        layers=shape.layers,
        num_experts=shape.num_experts,
        top_k=shape.top_k,
        top=tuple(row.top for row in rows),
        experts=tuple(row.experts for row in rows),
        hover=tuple(row.hover for row in rows),
        load=counter.load,
        load_by_layer=tuple(tuple(row) for row in counter.by_layer),
    )


# The history's form: compact, versioned


def stored_form(record: ExpertRecord) -> ExpertRecord:
    """A record as the history gives it back (weights and probabilities rounded to DIGITS places): a map
    drawn while the answer streams reads exactly as the same map drawn from the history."""
    return replace(
        record,
        layers=tuple(
            LayerRoute(
                lr.experts,
                tuple(round(w, DIGITS) for w in lr.weights),
                tuple(round(p, DIGITS) for p in lr.probs),
            )
            for lr in record.layers
        ),
    )


def pack(records: Iterable[ExpertRecord]) -> dict[str, object]:
    """Records as the history stores them: per token [index, token id, text, [[experts], [weights],
    [probs]] per layer], numbers rounded to DIGITS places."""
    records = [stored_form(r) for r in records]
    return {
        "version": PACK_VERSION,
        "num_experts": max((r.num_experts for r in records), default=0),
        "tokens": [
            [
                r.index,
                r.token_id,
                r.token,
                [[list(lr.experts), list(lr.weights), list(lr.probs)] for lr in r.layers],
            ]
            for r in records
        ],
    }


def unpack(data: Mapping[str, Any] | None) -> list[ExpertRecord]:
    """The records back from `pack`'s form ([] for None); HistoryError when the data is not that form."""
    if not data:
        return []
    try:
        if data.get("version") != PACK_VERSION:
            raise ValueError(f"unknown version {data.get('version')!r}")
        num_experts = int(data["num_experts"])
        return [
            ExpertRecord(
                index=int(index),
                token_id=int(token_id),
                token=str(token),
                num_experts=num_experts,
                layers=tuple(
                    LayerRoute(
                        tuple(int(e) for e in experts),
                        tuple(float(w) for w in weights),
                        tuple(float(p) for p in probs),
                    )
                    for experts, weights, probs in layers
                ),
            )
            for index, token_id, token, layers in data["tokens"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryError(
            f"The stored expert map of this answer cannot be read ({exc}); the answer's text is intact. "
            "Generate the answer again to see its map."
        ) from None


def stored_map(experts: Mapping[str, Any] | None) -> RoutingMap | None:
    """The plot's data for a stored answer (`StoredMessage.experts`); None when it has no map."""
    records = unpack(experts)
    return routing_map(records) if records else None


# What the tab says about a model


@dataclass(frozen=True)
class MoeCard:
    """A mixture-of-experts model as the MoE tab introduces it."""

    name: str
    experts: int
    experts_active: int
    params_total: str
    params_active: str
    description: str
    demo: bool  # random weights, built by the playground: never to be presented as a real model
    records_experts: bool  # the engine records each token's experts (local transformers)

    def summary(self) -> str:
        """One line: '16 experts, 2 active per token · 6.6B active of 42B parameters'."""
        parts = []
        if self.experts:
            parts.append(f"{self.experts} experts, {self.experts_active} active per token")
        if self.params_active and self.params_total:
            parts.append(f"{self.params_active} active of {self.params_total} parameters")
        return " · ".join(parts)


def card(spec: ModelSpec) -> MoeCard | None:
    """The MoE card of a catalog model with the moe capability; None for any other model."""
    if Capability.MOE not in spec.capabilities:
        return None
    entry = entry_for(spec)
    if entry is None:
        return None
    return MoeCard(
        name=entry.name,
        experts=entry.experts,
        experts_active=entry.experts_active,
        params_total=entry.params_total,
        params_active=entry.params_active,
        description=entry.description,
        demo=bool(spec.extra.get("demo")),
        records_experts=spec.records_experts,
    )
