"""The local engines raw against the same generation through the running app (issue Foundation, item 9).

For each engine (ONNX Runtime GenAI int4 and transformers, on the embedded SmolLM2-135M) and each answer
length, greedy, the same request goes three ways, rotated from round to round:
- raw: the engine's stream() in this process, nothing else running, with the thread count each of the
  app's engine workers gets (cores / PLAYGROUND_ENGINE_WORKERS): the baseline the app is held to;
- raw-all: the same with the engine's own default threads (all cores; transformers leaves one free);
- app: `python -m playground serve` in a subprocess, its `/chat` API read by a hand-written client of
  Gradio's event stream (what the page does), timing each update as its bytes arrive;
- gradio_client: the same API through `gradio_client.Client(url).submit(...)`, whose reader polls every
  50 ms (a Python client's view, with that granularity).
Time to first token is from the call (or the request) to the first text; the decode rate counts the
tokens after the first update over the time from it to the last. Greedy on a story prompt runs to the
token limit, so every way decodes the same tokens (checked: the texts must match the raw one).
The app writes a stream trace (PLAYGROUND_TRACE_STREAM=1), lined up here with the client's times to show
where the time goes.

    PYTHONPATH=. python -m bench.app_vs_engine [--runs 5] [--tokens 128 512] [--engines onnx transformers]
                                               [--write]

--write replaces this benchmark's section of docs/benchmarks.md; without it the section is printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    MODELS_DIR,
    QUESTION,
    AppServer,
    Figures,
    ServerSide,
    SseClient,
    Timeline,
    TraceReader,
    app_server,
    chat_args,
    figures,
    gradio_client_chat,
    load_average,
    machine,
    machine_lines,
    median,
    pct,
    server_side,
    write_section,
)
from playground.context import AppContext
from playground.options import GenerationOptions
from playground.providers.base import ChatModel
from playground.providers.local.process import default_threads
from playground.providers.local.worker import load_engine
from playground.settings import Settings
from playground.types import Message

ENGINES = {"onnx": "smollm2-135m-instruct@onnx", "transformers": "smollm2-135m-instruct@transformers"}
LABELS = {"onnx": "ONNX Runtime GenAI int4", "transformers": "transformers float32"}
PATHS = ("raw", "raw-all", "app", "gradio_client")


@dataclass(frozen=True)
class Run:
    engine: str
    tokens: int
    path: str
    figures: Figures
    server: ServerSide | None
    same_text: bool


def raw_timeline(model: ChatModel, tokens: int) -> tuple[Timeline, int]:
    """The engine alone: its stream, timed as it yields; and how many tokens it decoded."""
    options = GenerationOptions(temperature=0.0, max_new_tokens=tokens)
    timeline = Timeline(time.monotonic())
    text, decoded = "", 0
    for chunk in model.stream([Message("user", QUESTION)], options):
        if chunk.text:
            text += chunk.text
            timeline.updates.append((time.monotonic(), text))
        if chunk.metrics is not None:
            decoded = chunk.metrics.completion_tokens
    return timeline, decoded


class Bench:
    """One app server, one raw model per engine, both clients; runs one request at a time."""

    def __init__(self, server: AppServer, ctx: AppContext) -> None:
        from gradio_client import Client

        self.server = server
        self.ctx = ctx
        self.sse = SseClient(server.url)
        self.client = Client(server.url, verbose=False)
        self.trace = TraceReader(server.log)
        self.reference: dict[tuple[str, int], tuple[str, int]] = {}
        self._models: dict[tuple[str, bool], ChatModel] = {}
        self.worker_threads = default_threads(Settings.from_env().engine_workers)

    def model(self, engine: str, all_cores: bool = False) -> ChatModel:
        """The engine in this process (never a worker): the workers' thread count, or its default."""
        key = (engine, all_cores)
        if key not in self._models:
            spec = self.ctx.registry.resolve(ENGINES[engine])
            recipe = self.ctx.registry.providers[spec.provider].recipe(spec)  # type: ignore[attr-defined]
            self._models[key] = load_engine(recipe, None if all_cores else self.worker_threads)
        return self._models[key]

    def count(self, engine: str) -> Callable[[str], int]:
        model = self.model(engine)
        return lambda text: int(model.count_tokens(text) or 0)

    def run(self, engine: str, tokens: int, path: str) -> Run:
        count = self.count(engine)
        if path == "raw":
            timeline, decoded = raw_timeline(self.model(engine), tokens)
            self.reference[(engine, tokens)] = (timeline.text, decoded)
            return Run(engine, tokens, path, figures(timeline, decoded, count), None, True)
        if path == "raw-all":
            timeline, decoded = raw_timeline(self.model(engine, all_cores=True), tokens)
            same = timeline.text == self.reference[(engine, tokens)][0]
            return Run(engine, tokens, path, figures(timeline, decoded, count), None, same)
        args = chat_args(QUESTION, ENGINES[engine], tokens)
        self.trace.new_events()  # drop anything logged between runs
        timeline = self.sse.chat(args) if path == "app" else gradio_client_chat(self.client, args)
        time.sleep(0.05)  # let the server's last trace lines reach its log
        events = self.trace.new_events()
        reference_text, decoded = self.reference[(engine, tokens)]
        same = timeline.text == reference_text
        n = decoded if same else count(timeline.text)
        side = server_side(events, timeline, n) if path == "app" else None
        return Run(engine, tokens, path, figures(timeline, n, count), side, same)

    def close(self) -> None:
        self.sse.close()
        self.client.close()
        for model in self._models.values():
            model.close()


