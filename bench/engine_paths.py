"""Where an answer's decode rate goes before the web server: the engine in this process, the same engine
in a worker process through the answer pipeline (no web server), and, for each, its own decode figure.

The app's benchmark (app_vs_engine) compares the raw engine with answers through the running app; this
one takes the web server out, to tell the worker and the pipeline's share of a difference from the share
of the server's work on the same cores.

    PYTHONPATH=. python -m bench.engine_paths [--tokens 128 512] [--runs 5] [--write]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence

from bench.common import (
    MODELS_DIR,
    QUESTION,
    load_average,
    machine,
    machine_lines,
    median,
    pct,
    write_section,
)
from playground.answers import Request
from playground.context import AppContext
from playground.options import GenerationOptions
from playground.providers.local.process import default_threads
from playground.providers.local.worker import load_engine
from playground.settings import Settings
from playground.types import Message

ONNX = "smollm2-135m-instruct@onnx"
PATHS = ("raw", "worker")


def measure(ctx: AppContext, engine: object, path: str, tokens: int) -> float:
    """One greedy answer's decode rate, as the engine measured it (tokens after the first over the time
    after it)."""
    options = GenerationOptions(temperature=0, max_new_tokens=tokens)
    messages = [Message("user", QUESTION)]
    if path == "raw":
        chunks = list(engine.stream(messages, options))  # type: ignore[attr-defined]
        metrics = chunks[-1].metrics
    else:
        metrics = ctx.answers.complete(Request(ONNX, messages, options)).metrics
    assert metrics is not None and metrics.completion_tokens == tokens, metrics
    return float(metrics.tokens_per_s or 0.0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    env = {**os.environ, "PLAYGROUND_MODELS_DIR": str(MODELS_DIR), "PLAYGROUND_DATA_DIR": tempfile.mkdtemp()}
    settings = Settings.from_env(env)
    ctx = AppContext.create(settings)
    threads = default_threads(settings.engine_workers)
    spec = ctx.registry.resolve(ONNX)
    engine = load_engine(ctx.registry.providers[spec.provider].recipe(spec), threads)  # type: ignore[attr-defined]
    info, loads = machine(), [load_average()]
    rates: dict[tuple[int, str], list[float]] = {}
    try:
        for tokens in args.tokens:
            for path in PATHS:  # warm-up
                measure(ctx, engine, path, tokens)
            for run in range(args.runs):
                for path in PATHS[run % 2 :] + PATHS[: run % 2]:  # the order alternates
                    rates.setdefault((tokens, path), []).append(measure(ctx, engine, path, tokens))
                    print(f"{tokens:>4} {path:<7} {rates[tokens, path][-1]:6.1f} tok/s", flush=True)
            loads.append(load_average())
    finally:
        engine.close()
        ctx.close()
    rows = [
        f"| {tokens} | {path} | {median(rates[tokens, path]):.1f} tok/s | "
        f"{pct(median(rates[tokens, path]), median(rates[tokens, 'raw']))} |"
        for tokens in args.tokens
        for path in PATHS
    ]
    markdown = "\n".join(
        [
            "### ONNX Runtime GenAI: the engine alone against the engine in a worker, without the web server",
            "",
            *machine_lines(info, loads),
            f"- {args.runs} runs per row, alternating; medians of the engine's own decode figure. Greedy, "
            f"prompt {QUESTION!r}. raw: the engine in this process with one worker's threads ({threads}); "
            "worker: the same model in a worker process, asked through the answer pipeline "
            "(`AnswerService.complete`), no web server running.",
            "",
            "| New tokens | Path | Decode | Of raw |",
            "|---:|---|---:|---:|",
            *rows,
        ]
    )
    print(markdown)
    if args.write:
        write_section("engine_paths", markdown)


if __name__ == "__main__":
    main()
