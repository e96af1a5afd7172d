"""Two local answers at once, and the page while engines are busy (the engine-process issue's benchmark).

Two parts, each writing its own section of docs/benchmarks.md with --write:

- `pairs`: the embedded model on ONNX twice, and ONNX beside transformers. Each side's decode rate (the
  engine's own figure, from the answer's metrics) alone and with the other side running at the same
  time, in the same engine configuration; alternating, medians. Run for worker processes (the
  default) and for in-process engines (PLAYGROUND_ENGINE_PROCESSES=0), which share one GIL.
- `page`: the app in a subprocess; a real Chromium (Playwright) loads the page until the question box
  shows, then opens the Models tab until its table shows. Idle, during one 512-token answer, and with
  16 visitors asking at once (gradio_client, loopback, bounded); medians.

    PYTHONPATH=. python -m bench.concurrency [--runs 3] [--parts pairs page] [--write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from bench.common import (
    MODELS_DIR,
    QUESTION,
    app_server,
    chat_args,
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
from playground.settings import Settings
from playground.types import Message

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
PAIRS = {"ONNX + ONNX": (ONNX, ONNX), "ONNX + transformers": (ONNX, HF)}
TOKENS = 256


def context(processes: bool, data_dir: str) -> AppContext:
    env = {
        **os.environ,
        "PLAYGROUND_MODELS_DIR": str(MODELS_DIR),
        "PLAYGROUND_DATA_DIR": data_dir,
        "PLAYGROUND_ENGINE_PROCESSES": "1" if processes else "0",
    }
    return AppContext.create(Settings.from_env(env))


def decode_rate(ctx: AppContext, model_id: str) -> float:
    """One greedy answer of TOKENS tokens; the engine's decode rate."""
    options = GenerationOptions(temperature=0, max_new_tokens=TOKENS)
    result = ctx.answers.complete(Request(model_id, [Message("user", QUESTION)], options))
    return float(result.metrics.tokens_per_s or 0.0)