def measure(bench: Bench, engines: Sequence[str], lengths: Sequence[int], runs: int) -> list[Run]:
    results: list[Run] = []
    for engine in engines:
        for tokens in lengths:
            bench.run(engine, tokens, "raw")  # warm up: load both sides, fill caches
            bench.run(engine, tokens, "app")
            for round_ in range(runs):
                for path in PATHS[round_ % len(PATHS) :] + PATHS[: round_ % len(PATHS)]:
                    run = bench.run(engine, tokens, path)
                    results.append(run)
                    print(_line(run), flush=True)
    return results


def _line(run: Run) -> str:
    f = run.figures
    side = ""
    if run.server:
        s = run.server
        side = (f"  | server: first {s.ttft_engine_s * 1000:.0f} ms engine {s.rate_engine:.1f} tok/s, sent "
                f"{s.rate_sent:.1f} tok/s, lag {s.lag_ms:.1f} ms, {s.batches} batches")  # fmt: skip
    same = "" if run.same_text else "  (text differs from raw)"
    return (f"{run.engine:<12} {run.tokens:>4} {run.path:<13} first {f.ttft_s * 1000:6.0f} ms  "
            f"{f.rate:6.1f} tok/s  {f.tokens} tokens{same}{side}")  # fmt: skip


def report(engine: str, results: list[Run], runs: int, info: dict[str, str], loads: list[str]) -> str:
    lines = [
        f"### {LABELS[engine]}: raw against through the app",
        "",
        *machine_lines(info, loads),
        f"- {runs} runs per row, alternating; medians. Greedy, prompt {QUESTION!r}, no system prompt.",
        "- raw: the engine in the benchmark's own process with the threads of one app worker "
        f"({_threads(results)}); raw-all: its default threads (all cores); app and gradio_client: "
        "through the running app, whose engine runs in a worker process; 'Of raw' is against raw.",
        "",
        "| New tokens | Path | First token | Added | Decode | Of raw |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for (_, tokens), rows in _groups(results).items():
        raw = rows["raw"]
        raw_ttft, raw_rate = median([r.figures.ttft_s for r in raw]), median([r.figures.rate for r in raw])
        for path in PATHS:
            ttft = median([r.figures.ttft_s for r in rows.get(path, [])])
            rate = median([r.figures.rate for r in rows.get(path, [])])
            added = "" if path == "raw" else f"{(ttft - raw_ttft) * 1000:+.0f} ms"
            lines.append(f"| {tokens} | {path} | {ttft * 1000:.0f} ms | {added} | "
                         f"{rate:.1f} tok/s | {pct(rate, raw_rate)} |")  # fmt: skip
    lines += ["", *_server_table(results), "", *_mismatches(results)]
    return "\n".join(lines)


def _threads(results: list[Run]) -> str:
    return f"{default_threads(Settings.from_env().engine_workers)} thread(s)"


def _server_table(results: list[Run]) -> list[str]:
    lines = [
        "Inside the app (from its stream trace, lined up with the `app` client's arrival times; medians):",
        "",
        "| New tokens | Engine first token | First update done | Engine decode | Updates sent "
        "| Engine → loop | Gradio per update | → client | Engine → client | Updates |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (_, tokens), rows in _groups(results).items():
        sides = [r.server for r in rows.get("app", []) if r.server is not None]
        if not sides:
            continue

        def m(attr: str, sides: list[ServerSide] = sides) -> float:
            return median([getattr(s, attr) for s in sides])

        lines.append(
            f"| {tokens} | {m('ttft_engine_s') * 1000:.0f} ms | "
            f"{m('ttft_sent_s') * 1000:.0f} ms | {m('rate_engine'):.1f} tok/s | {m('rate_sent'):.1f} tok/s | "
            f"{m('hop_ms'):.2f} ms | {m('gradio_ms'):.2f} ms | {m('deliver_ms'):.2f} ms | {m('lag_ms'):.1f} ms "
            f"| {m('updates'):.0f} |"
        )
    return lines


def _mismatches(results: list[Run]) -> list[str]:
    bad = [r for r in results if not r.same_text]
    if not bad:
        return ["Every answer through the app matched the raw engine's text."]
    return [f"{len(bad)} answers differed from the raw engine's text (tokens recounted with its tokenizer)."]


def _groups(results: list[Run]) -> dict[tuple[str, int], dict[str, list[Run]]]:
    groups: dict[tuple[str, int], dict[str, list[Run]]] = {}
    for run in results:
        groups.setdefault((run.engine, run.tokens), {}).setdefault(run.path, []).append(run)
    return groups


def raw_context(models_dir: Path, data_dir: str) -> AppContext:
    env = {
        "PLAYGROUND_MODELS_DIR": str(models_dir),
        "PLAYGROUND_DATA_DIR": data_dir,
        "PLAYGROUND_ENGINE_PROCESSES": "0",
    }
    return AppContext.create(Settings.from_env({**os.environ, **env}))


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--engines", nargs="+", choices=list(ENGINES), default=list(ENGINES))
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="converted models (both sides)")
    parser.add_argument("--no-trace", action="store_true", help="run the app without its stream trace")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    sections = []
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as data_dir:
        ctx = raw_context(args.models_dir, data_dir)
        try:
            with app_server(trace=not args.no_trace, models_dir=args.models_dir) as server:
                bench = Bench(server, ctx)
                try:
                    for engine in args.engines:
                        info, loads = machine(), [load_average()]
                        results = measure(bench, [engine], args.tokens, args.runs)
                        loads.append(load_average())
                        markdown = report(engine, results, args.runs, info, loads)
                        if args.write:
                            write_section(f"app_vs_engine:{engine}", markdown)
                        print(markdown, flush=True)
                        sections.append(markdown)
                finally:
                    bench.close()
        finally:
            ctx.close()
    return "\n\n".join(sections)


if __name__ == "__main__":
    main()
