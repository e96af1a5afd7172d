"""What both benchmarks share: the machine, timelines and their figures, the app in a subprocess, its
`/chat` API read by two clients, the server's stream trace, and the results file.

Every time is `time.monotonic()`: on Linux that is CLOCK_MONOTONIC, one clock for every process on the
machine, so the app's trace lines up with the client's own times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"
MODELS_DIR = ROOT / ".test-cache" / "models"
QUESTION = "Write a long story about a lighthouse keeper."
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


# The machine


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine() -> dict[str, str]:
    """Cores, CPU model, memory, Python and the key packages' versions, and the date."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        kib = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    return {
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{kib / 2**20:.1f} GiB",
        "python": platform.python_version(),
        "packages": ", ".join(f"{name} {_version(name)}" for name in PACKAGES),
    }


PACKAGES = ("onnxruntime-genai", "onnxruntime", "torch", "transformers", "gradio", "gradio_client", "openai")


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def machine_lines(info: dict[str, str], loads: Sequence[str]) -> list[str]:
    return [
        f"- Date: {info['date']}",
        f"- Machine: {info['cores']} cores ({info['cpu']}), {info['memory']} memory; Python {info['python']}",
        f"- Packages: {info['packages']}",
        f"- Load average (1 / 5 / 15 min) during the runs: {'; '.join(loads)}",
    ]


# Timelines and their figures


