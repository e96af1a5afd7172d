"""The arena's two sides at once against each side alone (issue Arena, item 10).

Each round sends one greedy prompt through the Arena tab's own handler (`ArenaTab.play`: the arena
service, both streams folded into one update per tick, the page's outputs built per update; no web
server), and each side alone through the chat service, alternating. Two setups:

- `openai`: two OpenAI-compatible endpoints, each a `transformers serve` on the embedded model's
  transformers folder with one torch thread (the sides are I/O-bound from the app's point of view).
  Goal: the arena's wall time at most 1.1x the slower side's alone.
- `local`: the embedded model on ONNX Runtime GenAI and on transformers, each in its worker process.
  Goal: each side's decode rate in the arena at least 85% of its rate alone.

Wall time is from the call to the last update (the arena) or the last chunk (alone); decode rates are the
engine's own figures from each answer's metrics; medians over the runs.

    PYTHONPATH=. python -m bench.arena [--runs 3] [--tokens 128] [--parts openai local] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from bench.common import (
    MODELS_DIR,
    QUESTION,
    free_port,
    load_average,
    machine,
    machine_lines,
    median,
    pct,
    subprocess_server,
    write_section,
)
from playground.answers import Request
from playground.context import AppContext
from playground.history import new_browser_id
from playground.options import GenerationOptions
from playground.settings import Settings
from playground.types import Message
from playground.ui.arena_tab import NAMED, OUTPUT_NAMES, ArenaTab

HF_FOLDER = MODELS_DIR / "embedded" / "smollm2-135m-instruct-hf"
ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
ENDPOINTS = ("left", "right")


@dataclass
class Figures:
    wall_s: list[float]
    rates: dict[str, list[float]]  # side -> tokens/s per run


@contextmanager
def openai_endpoints() -> Iterator[Path]:
    """Two `transformers serve` servers (one torch thread each) and an endpoints file naming both."""
    with ExitStack() as stack:
        tables = []
        for name in ENDPOINTS:
            port = free_port()
            command = [os.path.join(os.path.dirname(sys.executable), "transformers"), "serve",
                       str(HF_FOLDER), "--port", str(port)]  # fmt: skip
            stack.enter_context(
                subprocess_server(command, f"http://127.0.0.1:{port}/health", {"OMP_NUM_THREADS": "1"}, name)
            )
            tables.append(f'[[endpoints]]\nname = "{name}"\nbase_url = "http://127.0.0.1:{port}/v1"\n')
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-arena-")))
        path = folder / "endpoints.toml"
        path.write_text("\n".join(tables))
        yield path


def context(data_dir: str, extra: dict[str, str]) -> AppContext:
    env = {**os.environ, "PLAYGROUND_MODELS_DIR": str(MODELS_DIR), "PLAYGROUND_DATA_DIR": data_dir, **extra}
    return AppContext.create(Settings.from_env(env))


def served_ids(ctx: AppContext) -> tuple[str, str]:
    """The ids the playground gave the two endpoints' model."""
    ids = []
    for name in ENDPOINTS:
        rows = [r for r in ctx.registry.rows() if r.spec.provider == name and r.availability.available]
        if not rows:
            raise RuntimeError(f"the playground found no model at endpoint {name}")
        ids.append(rows[0].spec.id)
    return ids[0], ids[1]


def alone(ctx: AppContext, model_id: str, tokens: int) -> tuple[float, float]:
    """One side by itself through the answer pipeline: (wall time, decode rate)."""
    options = GenerationOptions(temperature=0, max_new_tokens=tokens)
    started = time.perf_counter()
    result = ctx.answers.complete(Request(model_id, [Message("user", QUESTION)], options))
    return time.perf_counter() - started, float(result.metrics.tokens_per_s or 0.0)


def arena_round(tab: ArenaTab, owner: str, a: str, b: str, tokens: int) -> tuple[float, dict[str, float]]:
    """One round through the Arena tab's handler: (wall time, each side's decode rate)."""
    pane = ("", 0.0, 1.0, 0, tokens, 1.0, -1, "")

    async def run() -> list[tuple[object, ...]]:
        request = gr.Request(session_hash="bench")
        updates = tab.play(request, owner, None, [], NAMED, "", a, b, QUESTION, True, *pane, *pane)
        return [update async for update in updates]

    started = time.perf_counter()
    updates = asyncio.run(run())
    wall = time.perf_counter() - started
    final = updates[-1][OUTPUT_NAMES.index("rounds")][-1]  # type: ignore[index]
    rates = {side: float((final[side]["metrics"] or {}).get("tokens_per_s") or 0.0) for side in ("a", "b")}
    return wall, rates


