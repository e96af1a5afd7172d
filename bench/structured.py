"""Structured output's cost: decode speed with a JSON schema against without, on ONNX Runtime GenAI (its
own guidance, llguidance inside) and transformers (llguidance's masks), through the answer pipeline as the
app runs it. The question asks for a long story; the schema holds it to {"title": …, "story": …} with a story
of at least 2,000 characters, so both answers run to the same 256 new tokens. Medians of N runs each, alternating.

    PYTHONPATH=. .venv/bin/python -m bench.structured [--runs 5] [--write]
"""

from __future__ import annotations

import json
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


def rate(ctx: Any, model: str, held: bool) -> tuple[float, int]:
    options = GenerationOptions(
        temperature=0, max_new_tokens=TOKENS, response_format=FORMAT if held else None
    )
    result = ctx.answers.complete(Request(model, QUESTION, options))
    return float(result.metrics.tokens_per_s or 0.0), result.metrics.completion_tokens


def main(argv: Sequence[str] | None = None) -> None:
    args = local_bench_args(__doc__, argv)
    info, loads = machine(), [load_now()]
    rows = []
    with local_context() as ctx:
        for model in ENGINES:
            free, held = alternated(
                args.runs, partial(rate, ctx, model, False), partial(rate, ctx, model, True)
            )
            loads.append(load_now())
            share = median([r for r, _ in held]) / median([r for r, _ in free])
            tokens = f"{median([n for _, n in free]):.0f} / {median([n for _, n in held]):.0f}"
            runs = ", ".join(f"{a:.1f} / {b:.1f}" for (a, _), (b, _) in zip(free, held, strict=True))
            rows.append(f"| {model} | {median([r for r, _ in free]):.1f} | {median([r for r, _ in held]):.1f} | "
                        f"{100 * share:.1f}% | {tokens} | {runs} |")  # fmt: skip
            print(rows[-1], flush=True)
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
    publish("structured", markdown, args.write)


if __name__ == "__main__":
    main()
