"""The token view's cost: decode speed with it on (each token's probability and 10 alternatives) against
off, on both local engines, through the answer pipeline as the app runs it (worker processes). The same
greedy question, 256 new tokens; on and off alternate, N runs each; the medians of the engine's own decode
rate (tokens after the first over the time after the first).

    PYTHONPATH=. .venv/bin/python -m bench.token_view [--runs 5] [--write]
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from bench.common import (
    alternated,
    load_now,
    local_bench_args,
    local_context,
    machine,
    machine_lines,
    median,
    publish,
)
from playground.answers import Request
from playground.options import GenerationOptions
from playground.token_view import TOKEN_VIEW_K
from playground.types import Message

ENGINES = ("smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers")
QUESTION = [Message("user", "Write a long story about a lighthouse keeper.")]
TOKENS = 256
GOAL = 0.95  # of the rate without the view, ONNX Runtime GenAI


def rate(ctx: Any, model: str, logprobs: int) -> float:
    options = GenerationOptions(temperature=0, max_new_tokens=TOKENS, logprobs=logprobs)
    result = ctx.answers.complete(Request(model, QUESTION, options))
    assert result.metrics.completion_tokens == TOKENS, result.metrics
    assert len(result.tokens) == (TOKENS if logprobs else 0)
    return float(result.metrics.tokens_per_s or 0.0)


def main(argv: Sequence[str] | None = None) -> None:
    args = local_bench_args(__doc__, argv)
    info, loads = machine(), [load_now()]
    rows, goals = [], []
    with local_context() as ctx:
        for model in ENGINES:
            off, on = alternated(
                args.runs, partial(rate, ctx, model, 0), partial(rate, ctx, model, TOKEN_VIEW_K)
            )
            loads.append(load_now())
            share = median(on) / median(off)
            runs = ", ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(off, on, strict=True))
            rows.append(f"| {model} | {median(off):.1f} | {median(on):.1f} | {100 * share:.1f}% | {runs} |")
            print(rows[-1], flush=True)
            if model.endswith("@onnx"):
                verdict = "met" if share >= GOAL else f"MISSED by {100 * (GOAL - share):.1f} points"
                goals.append(f"- Goal: at least {100 * GOAL:.0f}% of the rate without the view on ONNX "
                             f"Runtime GenAI: {100 * share:.1f}%, {verdict}.")  # fmt: skip
    markdown = "\n".join(
        [
            "### The token view's cost (issue 18)",
            "",
            *machine_lines(info, loads),
            f"- Command: `PYTHONPATH=. .venv/bin/python -m bench.token_view --runs {args.runs}`",
            f"- Greedy, {TOKENS} new tokens, {QUESTION[0].content!r}, through the answer pipeline (worker "
            f"processes); on = {TOKEN_VIEW_K} alternatives a token; decode rate in tokens/s, medians of "
            f"{args.runs} runs, on and off alternating.",
            "",
            "| Model | Off (tok/s) | On (tok/s) | On of off | Each run (off / on) |",
            "|---|---:|---:|---:|---|",
            *rows,
            "",
            *goals,
        ]
    )
    publish("token-view", markdown, args.write)


if __name__ == "__main__":
    main()