def measure(ctx: AppContext, a: str, b: str, runs: int, tokens: int) -> tuple[Figures, Figures, Figures]:
    """(A alone, B alone, the arena), alternating run by run, after a warm-up round."""
    tab = ArenaTab(ctx)
    owner = new_browser_id()
    arena_round(tab, owner, a, b, 16)  # warm up: load both sides, open both connections
    solo = {side: Figures([], {side: []}) for side in ("a", "b")}
    both = Figures([], {"a": [], "b": []})
    for _ in range(runs):
        for side, model_id in (("a", a), ("b", b)):
            wall, rate = alone(ctx, model_id, tokens)
            solo[side].wall_s.append(wall)
            solo[side].rates[side].append(rate)
        wall, rates = arena_round(tab, owner, a, b, tokens)
        both.wall_s.append(wall)
        for side, rate in rates.items():
            both.rates[side].append(rate)
        print(
            f"  alone {solo['a'].wall_s[-1]:.2f} s / {solo['b'].wall_s[-1]:.2f} s, arena {wall:.2f} s",
            flush=True,
        )
    return solo["a"], solo["b"], both


def rows_for(setup: str, a: str, b: str, figures: tuple[Figures, Figures, Figures], goal: str) -> list[str]:
    solo_a, solo_b, both = figures
    slower = max(median(solo_a.wall_s), median(solo_b.wall_s))
    wall = median(both.wall_s)
    rows = [f"| {setup} | wall time | {slower:.2f} s (slower side alone) | {wall:.2f} s | "
            f"{wall / slower:.2f}x | {goal if setup.startswith('two OpenAI') else ''} |"]  # fmt: skip
    for side, model_id, solo in (("a", a, solo_a), ("b", b, solo_b)):
        rate_alone, rate_arena = median(solo.rates[side]), median(both.rates[side])
        rows.append(f"| {setup} | side {side.upper()}: `{model_id}` | {rate_alone:.1f} tok/s | "
                    f"{rate_arena:.1f} tok/s | {pct(rate_arena, rate_alone)} | "
                    f"{goal if setup.startswith('two local') else ''} |")  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--parts", nargs="+", choices=("openai", "local"), default=["openai", "local"])
    parser.add_argument("--write", action="store_true", help="write the section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    os.environ.update(
        {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    )
    info, loads = machine(), [load_average()]
    rows: list[str] = []
    if "openai" in args.parts:
        print("two OpenAI-compatible endpoints", flush=True)
        with openai_endpoints() as endpoints, tempfile.TemporaryDirectory(prefix="bench-arena-") as data:
            ctx = context(data, {"PLAYGROUND_ENDPOINTS": str(endpoints)})
            try:
                a, b = served_ids(ctx)
                found = measure(ctx, a, b, args.runs, args.tokens)
                rows += rows_for("two OpenAI-compatible endpoints", a, b, found, "≤ 1.10x")
            finally:
                ctx.close()
    if "local" in args.parts:
        print("two local engines (worker processes)", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-arena-") as data:
            ctx = context(data, {"PLAYGROUND_ENGINE_PROCESSES": "1"})
            try:
                found = measure(ctx, ONNX, HF, args.runs, args.tokens)
                rows += rows_for("two local engines", ONNX, HF, found, "≥ 85%")
            finally:
                ctx.close()
    loads.append(load_average())
    markdown = "\n".join(
        [
            "### Arena: two sides at once against each alone",
            "",
            *machine_lines(info, loads),
            f"- {args.runs} run(s) per row, alternating A alone, B alone, the arena; medians. Greedy, "
            f"{args.tokens} new tokens, prompt {QUESTION!r}. The arena round goes through the Arena tab's "
            "handler (both streams folded into one update per tick, the page's outputs built each "
            "update; no web server); alone, through the chat service. Rates: the engine's own figures.",
            "- OpenAI-compatible: two `transformers serve` servers on the embedded model's folder, one torch "
            "thread each. Local: ONNX Runtime GenAI int4 and transformers float32, each in its worker.",
            "",
            "| Setup | Measure | Alone | In the arena | Arena / alone | Goal |",
            "|---|---|---:|---:|---:|---|",
            *rows,
        ]
    )
    print(markdown)
    if args.write:
        write_section("arena", markdown)
    return markdown


if __name__ == "__main__":
    main()