def together(ctx: AppContext, model_ids: Sequence[str]) -> list[float]:
    rates = [0.0] * len(model_ids)
    start = threading.Barrier(len(model_ids))

    def side(i: int) -> None:
        start.wait()
        rates[i] = decode_rate(ctx, model_ids[i])

    threads = [threading.Thread(target=side, args=(i,)) for i in range(len(model_ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rates


def pairs(runs: int) -> str:
    info, loads = machine(), [load_average()]
    rows: list[str] = []
    for processes in (True, False):
        with tempfile.TemporaryDirectory(prefix="bench-pairs-") as data_dir:
            ctx = context(processes, data_dir)
            try:
                for name, model_ids in PAIRS.items():
                    together(ctx, model_ids)  # warm up: load both sides (and a second worker)
                    alone: list[list[float]] = [[], []]
                    both: list[list[float]] = [[], []]
                    for _ in range(runs):
                        for i, model_id in enumerate(model_ids):
                            alone[i].append(decode_rate(ctx, model_id))
                        for i, rate in enumerate(together(ctx, model_ids)):
                            both[i].append(rate)
                    mode = "worker processes" if processes else "in-process"
                    for i, model_id in enumerate(model_ids):
                        solo, pair = median(alone[i]), median(both[i])
                        rows.append(f"| {mode} | {name} | side {'AB'[i]}: {model_id} | "
                                    f"{solo:.1f} tok/s | {pair:.1f} tok/s | {pct(pair, solo)} |")  # fmt: skip
                        print(rows[-1], flush=True)
            finally:
                ctx.close()
    loads.append(load_average())
    workers = Settings.from_env().engine_workers
    return "\n".join(
        [
            "### Two local answers at once",
            "",
            *machine_lines(info, loads),
            f"- {runs} runs per row, alternating alone and together; medians of the engine's own decode "
            f"rate. Greedy, {TOKENS} new tokens, prompt {QUESTION!r}. Workers per model: {workers} "
            "(each with its share of the cores); in-process: the engines' default threads.",
            "",
            "| Engines | Pair | Side | Alone | Together | Of alone |",
            "|---|---|---|---:|---:|---:|",
            *rows,
        ]
    )


# The page while engines are busy


def server_time(url: str) -> float:
    """Seconds for the server alone to answer the page's HTML and its config (no browser)."""
    import httpx

    start = time.monotonic()
    for path in ("", "config"):
        httpx.get(url + path, timeout=120).raise_for_status()
    return time.monotonic() - start


def page_times(url: str, browser: Any) -> tuple[float, float, float]:
    """Seconds to load the page until the question box shows, to open the Models tab, and for the
    server alone to answer the HTML and config."""
    server = server_time(url)
    page = browser.new_page()
    try:
        start = time.monotonic()
        page.goto(url)
        page.locator("#instruct-input textarea").wait_for(state="visible", timeout=120_000)
        loaded = time.monotonic() - start
        start = time.monotonic()
        page.get_by_role("tab", name="Models").click()
        page.locator("#models-loaded").wait_for(state="visible", timeout=120_000)
        return loaded, time.monotonic() - start, server
    finally:
        page.close()


def page(runs: int) -> str:
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("The page benchmark needs Chromium (apt-get install chromium).")
    info, loads = machine(), [load_average()]
    results: dict[str, list[tuple[float, float, float]]] = {
        "idle": [],
        "one 512-token answer": [],
        "16 visitors": [],
    }
    with app_server(trace=False) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        clients = [Client(server.url, verbose=False) for _ in range(16)]
        try:
            clients[0].predict(*chat_args("Hi", ONNX, 8), api_name="/chat")  # load the model
            page_times(server.url, browser)  # warm up
            for _ in range(runs):
                results["idle"].append(page_times(server.url, browser))
                for label, visitors in (("one 512-token answer", 1), ("16 visitors", 16)):
                    jobs = [
                        c.submit(*chat_args(QUESTION, ONNX, 512), api_name="/chat")
                        for c in clients[:visitors]
                    ]
                    time.sleep(1.0)  # the answers are streaming
                    results[label].append(page_times(server.url, browser))
                    busy = sum(not j.done() for j in jobs)
                    for job in jobs:
                        job.result(timeout=600)
                    print(label, results[label][-1], f"({busy} still answering when the page was ready)")
        finally:
            for client in clients:
                client.close()
            browser.close()
    loads.append(load_average())
    idle_load = median([r[0] for r in results["idle"]])
    idle_tab = median([r[1] for r in results["idle"]])
    idle_server = median([r[2] for r in results["idle"]])
    rows = []
    for label, times in results.items():
        load, tab = median([t[0] for t in times]), median([t[1] for t in times])
        server = median([t[2] for t in times])
        rows.append(f"| {label} | {load * 1000:.0f} ms | {load / idle_load:.2f}× | "
                    f"{tab * 1000:.0f} ms | {tab / idle_tab:.2f}× | "
                    f"{server * 1000:.0f} ms | {server / idle_server:.2f}× |")  # fmt: skip
    return "\n".join(
        [
            "### The page while engines are busy",
            "",
            *machine_lines(info, loads),
            f"- {runs} runs per row; medians. Chromium (Playwright) loads the page until the question box "
            "shows, then opens the Models tab until its table shows. Busy: answers of 512 tokens on the "
            "embedded model (ONNX, worker processes) asked through `/chat` by gradio_client 1 s before. "
            "Server alone: the page's HTML and `/config` fetched with httpx, no browser.",
            "",
            "| While | Page load | Of idle | Open a tab | Of idle | Server alone (HTML + config) | Of idle |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parts", nargs="+", choices=["pairs", "page"], default=["pairs", "page"])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    for part in args.parts:
        markdown = pairs(args.runs) if part == "pairs" else page(args.runs)
        print(markdown, flush=True)
        if args.write:
            write_section(f"concurrency:{part}", markdown)


if __name__ == "__main__":
    main()