@dataclass
class Timeline:
    """One streamed answer as a client saw it: when it asked, then (arrival, cumulative text) per update."""

    start: float
    updates: list[tuple[float, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.updates[-1][1] if self.updates else ""

    def first(self) -> tuple[float, str]:
        return next((t, text) for t, text in self.updates if text)

    def last_change(self) -> float:
        """When the text last grew (a trailing update that adds nothing does not count)."""
        final = self.text
        return next(t for t, text in self.updates if text == final)


@dataclass(frozen=True)
class Figures:
    ttft_s: float
    rate: float
    tokens: int


def figures(timeline: Timeline, tokens: int, count: Callable[[str], int]) -> Figures:
    """Time to first token, and the decode rate: tokens after the first update over the time after it."""
    first_at, first_text = timeline.first()
    after = tokens - count(first_text)
    span = timeline.last_change() - first_at
    return Figures(first_at - timeline.start, after / span if span > 0 and after > 0 else 0.0, tokens)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# The app in a subprocess


@dataclass(frozen=True)
class AppServer:
    url: str
    log: Path
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def subprocess_server(command: list[str], url: str, env: dict[str, str], name: str) -> Iterator[AppServer]:
    """Start a server, wait until `url` answers, stop it at the end; its output goes to a log file.
    `{tmp}` in the command or the environment becomes a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        log = Path(tmp) / "server.log"
        command = [part.replace("{tmp}", tmp) for part in command]
        env = {key: value.replace("{tmp}", tmp) for key, value in env.items()}
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, **OFFLINE, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            wait_until_up(url, process, log)
            yield AppServer(url, log, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def app_server(
    env: dict[str, str] | None = None, *, trace: bool = True, models_dir: Path = MODELS_DIR
) -> Iterator[AppServer]:
    """`python -m playground serve` on a free port, with the embedded models and its own data folder."""
    port = free_port()
    env = {
        "PYTHONPATH": str(ROOT),
        "PLAYGROUND_MODELS_DIR": str(models_dir),
        "PLAYGROUND_DATA_DIR": "{tmp}/data",
        "PLAYGROUND_TRACE_STREAM": "1" if trace else "",
        **(env or {}),
    }
    command = [sys.executable, "-m", "playground", "serve", "--port", str(port)]
    with subprocess_server(command, f"http://127.0.0.1:{port}/", env, "app") as server:
        yield server


# The app's /chat API, read by two clients


def chat_args(question: str, model_id: str, tokens: int) -> list[Any]:
    """The /chat inputs: question, model, system prompt, then temperature 0 (greedy), top-p, top-k,
    max new tokens, repetition penalty, seed (-1: none), stop sequences, JSON schema and regex (none)."""
    return [question, model_id, "", 0.0, 1.0, 0, tokens, 1.0, -1, "", "", ""]


def chat_fn_index(url: str) -> int:
    config = httpx.get(url + "config", timeout=10).json()
    return int(next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat"))


class SseClient:
    """The Gradio queue protocol by hand, as the page itself speaks it: join, then read the event
    stream, timing each update as its bytes arrive. One session for all its requests, like a browser
    tab (a new session costs the server a per-session state of every component, about 10 ms here)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=None)
        self.fn_index = chat_fn_index(url)
        self.session = uuid.uuid4().hex

    def chat(self, args: list[Any]) -> Timeline:
        from gradio_client.utils import apply_diff

        api = self.url + "gradio_api"
        timeline = Timeline(time.monotonic())
        body = {"data": args, "fn_index": self.fn_index, "session_hash": self.session, "event_data": None,
                "trigger_id": None}  # fmt: skip
        self.http.post(api + "/queue/join", json=body).raise_for_status()
        text: Any = None
        with self.http.stream("GET", api + "/queue/data", params={"session_hash": self.session}) as response:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                arrived = time.monotonic()
                message = json.loads(line[5:])
                kind = message.get("msg")
                if kind == "process_generating":
                    value = message["output"]["data"][0]
                    text = value if text is None else apply_diff(text, value)
                    timeline.updates.append((arrived, str(text)))
                elif kind == "process_completed":
                    if not message.get("success", True):
                        raise RuntimeError(f"/chat failed: {message.get('output')}")
                    final = str(message["output"]["data"][0])
                    if final != timeline.text:
                        timeline.updates.append((arrived, final))
                    return timeline
        raise RuntimeError("/chat: the event stream ended before the answer completed")

    def close(self) -> None:
        self.http.close()


def gradio_client_chat(client: Any, args: list[Any]) -> Timeline:
    """gradio_client's own way: submit, then iterate the job. Its reader thread polls every 50 ms, so
    arrival times are late by 0-50 ms; the figures show what a Python client of the app sees."""
    timeline = Timeline(time.monotonic())
    job = client.submit(*args, api_name="/chat")
    for output in job:
        timeline.updates.append((time.monotonic(), str(output)))
    final = str(job.result())
    if final != timeline.text:
        timeline.updates.append((time.monotonic(), final))
    return timeline


# The server's stream trace (PLAYGROUND_TRACE_STREAM=1)

_TRACE = re.compile(r"playground\.trace: (engine|batch|resumed) ([0-9a-f]+) ([0-9.]+) (\d+)")


@dataclass(frozen=True)
class TraceEvent:
    kind: str
    stream: str
    at: float
    count: int


class TraceReader:
    """Reads the trace lines the server wrote since the last call (runs are sequential)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = 0

    def new_events(self) -> list[TraceEvent]:
        with self.log.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data.rfind(b"\n") + 1
        self.offset += complete
        events = []
        for line in data[:complete].decode(errors="replace").splitlines():
            match = _TRACE.search(line)
            if match:
                kind, stream, at, count = match.groups()
                events.append(TraceEvent(kind, stream, float(at), int(count)))
        return events


@dataclass(frozen=True)
class ServerSide:
    """Where an app run's time went, from the server's trace and the client's arrival times."""

    ttft_engine_s: float  # request sent -> the engine's first token (queue, prepare, prefill)
    ttft_sent_s: float  # request sent -> Gradio done with the first update
    rate_engine: float  # the engine's own decode rate inside the app
    rate_sent: float  # updates leaving the handler
    hop_ms: float  # engine token -> the event loop takes its batch (median over batches)
    gradio_ms: float  # batch -> the handler is asked for the next (Gradio's work on the update)
    deliver_ms: float  # Gradio done -> the client has the update (SSE write, socket, client parse)
    lag_ms: float  # engine token -> client has it (median over tokens)
    batches: int
    updates: int


def server_side(events: list[TraceEvent], timeline: Timeline, tokens: int) -> ServerSide | None:
    """Line the trace of one run up with its client timeline; None when the run left no trace."""
    engine = [e for e in events if e.kind == "engine"]
    batches = [e for e in events if e.kind == "batch"]
    resumed = [e for e in events if e.kind == "resumed"]
    if len(engine) < 3 or not batches or len(resumed) != len(batches):
        return None
    text_items = engine[:-1]  # the last item is the metrics chunk
    engine_at = {e.count: e.at for e in engine}
    ends = _cumulative([b.count for b in batches])
    received = [t for t, _ in timeline.updates]
    hops = [b.at - engine_at[end] for b, end in zip(batches, ends, strict=True)]
    gradio = [r.at - b.at for b, r in zip(batches, resumed, strict=True)]
    matched = len(received) >= len(batches)
    deliver = [c - r.at for c, r in zip(received, resumed, strict=False)] if matched else []
    lags = []
    if matched:
        start = 0
        for end, arrived in zip(ends, received, strict=False):
            lags += [arrived - engine_at[i] for i in range(start + 1, min(end, len(text_items)) + 1)]
            start = end
    first_batch = batches[0].count
    span_engine = text_items[-1].at - text_items[0].at
    span_sent = resumed[-1].at - resumed[0].at
    return ServerSide(
        ttft_engine_s=text_items[0].at - timeline.start,
        ttft_sent_s=resumed[0].at - timeline.start,
        rate_engine=(tokens - 1) / span_engine if span_engine > 0 else 0.0,
        rate_sent=(tokens - first_batch) / span_sent if span_sent > 0 else 0.0,
        hop_ms=median(hops) * 1000,
        gradio_ms=median(gradio) * 1000,
        deliver_ms=median(deliver) * 1000,
        lag_ms=median(lags) * 1000,
        batches=len(batches),
        updates=len(received),
    )


def _cumulative(counts: list[int]) -> list[int]:
    total, out = 0, []
    for count in counts:
        total += count
        out.append(total)
    return out


# The results file


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace what lies between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in the results file
    (appending the pair when it is missing); the rest of the file is written by hand."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def pct(value: float, reference: float) -> str:
    return f"{100 * value / reference:.0f}%" if reference else "-"


# Two settings compared on the local engines, through the answer pipeline (token view, structured output)

T = TypeVar("T")


def local_bench_args(doc: str | None, argv: Sequence[str] | None, runs: int = 5) -> argparse.Namespace:
    """`--runs N` (each setting, alternating) and `--write` (the results into docs/benchmarks.md)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    return parser.parse_args(argv)


@contextmanager
def local_context() -> Iterator[Any]:
    """The app's context on the tests' converted models and a data folder of its own (nothing kept)."""
    from playground.context import AppContext
    from playground.settings import Settings

    env = {**os.environ, "PLAYGROUND_MODELS_DIR": str(MODELS_DIR), "PLAYGROUND_DATA_DIR": tempfile.mkdtemp()}
    ctx = AppContext.create(Settings.from_env(env))
    try:
        yield ctx
    finally:
        ctx.close()


def alternated(runs: int, first: Callable[[], T], second: Callable[[], T]) -> tuple[list[T], list[T]]:
    """`second` once to warm up (the worker, the model, a grammar's tokenizer), then `runs` of each,
    alternating, so a drift of the machine weighs on both alike."""
    second()
    a: list[T] = []
    b: list[T] = []
    for _ in range(runs):
        a.append(first())
        b.append(second())
    return a, b


def load_now() -> str:
    """The load average, marked when the machine was not idle (the 1-minute figure over 1.5 on 2 cores)."""
    load = load_average()
    return load + " (under load)" if float(load.split(" / ")[0]) > 1.5 else load


def publish(name: str, markdown: str, write: bool) -> None:
    """Print the results; with --write, also into their section of docs/benchmarks.md."""
    print(markdown)
    if write:
        write_section(name, markdown)
