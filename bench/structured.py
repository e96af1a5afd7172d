"""Structured output's cost: decode speed with a JSON schema against without, on ONNX Runtime GenAI (its
own guidance, llguidance inside) and transformers (llguidance's masks), through the answer pipeline as the
app runs it. The question asks for a long story; the schema holds it to {"title": …, "story": …} with a story
of at least 2,000 characters, so both answers run to the same 256 new tokens. Medians of N runs each, alternating.

    PYTHONPATH=. .venv/bin/python -m bench.structured [--runs 5] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence

from bench.common import MODELS_DIR, load_average, machine, machine_lines, median, write_section
from playground.answers import Request
from playground.context import AppContext
from playground.options import GenerationOptions
from playground.settings import Settings
from playground.structured import ResponseFormat
from playground.types import Message

ENGINES = ("smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers")
QUESTION = [Message("user", "Write a long story about a lighthouse keeper, with a title.")]
TOKENS = 256
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 60},
        "story": {"type": "string", "minLength": 2000},
    },
    "required": ["title", "story"],
}
FORMAT = ResponseFormat(kind="json_schema", schema_text=json.dumps(SCHEMA))


def rate(ctx: AppContext, model: str, held: bool) -> tuple[float, int]:
    options = GenerationOptions(
        temperature=0, max_new_tokens=TOKENS, response_format=FORMAT if held else None
    )
    result = ctx.answers.complete(Request(model, QUESTION, options))
    return float(result.metrics.tokens_per_s or 0.0), result.metrics.completion_tokens


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    env = {**os.environ, "PLAYGROUND_MODELS_DIR": str(MODELS_DIR), "PLAYGROUND_DATA_DIR": tempfile.mkdtemp()}
    info, loads = machine(), [load_average()]
    ctx = AppContext.create(Settings.from_env(env))
    rows = []
    try:
        for model in ENGINES:
            rate(ctx, model, True)  # warm up: the worker, the model, the grammar's tokenizer
            free, held = [], []
            for _ in range(args.runs):
                free.append(rate(ctx, model, False))
                held.append(rate(ctx, model, True))
            loads.append(load_average())
            share = median([r for r, _ in held]) / median([r for r, _ in free])
            tokens = f"{median([n for _, n in free]):.0f} / {median([n for _, n in held]):.0f}"
            runs = ", ".join(f"{a:.1f} / {b:.1f}" for (a, _), (b, _) in zip(free, held, strict=True))
            rows.append(f"| {model} | {median([r for r, _ in free]):.1f} | {median([r for r, _ in held]):.1f} | "
                        f"{100 * share:.1f}% | {tokens} | {runs} |")  # fmt: skip
            print(rows[-1], flush=True)
            loads[-1] += " (under load)" if float(loads[-1].split(" / ")[0]) > 1.5 else ""
    finally:
        ctx.close()
    markdown = "\n".join(
        [
            "### Structured output's cost (issue 18)",
            "",
            *machine_lines(info, loads),
            f"- Command: `PYTHONPATH=. .venv/bin/python -m bench.structured --runs {args.runs}`",
            f"- Greedy, at most {TOKENS} new tokens, {QUESTION[0].content!r}; held: the JSON schema "
            f"`{json.dumps(SCHEMA)}`; decode rate in tokens/s (tokens after the first over the time after "
            f"the first), medians of {args.runs} runs, alternating.",
            "",
            "| Model | Free (tok/s) | Held to the schema (tok/s) | Held of free | Tokens (free / held) | "
            "Each run (free / held) |",
            "|---|---:|---:|---:|---|---|",
            *rows,
        ]
    )
    print(markdown)
    if args.write:
        write_section("structured", markdown)


if __name__ == "__main__":
    main()
