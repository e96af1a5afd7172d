"""An OpenAI-compatible server straight, against the same request through the playground (issue Cloud
providers, item 9).

`transformers serve` runs the embedded model's transformers folder; the same greedy streamed request goes
(alternating, rotated from round to round):
- direct: the openai SDK straight to the server;
- playground: the app (`python -m playground serve`, OPENAI_BASE_URL pointing at the server) through its
  `/chat` API, read by a hand-written client of Gradio's event stream, timing each update as it arrives;
- gradio_client: the same API through gradio_client (its reader polls every 50 ms).
The model id is the one the playground discovered (`python -m playground models --json`). Time to first
token is from the call to the first text; the decode rate counts the tokens after the first update over
the time from it to the last (token counts from the server's usage, or the model's tokenizer).

    PYTHONPATH=. python -m bench.openai_path [--runs 5] [--tokens 128] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

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
    free_port,
    gradio_client_chat,
    load_average,
    machine,
    machine_lines,
    median,
    pct,
    server_side,
    subprocess_server,
    write_section,
)

HF_FOLDER = MODELS_DIR / "embedded" / "smollm2-135m-instruct-hf"
PATHS = ("direct", "playground", "gradio_client")


@dataclass(frozen=True)
class Run:
    tokens: int
    path: str
    figures: Figures
    server: ServerSide | None
    same_text: bool


@contextmanager
def openai_server(threads: int) -> Iterator[AppServer]:
    """`transformers serve` on the embedded model's folder, with `threads` torch threads (0: torch's
    default, one per core); yields its /v1 base URL."""
    port = free_port()
    command = [os.path.join(os.path.dirname(sys.executable), "transformers"), "serve", str(HF_FOLDER),
               "--port", str(port)]  # fmt: skip
    env = {"OMP_NUM_THREADS": str(threads)} if threads else {}
    with subprocess_server(command, f"http://127.0.0.1:{port}/health", env, "openai") as server:
        yield AppServer(f"http://127.0.0.1:{port}/v1", server.log, server.process)


def discovered_model(base_url: str) -> str:
    """The id the playground gives the server's model (its models list, with OPENAI_BASE_URL set)."""
    env = {**os.environ, "OPENAI_BASE_URL": base_url, "PYTHONPATH": os.getcwd(), "HF_HUB_OFFLINE": "1"}
    listed = subprocess.run([sys.executable, "-m", "playground", "models", "--json"], env=env, check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    rows = [r for r in json.loads(listed) if r["provider"] == "openai-compatible" and r["available"]]
    if not rows:
        raise RuntimeError(f"the playground found no model at {base_url}")
    return str(rows[0]["id"])


class Bench:
    def __init__(self, base_url: str, app: AppServer, model_id: str) -> None:
        from gradio_client import Client
        from openai import OpenAI
        from transformers import AutoTokenizer

        self.openai = OpenAI(base_url=base_url, api_key="none", max_retries=0)
        self.served = self.openai.models.list().data[0].id
        self.app = app
        self.model_id = model_id
        self.sse = SseClient(app.url)
        self.client = Client(app.url, verbose=False)
        self.trace = TraceReader(app.log)
        tokenizer = AutoTokenizer.from_pretrained(str(HF_FOLDER))
        self.count: Callable[[str], int] = lambda text: len(
            tokenizer(text, add_special_tokens=False)["input_ids"]
        )
        self.reference: dict[int, tuple[str, int]] = {}

    def direct(self, tokens: int) -> tuple[Timeline, int]:
        timeline = Timeline(time.monotonic())
        stream = self.openai.chat.completions.create(
            model=self.served,
            messages=[{"role": "user", "content": QUESTION}],
            temperature=0.0,
            top_p=1.0,
            max_tokens=tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, used = "", 0
        for chunk in stream:
            if chunk.usage is not None:
                used = chunk.usage.completion_tokens
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                timeline.updates.append((time.monotonic(), text))
        return timeline, used or self.count(text)

    def run(self, tokens: int, path: str) -> Run:
        if path == "direct":
            timeline, used = self.direct(tokens)
            self.reference[tokens] = (timeline.text, used)
            return Run(tokens, path, figures(timeline, used, self.count), None, True)
        args = chat_args(QUESTION, self.model_id, tokens)
        self.trace.new_events()
        timeline = self.sse.chat(args) if path == "playground" else gradio_client_chat(self.client, args)
        time.sleep(0.05)
        events = self.trace.new_events()
        reference, used = self.reference[tokens]
        same = timeline.text == reference
        n = used if same else self.count(timeline.text)
        side = server_side(events, timeline, n) if path == "playground" else None
        return Run(tokens, path, figures(timeline, n, self.count), side, same)

    def close(self) -> None:
        self.sse.close()
        self.client.close()
        self.openai.close()


def measure(bench: Bench, lengths: Sequence[int], runs: int) -> list[Run]:
    results: list[Run] = []
    for tokens in lengths:
        bench.run(tokens, "direct")  # warm up the server, the app's adapter and both connection pools
        bench.run(tokens, "playground")
        for round_ in range(runs):
            for path in PATHS[round_ % 3 :] + PATHS[: round_ % 3]:
                run = bench.run(tokens, path)
                results.append(run)
                f = run.figures
                print(f"{tokens:>4} {path:<13} first {f.ttft_s * 1000:6.0f} ms  {f.rate:6.2f} tok/s  "
                      f"{f.tokens} tokens{'' if run.same_text else '  (text differs)'}", flush=True)  # fmt: skip
    return results


def report(results: list[Run], runs: int, threads: int, info: dict[str, str], loads: list[str]) -> str:
    lines = [
        "### OpenAI-compatible server: direct against through the playground",
        "",
        *machine_lines(info, loads),
        f"- `transformers serve` on the embedded SmolLM2-135M folder (float32, CPU, "
        f"{threads or 'one per core'} torch thread(s)); {runs} runs per row, "
        f"alternating; medians. Greedy, prompt {QUESTION!r}.",
        "",
        "| New tokens | Path | First token | Added | Decode | Of direct |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    by: dict[int, dict[str, list[Run]]] = {}
    for run in results:
        by.setdefault(run.tokens, {}).setdefault(run.path, []).append(run)
    for tokens, rows in by.items():
        base_ttft = median([r.figures.ttft_s for r in rows["direct"]])
        base_rate = median([r.figures.rate for r in rows["direct"]])
        for path in PATHS:
            ttft = median([r.figures.ttft_s for r in rows.get(path, [])])
            rate = median([r.figures.rate for r in rows.get(path, [])])
            added = "" if path == "direct" else f"{(ttft - base_ttft) * 1000:+.0f} ms"
            lines.append(f"| {tokens} | {path} | {ttft * 1000:.0f} ms | {added} | {rate:.2f} tok/s | "
                         f"{pct(rate, base_rate)} |")  # fmt: skip
    lines += [
        "",
        "Inside the app (its stream trace against the `playground` client's arrival times; medians):",
        "",
    ]
    lines += ["| New tokens | Adapter's first token | First update done | Updates sent | Engine → client | Updates |",
              "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for tokens, rows in by.items():
        sides = [r.server for r in rows.get("playground", []) if r.server is not None]
        if sides:
            lines.append(
                f"| {tokens} | {median([s.ttft_engine_s for s in sides]) * 1000:.0f} ms | "
                f"{median([s.ttft_sent_s for s in sides]) * 1000:.0f} ms | "
                f"{median([s.rate_sent for s in sides]):.2f} tok/s | {median([s.lag_ms for s in sides]):.1f} ms | "
                f"{median([s.updates for s in sides]):.0f} |"
            )
    differ = sum(not r.same_text for r in results)
    lines += [
        "",
        f"{differ} answers differed from the direct text."
        if differ
        else "Every answer matched the direct one.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, nargs="+", default=[128])
    parser.add_argument("--server-threads", type=int, default=1,
                        help="torch threads of the server (0: one per core, which stalls whenever the "
                        "app or the client is busy on a 2-core machine)")  # fmt: skip
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    info, loads = machine(), [load_average()]
    with openai_server(args.server_threads) as upstream:
        model_id = discovered_model(upstream.url)
        with app_server({"OPENAI_BASE_URL": upstream.url}) as app:
            bench = Bench(upstream.url, app, model_id)
            try:
                results = measure(bench, args.tokens, args.runs)
            finally:
                bench.close()
    loads.append(load_average())
    markdown = report(results, args.runs, args.server_threads, info, loads)
    if args.write:
        write_section("openai_path", markdown)
    print(markdown)
    return markdown


if __name__ == "__main__":
    main()
