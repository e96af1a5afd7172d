"""The expert map's cost per update at Phi-3.5-MoE's shape (32 layers, 16 experts, top 2), as an answer
grows: by delta (what the MoE tab sends: the new token's row and the load) against the whole map rebuilt
on every update (what it sent before). Synthetic ExpertRecords (seeded) through the real rendering path:
the tab's LiveMap, Gradio's postprocessing of the two components and its streaming diff.

    PYTHONPATH=. python -m bench.moe_map [--updates 200] [--write]

Per update: the bytes the handler returns for the map (the map's value and the load's rows), the bytes
Gradio sends for them (its diff against the previous update), and the server time of all that; medians
(and the largest) over `--updates` updates in a row, one new token each, from 100, 1,000 and 4,000 tokens.
The whole map is timed once per length (it takes seconds at 4,000 tokens).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Sequence
from typing import Any

import gradio as gr
from gradio import utils as gradio_utils

from bench.common import load_average, machine, machine_lines, median, publish
from playground.moe_view import routing_map
from playground.types import ExpertRecord, LayerRoute
from playground.ui import moe_map

LAYERS, EXPERTS, TOP_K = 32, 16, 2  # Phi-3.5-MoE
LENGTHS = (100, 1_000, 4_000)
WORDS = (" the", " sea", " light", "house", " keeper", " watched", ",", " and", " storm", " ships", ".", "\n")
GOAL_BYTES, GOAL_S = 10_000, 0.002


def records(count: int, seed: int = 18) -> list[ExpertRecord]:
    """`count` tokens' routing: per layer, random router scores, the top 2 experts, their weights."""
    rng = random.Random(seed)
    made = []
    for index in range(count):
        layers = []
        for _ in range(LAYERS):
            scores = [rng.gauss(0, 1) for _ in range(EXPERTS)]
            total = sum(math.exp(s) for s in scores)
            probs = [math.exp(s) / total for s in scores]
            chosen = sorted(range(EXPERTS), key=lambda e: -scores[e])[:TOP_K]
            top = sum(probs[e] for e in chosen)
            layers.append(
                LayerRoute(
                    tuple(chosen), tuple(probs[e] / top for e in chosen), tuple(probs[e] for e in chosen)
                )
            )
        made.append(ExpertRecord(index, 1000 + index, rng.choice(WORDS), EXPERTS, tuple(layers)))
    return made


class Page:
    """The two components as the app has them, and Gradio's work on each update: postprocess, diff."""

    def __init__(self) -> None:
        self.map = gr.HTML()
        self.load = gr.BarPlot(x="expert", y="count")
        self.last: list[Any] = [None, None]

    def send(self, value: str, load: Any) -> tuple[int, int]:
        """The bytes the handler returned and the bytes Gradio sends after its diff."""
        plot = self.load.postprocess(load)
        out: list[Any] = [self.map.postprocess(value), plot.model_dump() if plot is not None else None]
        returned = len(value.encode()) + len(json.dumps(out[1], default=str, ensure_ascii=False).encode())
        edits = gradio_utils.diff(self.last, out)
        sent = len(json.dumps(edits, default=str, ensure_ascii=False).encode())
        self.last = out
        return returned, sent


def by_delta(all_records: Sequence[ExpertRecord], start: int, updates: int) -> dict[str, float]:
    """`updates` updates in a row, one token each, after the map was drawn up to `start` tokens."""
    live, page = moe_map.LiveMap(), Page()
    grown = list(all_records[: start - 1])  # one list that grows, as the answer's records do
    page.send(*live.update(grown))
    times, returned, sent = [], [], []
    for n in range(start - 1, start + updates):
        grown.append(all_records[n])
        began = time.perf_counter()
        value, load = live.update(grown)
        got, wire = page.send(value, load)
        if n < start:  # the update that drew token `start` itself: not measured
            continue
        times.append(time.perf_counter() - began)
        returned.append(got)
        sent.append(wire)
    return {
        "bytes": median(returned),
        "bytes_max": max(returned),
        "wire": median(sent),
        "s": median(times),
        "s_max": max(times),
    }


def whole(all_records: Sequence[ExpertRecord], count: int) -> dict[str, float]:
    """One update as before: the whole map and load rebuilt from every record so far."""
    page = Page()
    began = time.perf_counter()
    routing = routing_map(all_records[:count])
    value, load = moe_map.map_html(routing), moe_map.load_frame(routing)
    got, _ = page.send(value, load)
    return {"bytes": got, "s": time.perf_counter() - began}


def kb(size: float) -> str:
    return f"{size / 1000:.1f} KB" if size < 1e6 else f"{size / 1e6:.1f} MB"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=200, help="updates measured in a row per length")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    info, loads = machine(), [load_average()]
    made = records(max(LENGTHS) + args.updates + 1)
    rows = []
    for count in LENGTHS:
        delta, before = by_delta(made, count, args.updates), whole(made, count)
        print(f"{count:>5} tokens: delta {delta}, whole {before}", flush=True)
        rows.append(
            f"| {count:,} | {kb(delta['bytes'])} (largest {kb(delta['bytes_max'])}) | {kb(delta['wire'])} | "
            f"{ms(delta['s'])} (largest {ms(delta['s_max'])}) | {kb(before['bytes'])} | {ms(before['s'])} |"
        )
    loads.append(load_average())
    markdown = "\n".join(
        [
            "### The expert map per update, at Phi-3.5-MoE's shape",
            "",
            *machine_lines(info, loads),
            f"- {LAYERS} layers, {EXPERTS} experts, top {TOP_K}; synthetic records (seeded) through the MoE "
            "tab's LiveMap, Gradio's postprocessing of the map and the load plot, and its streaming diff. "
            f"By delta: medians (and the largest) of {args.updates} updates in a row, one new token each, "
            "after the map was drawn up to the given length. Whole map: one update that rebuilds the map "
            "and the load from every token so far (how the tab drew it before).",
            f"- Goal: the same per update at every length, under {GOAL_BYTES // 1000} KB and "
            f"{GOAL_S * 1000:.0f} ms.",
            "",
            "| Tokens so far | By delta: returned per update | Sent (Gradio's diff) | Server time | "
            "Whole map: returned | Server time |",
            "|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    publish("moe_map", markdown, args.write)


if __name__ == "__main__":
    main()
