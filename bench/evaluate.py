"""The evaluation's own cost: 20 items on the embedded model through Evaluate (the service the tab and
`eval` use: the answer pipeline, a worker process, the checks, the history written as it goes) against the
same items through the raw engine one after another, in this process. Medians of N runs each,
alternating; each run's total time.

    PYTHONPATH=. python -m bench.evaluate [--runs 3] [--write]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence

from bench.common import MODELS_DIR, load_average, machine, machine_lines, median, write_section
from playground.context import AppContext
from playground.evaluate import sets
from playground.evaluate.service import last
from playground.options import GenerationOptions
from playground.providers.local.process import default_threads
from playground.providers.local.worker import load_engine
from playground.settings import Settings
from playground.types import Message

ONNX = "smollm2-135m-instruct@onnx"
SETS = ("facts", "arithmetic", "multilingual")  # 8 + 6 + 6 = 20 items
OPTIONS = GenerationOptions(temperature=0, max_new_tokens=64)


def twenty() -> sets.PromptSet:
    items = tuple(item for name in SETS for item in sets.load(name).items)
    return sets.PromptSet("bench-20", items, "bundled")


def raw(engine: object, prompt_set: sets.PromptSet) -> float:
    began = time.perf_counter()
    for item in prompt_set.items:
        for _ in engine.stream([Message("user", item.prompt)], OPTIONS):  # type: ignore[attr-defined]
            pass
    return time.perf_counter() - began


def evaluated(ctx: AppContext, prompt_set: sets.PromptSet) -> float:
    began = time.perf_counter()
    run = ctx.evals.start("bench", [ONNX], prompt_set, OPTIONS, fewest=1)
    assert last(ctx.evals.run("bench", run.id)).status == "done"
    return time.perf_counter() - began


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    env = {**os.environ, "PLAYGROUND_MODELS_DIR": str(MODELS_DIR), "PLAYGROUND_DATA_DIR": tempfile.mkdtemp()}
    settings = Settings.from_env(env)
    ctx = AppContext.create(settings)
    threads = default_threads(settings.engine_workers)
    spec = ctx.registry.resolve(ONNX)
    engine = load_engine(ctx.registry.providers[spec.provider].recipe(spec), threads)  # type: ignore[attr-defined]
    prompt_set = twenty()
    info, loads = machine(), [load_average()]
    times: dict[str, list[float]] = {"raw engine": [], "Evaluate": []}
    try:
        raw(engine, prompt_set), evaluated(ctx, prompt_set)  # warm-up: both loaded, caches filled
        for run in range(args.runs):
            order = ("raw engine", "Evaluate") if run % 2 == 0 else ("Evaluate", "raw engine")
            for path in order:
                times[path].append(
                    raw(engine, prompt_set) if path == "raw engine" else evaluated(ctx, prompt_set)
                )
                print(f"{path:<11} {times[path][-1]:6.2f} s", flush=True)
        loads.append(load_average())
    finally:
        engine.close()
        ctx.close()
    base = median(times["raw engine"])
    rows = [
        f"| {path} | {median(values):.2f} s | {100 * median(values) / base:.0f}% |"
        for path, values in times.items()
    ]
    markdown = "\n".join(
        [
            "### Evaluate: its own cost against the raw engine",
            "",
            *machine_lines(info, loads),
            f"- {len(prompt_set.items)} items (the bundled {', '.join(SETS)} sets), greedy, at most "
            f"{OPTIONS.max_new_tokens} new tokens, on `{ONNX}`; {args.runs} runs each, alternating; medians of "
            f"each run's total time. raw engine: the model in this process with one worker's threads "
            f"({threads}), the items one after another; Evaluate: a run of the service the tab and `eval` use "
            "(the answer pipeline, the worker process, the checks, the history written as it goes).",
            "",
            "| Path | Total | Of raw |",
            "|---|---:|---:|",
            *rows,
            "",
            "Each run (raw engine / Evaluate, s): "
            + "; ".join(
                f"{r:.2f} / {e:.2f} ({100 * e / r:.0f}%)"
                for r, e in zip(times["raw engine"], times["Evaluate"], strict=True)
            )
            + ".",
        ]
    )
    print(markdown)
    if args.write:
        write_section("evaluate", markdown)


if __name__ == "__main__":
    main()
