"""Public mode under load (issue 11, item 6): 16 visitors at once, with and without an abusive client.

The app runs as a deployment does (`python -m playground serve`, a subprocess) in public mode, with the
per-address limits off (PLAYGROUND_ADDRESS_JOBS=0, PLAYGROUND_ADDRESS_RATE_PER_MINUTE=0: every client
here is 127.0.0.1), so the per-session limits are what holds the abuser back. Two targets, one after the
other, on the same app:

- `embedded`: the embedded model, smollm2-135m-instruct@onnx (ONNX Runtime GenAI int4, worker processes);
- `openai`: an OpenAI-compatible server that streams at a steady rate (bench/token_server.py, 50 tokens
  a second by default, in its own process), so that its speed does not depend on the CPU the app shares.

For each target, three phases with the same visitors: no abuser (`none`), then one abusive client beside
them (`never-open`: joins long jobs and never opens its result stream; `open-no-read`: opens the stream
and never reads it). The visitors are gradio_client `Client`s, one session each, each asking a few
questions one after another through `/chat` (greedy, `--tokens` new tokens). The abuser speaks raw HTTP
under one session hash: `--abuse-jobs` joins of `/chat` at once (max_new_tokens `--abuse-tokens`), then
one more join a second after each refusal, until that many were admitted or the visitors are done.

On the `embedded` target, four more phases (issue 17), each an abuser that asks no answer but makes
the server work, keep memory or fill its disk through the page's own events (bench/abusers.py):
`show-prompt`, `upload-flood`, `stored-questions` and `fresh-imports`. Each comes from an address of
its own (`X-Forwarded-For`, which the app trusts here as on a Space), and the phase records the server's
resident memory (before, peak, after) and its history and upload folders, against the stated limits.

Per visitor request: when it joined the queue (client side: the join's POST sent and answered), when
Gradio started it (`process_starts`, as gradio_client saw it) and when its first text arrived, and any
error. Fairness: a pair of requests is inverted when one's join was answered before the other's was sent
yet its first token (or start) came more than `TOLERANCE_S` later. The abusive jobs: admitted and
refused (the HTTP answers), dropped (the gate's log lines), ran and tokens written (the app's stream
trace; for `openai` also the token server's own record). The page: Chromium (Playwright) loads it until
the question box shows and opens the Models tab (bench/concurrency.py), idle and 2 s into each phase.

    PYTHONPATH=. .venv/bin/python -m bench.load [--targets embedded openai] [--visitors 16]
        [--questions 3] [--tokens 64] [--abuse-jobs 24] [--abuse-tokens 2048]
        [--variants none never-open open-no-read show-prompt upload-flood stored-questions fresh-imports]
        [--write]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.abusers import KINDS, Calls, EventAbuser, Footprint, PeakMemory, Watch
from bench.common import (
    QUESTION,
    AppServer,
    TraceEvent,
    TraceReader,
    app_server,
    chat_args,
    chat_fn_index,
    free_port,
    load_average,
    machine,
    machine_lines,
    median,
    subprocess_server,
    write_section,
)

EMBEDDED = "smollm2-135m-instruct@onnx"
TARGETS = ("embedded", "openai")
VARIANTS = ("none", "never-open", "open-no-read", *KINDS)  # KINDS: bench/abusers.py, `embedded` only
ABUSE_QUESTION = "Write a very long story about a lighthouse keeper, with many chapters."
TOLERANCE_S = 0.1  # gradio_client's reader polls every 50 ms: closer first tokens are not an inversion
RETRY_S = 1.0  # the abuser's pause after a refusal
PAGE_DELAY_S = 2.0  # into a phase, when the page is loaded
PUBLIC_ENV = {
    "PLAYGROUND_PUBLIC": "1",
    "PLAYGROUND_ADDRESS_JOBS": "0",  # every client here shares 127.0.0.1: the per-session limits hold
    "PLAYGROUND_ADDRESS_RATE_PER_MINUTE": "0",
    "PLAYGROUND_TRUST_FORWARDED": "1",  # each of bench/abusers.py's abusers has an address of its own
    "GRADIO_TEMP_DIR": "{tmp}/uploads",  # where uploads land, measured
}
MEMORY_GOAL_MB = 64  # the server's resident memory may grow this much (as tests/test_launch.py holds)
UPLOAD_BUDGET_MB = 5 * 20  # 5 × PLAYGROUND_UPLOAD_MB a client address may upload in ten minutes
# PLAYGROUND_VISITOR_HISTORY_MB of imports a day per address counts the text; SQLite stores it in about
# 1.2× (measured: 9.9 MB of 7,000-character messages in an 11.4 MB file), its write-ahead log left out
HISTORY_GOAL_MB = 10 * 1.25
PROVIDER_SLOTS = 2  # PLAYGROUND_PROVIDER_CONCURRENCY's public default
GOAL_P95 = 2.0
GOAL_PAGE = 1.5


# One visitor request, one abusive join


@dataclass
class Request:
    """One visitor question; times on the monotonic clock (None: it never happened)."""

    visitor: int
    asked: float
    join_sent: float | None = None
    join_done: float | None = None
    started: float | None = None
    first: float | None = None
    done: float | None = None
    tokens: int = 0
    error: str | None = None

    @property
    def first_token_s(self) -> float | None:
        return None if self.first is None else self.first - self.asked


@dataclass
class AbuseReport:
    attempts: int = 0
    admitted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    streams_opened: int = 0
    session: str = ""


def _refusal_kind(detail: str) -> str:
    if "already have" in detail or "being written" in detail:
        return "jobs"
    if "in the last minute" in detail:
        return "rate"
    if "busy" in detail:
        return "queue"
    return "other"


class Visitor:
    """A gradio_client `Client` (one session) asking `questions` questions one after another."""

    def __init__(self, url: str, index: int) -> None:
        from gradio_client import Client

        self.index = index
        self.client = Client(url, verbose=False)
        self._current: Request | None = None
        send_data = self.client.send_data

        def timed_send(*args: Any, **kwargs: Any) -> Any:  # the join's POST, timed
            request = self._current
            if request is not None:
                request.join_sent = time.monotonic()
            try:
                return send_data(*args, **kwargs)
            finally:
                if request is not None:
                    request.join_done = time.monotonic()

        self.client.send_data = timed_send  # type: ignore[method-assign]

    def ask(self, args: list[Any]) -> Request:
        request = Request(self.index, time.monotonic())
        self._current = request
        offset = time.monotonic() - time.time()
        try:
            job = self.client.submit(*args, api_name="/chat")
            helper = job.communicator
            if helper is not None:  # the reader thread calls it with each output: the first text's time
                process = helper.prediction_processor

                def first_text(*output: Any) -> Any:
                    if request.first is None and output and output[0]:
                        request.first = time.monotonic()
                    return process(*output)

                helper.prediction_processor = first_text
            answer = str(job.result(timeout=900))
            request.done = time.monotonic()
            request.tokens = len(answer.split())
            if not answer.strip():
                request.error = "empty answer"
            if helper is not None:
                request.started = _started(helper, offset)
        except Exception as exc:  # a visitor's error is a figure, not the end of the benchmark
            request.error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            self._current = None
        return request

    def close(self) -> None:
        self.client.close()


def _started(helper: Any, offset: float) -> float | None:
    """When gradio_client saw `process_starts` (the updates the job left in its queue)."""
    from gradio_client.utils import Status, StatusUpdate

    queue = helper.updates
    while not queue.empty():
        update = queue.get_nowait()
        if isinstance(update, StatusUpdate) and update.code == Status.PROCESSING:
            stamp: datetime = update.time
            return stamp.timestamp() + offset
    return None


class Abuser(threading.Thread):
    """Joins long `/chat` jobs under one session hash by raw HTTP and never reads them.

    `open_stream`: after each admitted join, opens the session's result stream (a socket with a small
    receive buffer) and never reads from it."""

    def __init__(
        self, url: str, fn_index: int, model: str, jobs: int, tokens: int, open_stream: bool
    ) -> None:
        super().__init__(name="abuser", daemon=True)
        self.url, self.fn_index, self.model = url, fn_index, model
        self.jobs, self.tokens, self.open_stream = jobs, tokens, open_stream
        self.report = AbuseReport(session=uuid.uuid4().hex[:11])
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []
        self.http = httpx.Client(timeout=30)

    def _join(self) -> bool:
        body = {"data": chat_args(ABUSE_QUESTION, self.model, self.tokens), "fn_index": self.fn_index,
                "session_hash": self.report.session, "event_data": None, "trigger_id": None}  # fmt: skip
        self.report.attempts += 1
        try:
            response = self.http.post(self.url + "gradio_api/queue/join", json=body)
        except httpx.HTTPError as exc:
            kind = f"error {type(exc).__name__}"
            self.report.refused[kind] = self.report.refused.get(kind, 0) + 1
            return False
        if response.status_code == 200:
            self.report.admitted += 1
            if self.open_stream:
                self._open_stream()
            return True
        try:
            detail = str(response.json().get("detail"))
        except ValueError:
            detail = response.text
        kind = f"{response.status_code} {_refusal_kind(detail)}"
        self.report.refused[kind] = self.report.refused.get(kind, 0) + 1
        return False

    def _open_stream(self) -> None:
        parts = urlsplit(self.url)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
        path = f"{parts.path}gradio_api/queue/data?session_hash={self.report.session}"
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        self.sockets.append(sock)
        self.report.streams_opened += 1

    def run(self) -> None:
        for _ in range(self.jobs):  # all at once
            self._join()
        while self.report.admitted < self.jobs and not self.stop.wait(RETRY_S):
            self._join()

    def finish(self) -> None:
        """Stop joining and hang up the unread streams."""
        self.stop.set()
        self.join(timeout=60)
        for sock in self.sockets:
            sock.close()
        self.http.close()


# One phase: the visitors, maybe the abuser, and the page


@dataclass
class Phase:
    target: str
    variant: str
    requests: list[Request]
    abuse: AbuseReport | None
    abusive_streams: list[int]  # tokens each abusive answer produced (from the trace), by start
    abusive_seconds: float  # seconds abusive answers spent streaming, all of them together
    dropped_events: int  # times the gate dropped the abuser's session
    page: tuple[float, float, float] | None  # page load, open a tab, server alone (medians)
    wall_s: float
    upstream: dict[str, Any] | None = None  # the token server's record (openai)
    page_loads: list[float] = field(default_factory=list)  # every page load of the phase
    calls: Calls | None = None  # an abuser of bench/abusers.py: its calls
    footprint: tuple[Footprint, Footprint, float] | None = None  # before, after, peak memory (MB)


def run_phase(
    url: str,
    visitors: Sequence[Visitor],
    model: str,
    *,
    target: str,
    variant: str,
    questions: int,
    tokens: int,
    abuse_jobs: int,
    abuse_tokens: int,
    trace: TraceReader | None = None,
    log: Path | None = None,
    page: Callable[[], tuple[float, float, float]] | None = None,
    upstream: str | None = None,
    page_runs: int = 3,
    watch: Watch | None = None,
) -> Phase:
    """The visitors ask `questions` each at once (and the abuser joins beside them); wait until the app
    is idle again, then read what the server wrote."""
    if trace is not None:
        trace.new_events()  # skip what came before
    log_offset = log.stat().st_size if log is not None else 0
    if upstream is not None:
        httpx.post(upstream.removesuffix("/v1") + "/reset", timeout=10).raise_for_status()
    for visitor in visitors:
        visitor.client.reset_session()  # a fresh session each phase (the rate window is per session)
    abuser: Abuser | None = None
    event_abuser: EventAbuser | None = None
    before = watch.read() if watch is not None else None
    peak = PeakMemory(watch.pid) if watch is not None else None
    if peak is not None:
        peak.start()
    if variant in KINDS:
        event_abuser = EventAbuser(url, variant, Path(tempfile.mkdtemp(prefix="bench-abuser-")), model)
        event_abuser.start()
        time.sleep(0.5)  # it is at work first
    elif variant != "none":
        abuser = Abuser(url, chat_fn_index(url), model, abuse_jobs, abuse_tokens, variant == "open-no-read")
        abuser.start()
        time.sleep(0.5)  # its jobs are in the queue first
    requests: list[list[Request]] = [[] for _ in visitors]
    barrier = threading.Barrier(len(visitors) + 1)

    def visit(i: int) -> None:
        barrier.wait()
        for _ in range(questions):
            requests[i].append(visitors[i].ask(chat_args(QUESTION, model, tokens)))

    threads = [threading.Thread(target=visit, args=(i,), name=f"visitor-{i}") for i in range(len(visitors))]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.monotonic()
    loads: list[tuple[float, float, float]] = []
    if page is not None:
        time.sleep(PAGE_DELAY_S)
        while len(loads) < page_runs and (not loads or any(t.is_alive() for t in threads)):
            loads.append(page())  # while the visitors are still asking (the first one always)
    page_times = _median_times(loads)
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    if abuser is not None:
        abuser.finish()
    if event_abuser is not None:
        event_abuser.finish()  # show-prompt stops; the others end when they have made all their calls
        shutil.rmtree(event_abuser.workdir, ignore_errors=True)
    wait_idle(url)
    footprint = None
    if watch is not None and before is not None and peak is not None:
        footprint = (before, watch.read(), peak.finish())
    events = trace.new_events() if trace is not None else []
    visitor_count = sum(1 for r in (r for rs in requests for r in rs) if r.error is None)
    abusive, seconds = _abusive_streams(events, visitor_count, tokens)
    dropped = 0
    if log is not None and abuser is not None:
        with log.open("rb") as f:
            f.seek(log_offset)
            text = f.read().decode(errors="replace")
        dropped = text.count(f"dropping the jobs of session {abuser.report.session}")
    record = None
    if upstream is not None:
        record = httpx.get(upstream.removesuffix("/v1") + "/stats", timeout=10).json()
    return Phase(
        target=target,
        variant=variant,
        requests=[r for rs in requests for r in rs],
        abuse=abuser.report if abuser is not None else None,
        abusive_streams=abusive,
        abusive_seconds=seconds,
        dropped_events=dropped,
        page=page_times,
        page_loads=[t[0] for t in loads],
        wall_s=wall,
        upstream=record,
        calls=event_abuser.calls if event_abuser is not None else None,
        footprint=footprint,
    )


def _median_times(times: Sequence[tuple[float, float, float]]) -> tuple[float, float, float] | None:
    if not times:
        return None
    return (median([t[0] for t in times]), median([t[1] for t in times]), median([t[2] for t in times]))


def wait_idle(url: str, limit_s: float = 120) -> None:
    """Until /healthz says nothing waits or runs (the abuser's jobs dropped or finished)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        queue = httpx.get(url + "healthz", timeout=10).json()["queue"]
        if not queue["waiting"] and not queue["running"]:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the app was still busy {limit_s:.0f} s after the visitors finished")


def _abusive_streams(events: list[TraceEvent], visitor_streams: int, tokens: int) -> tuple[list[int], float]:
    """Split the trace's engine events into streams (a stream's items count from 1; ids can be reused);
    the ones that are not the visitors': longer than a visitor's answer, or beyond their number.
    Returns the items each abusive stream produced and the seconds they streamed, all together."""
    streams: list[list[TraceEvent]] = []
    current: dict[str, list[TraceEvent]] = {}
    for event in events:
        if event.kind != "engine":
            continue
        if event.count == 1 or event.stream not in current:
            current[event.stream] = []
            streams.append(current[event.stream])
        current[event.stream].append(event)
    long = [s for s in streams if len(s) > tokens + 2]  # a visitor's: its tokens and the metrics item
    short = [s for s in streams if len(s) <= tokens + 2]
    extra = max(0, len(short) - visitor_streams)
    # a visitor's answer is whole (greedy on a story runs to the limit): the leftovers furthest from
    # a whole answer are the abuser's, stopped early
    short.sort(key=lambda s: abs(len(s) - (tokens + 1)), reverse=True)
    abusive = sorted(long + short[:extra], key=lambda s: s[0].at)
    return [len(s) for s in abusive], sum(s[-1].at - s[0].at for s in abusive)


# Figures


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile by nearest rank (p95 of 48 values is the 46th)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def inversions(requests: Sequence[Request], key: Callable[[Request], float | None]) -> tuple[int, int]:
    """Pairs whose order of `key` contradicts their join order: (inverted, pairs with a clear order).

    A pair has a clear order when one's join was answered before the other's was sent; it is inverted
    when the later one's `key` comes more than TOLERANCE_S before the earlier one's."""
    timed = [
        r for r in requests if r.join_sent is not None and r.join_done is not None and key(r) is not None
    ]
    inverted = pairs = 0
    for a in timed:
        for b in timed:
            if a is b or a.join_done >= b.join_sent:  # type: ignore[operator]
                continue
            pairs += 1
            if key(b) < key(a) - TOLERANCE_S:  # type: ignore[operator]
                inverted += 1
    return inverted, pairs


@dataclass(frozen=True)
class Summary:
    requests: int
    errors: int
    p50: float
    p95: float
    worst: float
    first_inverted: tuple[int, int]
    start_inverted: tuple[int, int]


def summarize(phase: Phase) -> Summary:
    ok = [r for r in phase.requests if r.error is None and r.first_token_s is not None]
    ttft = [r.first_token_s for r in ok if r.first_token_s is not None]
    return Summary(
        requests=len(phase.requests),
        errors=sum(r.error is not None for r in phase.requests),
        p50=percentile(ttft, 50),
        p95=percentile(ttft, 95),
        worst=max(ttft) if ttft else float("nan"),
        first_inverted=inversions(ok, lambda r: r.first),
        start_inverted=inversions(ok, lambda r: r.started),
    )


# The whole benchmark


@contextmanager
def token_server(token_ms: float) -> Iterator[AppServer]:
    """bench/token_server.py in its own process; yields its /v1 base URL."""
    port = free_port()
    command = [sys.executable, "-m", "bench.token_server", "--port", str(port), "--token-ms", str(token_ms)]
    url = f"http://127.0.0.1:{port}/v1"
    with subprocess_server(command, url + "/models", {"PYTHONPATH": "."}, "tokens") as server:
        yield AppServer(url, server.log, server.process)


def openai_model(url: str) -> str:
    """The id the app gives the token server's model (from the /chat API's model choices)."""
    from bench.openai_path import discovered_model

    return discovered_model(url)


@dataclass
class Options:
    targets: tuple[str, ...] = TARGETS
    variants: tuple[str, ...] = VARIANTS
    visitors: int = 16
    questions: int = 3
    tokens: int = 64
    abuse_jobs: int = 24
    abuse_tokens: int = 2048
    token_ms: float = 20.0
    page: bool = True
    idle_pages: int = 3
    page_runs: int = 3


def measure(
    options: Options,
) -> tuple[list[Phase], list[tuple[float, float, float]], dict[str, str], list[str]]:
    info, loads = machine(), [load_average()]
    phases: list[Phase] = []
    idle: list[tuple[float, float, float]] = []
    with (
        token_server(options.token_ms) as upstream,
        app_server({**PUBLIC_ENV, "OPENAI_BASE_URL": upstream.url}) as app,
    ):
        models = {
            "embedded": EMBEDDED,
            "openai": openai_model(upstream.url) if "openai" in options.targets else "",
        }
        visitors = [Visitor(app.url, i) for i in range(options.visitors)]
        trace = TraceReader(app.log)
        with _browser(options.page) as browser:
            page = (lambda: _page_times(app.url, browser)) if browser is not None else None
            try:
                for target in options.targets:  # warm up: every engine worker, every client, the page
                    warm_up(visitors, models[target])
                if page is not None:
                    page()
                    idle = [page() for _ in range(options.idle_pages)]
                    print("page idle:", idle, flush=True)
                watch = Watch(app.process.pid, app.log.parent / "data", app.log.parent / "uploads")
                for target in options.targets:
                    for variant in options.variants:
                        if variant in KINDS and target != "embedded":
                            continue  # they ask no answer: one target shows what they cost the others
                        phase = run_phase(
                            app.url,
                            visitors,
                            models[target],
                            target=target,
                            variant=variant,
                            questions=options.questions,
                            tokens=options.tokens,
                            abuse_jobs=options.abuse_jobs,
                            abuse_tokens=options.abuse_tokens,
                            trace=trace,
                            log=app.log,
                            page=page,
                            upstream=upstream.url if target == "openai" else None,
                            page_runs=options.page_runs,
                            watch=watch,
                        )
                        phases.append(phase)
                        loads.append(load_average())
                        print(_phase_line(phase), flush=True)
            finally:
                for visitor in visitors:
                    visitor.close()
    loads.append(load_average())
    return phases, idle, info, loads


def warm_up(visitors: Sequence[Visitor], model: str) -> None:
    """Every visitor asks a short question at once (the provider's second worker starts on the first
    answers at once); failures are printed, not counted."""
    done: list[Request] = []
    threads = [
        threading.Thread(target=lambda v=v: done.append(v.ask(chat_args("Hi", model, 8)))) for v in visitors
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for request in done:
        if request.error:
            print(f"warm-up: visitor {request.visitor}: {request.error}", flush=True)


@contextmanager
def _browser(wanted: bool) -> Iterator[Any]:
    if not wanted:
        yield None
        return
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("The page measurement needs Chromium (apt-get install chromium), or --no-page.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def _page_times(url: str, browser: Any) -> tuple[float, float, float]:
    from bench.concurrency import page_times

    return page_times(url, browser)


def _phase_line(phase: Phase) -> str:
    s = summarize(phase)
    abuse = phase.abuse
    line = (f"{phase.target} / {phase.variant}: {s.requests} requests, {s.errors} errors, first token p50 "
            f"{s.p50:.2f} s p95 {s.p95:.2f} s max {s.worst:.2f} s; inversions first {s.first_inverted} "
            f"start {s.start_inverted}; wall {phase.wall_s:.1f} s")  # fmt: skip
    if phase.page is not None:
        line += f"; page {phase.page[0]:.2f} s tab {phase.page[1]:.2f} s"
    if abuse is not None:
        line += (f"; abuser attempts {abuse.attempts} admitted {abuse.admitted} refused {abuse.refused} "
                 f"dropped {phase.dropped_events}x ran {len(phase.abusive_streams)} {phase.abusive_streams} "
                 f"({phase.abusive_seconds:.1f} s)")  # fmt: skip
    errors = sorted({r.error for r in phase.requests if r.error})
    if errors:
        line += f"; errors: {errors[:3]}"
    return line


def over_limit_s(answers: Sequence[dict[str, Any]], limit: int) -> float:
    """Seconds during which more than `limit` answers streamed at once (the token server's record)."""
    edges = sorted([(a["began"], 1) for a in answers] + [(a["ended"], -1) for a in answers if a["ended"]])
    over, active, since = 0.0, 0, 0.0
    for at, step in edges:
        if active > limit:
            over += at - since
        active += step
        since = at
    return over


def upstream_line(phase: Phase, visitor_tokens: int) -> str:
    """What the token server saw of the abusive answers (those asking for more than a visitor's, which
    the app may have lowered to PLAYGROUND_MAX_NEW_TOKENS): started, finished, hung up, tokens."""
    if not phase.upstream:
        return "-"
    answers = [a for a in phase.upstream["answers"] if a["asked"] > visitor_tokens]
    finished = sum(a["written"] >= a["asked"] for a in answers)
    hung = sum(a["hung_up"] for a in answers)
    written = [a["written"] for a in answers]
    over = over_limit_s(phase.upstream["answers"], PROVIDER_SLOTS)
    return (f"{len(answers)} abusive answers started, {finished} finished, {hung} hung up by the app, tokens "
            f"written {written}; most answers at once (visitors' too) {phase.upstream['most_active']}, more "
            f"than {PROVIDER_SLOTS} for {over * 1000:.0f} ms in all (the server notices a hang-up at its "
            "next write or two)")  # fmt: skip


# The report


def report(
    phases: Sequence[Phase],
    idle: Sequence[tuple[float, float, float]],
    options: Options,
    info: dict[str, str],
    loads: Sequence[str],
    command: str,
) -> str:
    idle_page = median([p[0] for p in idle]) if idle else float("nan")
    idle_tab = median([p[1] for p in idle]) if idle else float("nan")
    base = {p.target: summarize(p) for p in phases if p.variant == "none"}
    rows, abuse_rows, event_rows, goals = [], [], [], []
    for phase in phases:
        s = summarize(phase)
        ref = base.get(phase.target)
        ratio = s.p95 / ref.p95 if ref is not None and ref.p95 > 0 and phase.variant != "none" else None
        rows.append(_row(phase, s, ratio, idle_page, idle_tab))
        if phase.abuse is not None:
            a = phase.abuse
            refused = ", ".join(f"{n} {k}" for k, n in sorted(a.refused.items())) or "0"
            ran = len(phase.abusive_streams)
            abuse_rows.append(
                f"| {phase.target} | {phase.variant} | {a.attempts} | {a.admitted} | {refused} | "
                f"{phase.dropped_events} | {ran} | {max(0, a.admitted - ran)} | "
                f"{', '.join(str(max(0, n - 1)) for n in phase.abusive_streams) or '—'} | "
                f"{phase.abusive_seconds:.1f} s |"
            )
        goals.extend(_goals(phase, s, ratio, idle_page, [p[0] for p in idle]))
        if phase.calls is not None:
            event_rows.append(_event_row(phase))
        goals.extend(_resource_goals(phase))
    upstream = [f"- `{p.target}` / `{p.variant}`: the token server saw {upstream_line(p, options.tokens)}."
                for p in phases if p.upstream and p.abuse is not None]  # fmt: skip
    met = [g for g in goals if g.startswith("met")]
    missed = [g for g in goals if g.startswith("MISSED")]
    return "\n".join(
        [
            "### Public mode under load",
            "",
            *machine_lines(info, loads),
            f"- Command: `{command}`",
            "- The app: `python -m playground serve` in public mode (`PLAYGROUND_PUBLIC=1`), its public "
            "defaults (2 questions queued or running per session, 12 a minute per session, 64 waiting in "
            "all, 2 answers at once per provider, `/chat` run 4 at a time by Gradio) but the per-address "
            "limits off (`PLAYGROUND_ADDRESS_JOBS=0`, `PLAYGROUND_ADDRESS_RATE_PER_MINUTE=0`): every "
            "client here is 127.0.0.1. Stream trace on (it names the answers the abuser got to run).",
            f"- Visitors: {options.visitors} gradio_client `Client`s at once, one session each, each asking "
            f"{options.questions} questions one after another through `/chat` (greedy, {options.tokens} "
            f"new tokens, {QUESTION!r}). First token: from the call to the first text gradio_client "
            "hands over (its reader polls every 50 ms); p95 by nearest rank.",
            f"- Abuser: raw HTTP under one session hash, {options.abuse_jobs} joins of `/chat` at once "
            f"(max_new_tokens {options.abuse_tokens}), then one join a second after each refusal until "
            f"{options.abuse_jobs} were admitted or the visitors were done; `never-open` never opens its "
            "result stream, `open-no-read` opens it after each admitted join (4 KiB receive buffer) and "
            "never reads. It starts 0.5 s before the visitors.",
            "- Targets: `embedded` = smollm2-135m-instruct@onnx (ONNX Runtime GenAI int4, worker "
            f"processes); `openai` = bench/token_server.py, an OpenAI-compatible server streaming one "
            f"token every {options.token_ms:g} ms ({1000 / options.token_ms:.0f} tokens/s per answer, "
            "any number at once) in its own process, so its speed does not depend on the shared CPU.",
            "- Fairness: a pair of requests has a clear order when one's join was answered before the "
            f"other's was sent; inverted when the later one's first token (or Gradio's `process_starts`) "
            f"came more than {TOLERANCE_S:g} s before the earlier one's.",
            f"- Page: Chromium loads it until the question box shows, then opens the Models tab "
            f"(bench/concurrency.py); idle (median of {len(idle)}: {idle_page:.2f} s, tab {idle_tab:.2f} s), "
            f"and from {PAGE_DELAY_S:g} s into each phase, up to {options.page_runs} times while the visitors "
            "were asking (medians).",
            "",
            "| Target | Abuser | Requests | Errors | First token p50 | p95 | p95 of no abuser | Worst | "
            "Inverted (first token) | Inverted (start) | Page load (of idle) | Open a tab (of idle) | Wall |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "The abuser's jobs: joins attempted, admitted (HTTP 200) and refused (status and rule); times "
            "the gate dropped its session (its log); answers that ran (the app's stream trace), admitted "
            "jobs dropped before they ran, tokens each answer produced, and the seconds they streamed "
            "all together (provider slots they held).",
            "",
            "| Target | Abuser | Attempts | Admitted | Refused | Dropped (times) | Ran | Dropped before running | "
            "Tokens per answer | Streaming |",
            "|---|---|---:|---:|---|---:|---:|---:|---|---:|",
            *abuse_rows,
            *(["", *upstream] if upstream else []),
            *(_event_table(event_rows) if event_rows else []),
            "",
            "Goals (issues 11 and 17): "
            + (f"{len(met)} met, {len(missed)} missed." if goals else "none measured."),
            "",
            *[f"- {g}" for g in missed + met],
        ]
    )


def _times(value: tuple[float, float, float] | None, index: int, idle: float) -> str:
    if value is None:
        return "—"
    return f"{value[index]:.2f} s ({value[index] / idle:.2f}×)"


def _row(phase: Phase, s: Summary, ratio: float | None, idle_page: float, idle_tab: float) -> str:
    cells = [
        phase.target,
        phase.variant,
        str(s.requests),
        str(s.errors),
        f"{s.p50:.2f} s",
        f"{s.p95:.2f} s",
        f"{ratio:.2f}×" if ratio is not None else "—",
        f"{s.worst:.2f} s",
        f"{s.first_inverted[0]} of {s.first_inverted[1]}",
        f"{s.start_inverted[0]} of {s.start_inverted[1]}",
        _times(phase.page, 0, idle_page),
        _times(phase.page, 1, idle_tab),
        f"{phase.wall_s:.0f} s",
    ]
    return "| " + " | ".join(cells) + " |"


def _event_table(rows: Sequence[str]) -> list[str]:
    return [
        "",
        "The abusers that ask no answer (bench/abusers.py, each from an address of its own through "
        "`X-Forwarded-For`): `show-prompt` = 4 sessions pressing Show prompt with 2 MB, then 0.9 MB in the "
        "box, until the visitors are done; `upload-flood` = 60 uploads of 19.5 MB, 4 at a time; "
        "`stored-questions` = 100 fresh sessions pressing Send with 2 MB, 0.9 MB and 8,000 characters, "
        "asking no answer; `fresh-imports` = 20 fresh page loads each importing a 4.8 MB export. Calls: "
        "attempted, ran (the handler's result came back) and refused (status and rule); the server's "
        "resident memory before, at its peak and after; its data folder (the history, without SQLite's "
        "write-ahead log, which each checkpoint empties) and Gradio's upload folder before and after.",
        "",
        "| Abuser | Calls | Ran | Refused | Slowest that ran | Server memory (peak) | History folder | "
        "Upload folder |",
        "|---|---:|---:|---|---:|---|---|---|",
        *rows,
    ]


def _event_row(phase: Phase) -> str:
    calls = phase.calls
    assert calls is not None
    refused = ", ".join(f"{n} {k}" for k, n in sorted(calls.refused.items())) or "0"
    slowest = f"{max(calls.seconds):.2f} s" if calls.seconds else "—"
    cells = [phase.variant, str(calls.attempts), str(calls.admitted), refused, slowest, "—", "—", "—"]
    if phase.footprint is not None:
        before, after, peak = phase.footprint
        cells[5] = f"{before.rss_mb:.0f} → {after.rss_mb:.0f} MB ({peak:.0f})"
        cells[6] = f"{before.data_mb:.1f} → {after.data_mb:.1f} MB"
        cells[7] = f"{before.uploads_mb:.1f} → {after.uploads_mb:.1f} MB"
    return "| " + " | ".join(cells) + " |"


def _resource_goals(phase: Phase) -> list[str]:
    """Memory and disk within the stated limits, for bench/abusers.py's abusers."""
    if phase.calls is None or phase.footprint is None:
        return []
    before, after, peak = phase.footprint
    where = f"`{phase.target}` / `{phase.variant}`"
    checks = [
        ("server memory growth at its peak", peak - before.rss_mb, MEMORY_GOAL_MB),
        ("server memory growth after the phase", after.rss_mb - before.rss_mb, MEMORY_GOAL_MB),
    ]
    if phase.variant == "upload-flood":
        checks.append(("upload folder growth", after.uploads_mb - before.uploads_mb, UPLOAD_BUDGET_MB))
    if phase.variant in ("fresh-imports", "stored-questions"):
        checks.append(("history folder growth", after.data_mb - before.data_mb, HISTORY_GOAL_MB))
    out = []
    for what, grown, goal in checks:
        verdict = "met" if grown <= goal else "MISSED"
        out.append(f"{verdict} {where}: {what} {grown:.1f} MB (goal ≤ {goal:g} MB).")
    return out


PAGE_CAUSE = {
    "embedded": "the engine decodes on the same 2 cores as the app, the 16 clients and Chromium.",
    "openai": "no local engine here; the app's work for the visitors' streams and the 16 clients share "
    "the 2 cores with Chromium.",
}


def _seconds(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values) + " s"


def _goals(
    phase: Phase, s: Summary, ratio: float | None, idle_page: float, idle_loads: Sequence[float]
) -> list[str]:
    where = f"`{phase.target}` / `{phase.variant}`"
    out = []
    if s.errors:
        errors = sorted({r.error for r in phase.requests if r.error})
        out.append(f"MISSED {where}: {s.errors} of {s.requests} visitor requests failed ({errors[0]}).")
    else:
        out.append(f"met {where}: no errors among {s.requests} visitor requests.")
    if ratio is not None:
        if ratio <= GOAL_P95:
            out.append(
                f"met {where}: first-token p95 {ratio:.2f}× that without the abuser (goal ≤ {GOAL_P95:g}×)."
            )
        else:
            held = phase.abusive_seconds
            out.append(
                f"MISSED {where}: first-token p95 {ratio:.2f}× that without the abuser (goal ≤ {GOAL_P95:g}×, "
                f"{ratio / GOAL_P95:.2f}× over): the abuser's answers ({len(phase.abusive_streams)} ran) "
                f"streamed {held:.1f} s in all over a {phase.wall_s:.0f} s phase, "
                f"{100 * held / (PROVIDER_SLOTS * phase.wall_s):.0f}% of the provider's "
                f"{PROVIDER_SLOTS} answers at once (one at a time per session: its first answer takes a slot "
                "before the visitors arrive, and each later one when no lighter visitor waits)."
            )
    inverted, pairs = s.first_inverted
    if inverted:
        out.append(
            f"MISSED {where}: {inverted} of {pairs} ordered pairs got their first token out of join order."
        )
    else:
        out.append(f"met {where}: first tokens in join order ({pairs} ordered pairs, none inverted).")
    if phase.page is not None and idle_page == idle_page:
        of_idle = phase.page[0] / idle_page
        if of_idle <= GOAL_PAGE:
            out.append(f"met {where}: page loaded in {of_idle:.2f}× idle (goal ≤ {GOAL_PAGE:g}×).")
        else:
            out.append(
                f"MISSED {where}: page loaded in {phase.page[0]:.2f} s ({_seconds(phase.page_loads)}), "
                f"{of_idle:.2f}× idle (goal ≤ {GOAL_PAGE:g}×, {of_idle / GOAL_PAGE:.2f}× over; idle: "
                f"{_seconds(idle_loads)}): {PAGE_CAUSE[phase.target]}"
            )
    return out


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--visitors", type=int, default=16)
    parser.add_argument("--questions", type=int, default=3, help="questions per visitor, one after another")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per visitor question")
    parser.add_argument("--abuse-jobs", type=int, default=24)
    parser.add_argument("--abuse-tokens", type=int, default=2048)
    parser.add_argument("--token-ms", type=float, default=20.0, help="the openai target's time per token")
    parser.add_argument("--no-page", action="store_true", help="skip the Chromium page loads")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--json", type=Path, help="also save every measurement here (for a second look)")
    args = parser.parse_args(argv)
    if "none" not in args.variants:
        args.variants.insert(0, "none")  # the reference for the p95 goal
    options = Options(
        targets=tuple(args.targets),
        variants=tuple(v for v in VARIANTS if v in args.variants),
        visitors=args.visitors,
        questions=args.questions,
        tokens=args.tokens,
        abuse_jobs=args.abuse_jobs,
        abuse_tokens=args.abuse_tokens,
        token_ms=args.token_ms,
        page=not args.no_page,
    )
    command = "PYTHONPATH=. .venv/bin/python -m bench.load " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    phases, idle, info, loads = measure(options)
    markdown = report(phases, idle, options, info, loads, command.strip())
    print(markdown, flush=True)
    if args.write:
        write_section("load", markdown)
    if args.json is not None:
        raw = {"idle": idle, "phases": [asdict(p) for p in phases], "machine": info, "loads": loads}
        args.json.write_text(json.dumps(raw, indent=1))
    return markdown


if __name__ == "__main__":
    main()
