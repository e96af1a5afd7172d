"""bench/load.py's core with tiny numbers, so the load test cannot rot: the real app in public mode
(in-process), bench/token_server.py as its OpenAI-compatible provider, two gradio_client visitors and
an abusive raw-HTTP client that never opens its stream; and its figures on known inputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.common import TraceEvent
from bench.load import (
    PUBLIC_ENV,
    Options,
    Request,
    Visitor,
    _abusive_streams,
    inversions,
    percentile,
    report,
    run_phase,
)
from bench.token_server import TokenServer
from playground.context import AppContext
from tests.support import make_settings, serving

ABUSE_TOKENS = 60  # 1.2 s at 20 ms a token: the abuser's answers end by themselves, before the grace


@pytest.fixture
def upstream() -> Iterator[TokenServer]:
    server = TokenServer(token_s=0.02)
    yield server
    server.close()


def test_token_server_streams_the_tokens_asked_at_its_rate(upstream: TokenServer) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=upstream.url, api_key="none", max_retries=0)
    stream = client.chat.completions.create(
        model="steady", messages=[{"role": "user", "content": "hi"}], max_tokens=10, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "word " * 10
    (answer,) = httpx.get(upstream.url.removesuffix("/v1") + "/stats", timeout=5).json()["answers"]
    assert (answer["asked"], answer["written"], answer["hung_up"]) == (10, 10, False)
    assert answer["ended"] - answer["began"] >= 10 * 0.02


def test_a_phase_with_an_abuser_on_the_public_app(upstream: TokenServer, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, OPENAI_BASE_URL=upstream.url, **PUBLIC_ENV)
    ctx = AppContext.create(settings)
    try:
        (model,) = [s.id for s in ctx.registry.specs() if s.provider == "openai-compatible"]
        with serving(ctx) as url:
            visitors = [Visitor(url, i) for i in range(2)]
            try:
                phase = run_phase(
                    url, visitors, model, target="openai", variant="never-open", questions=1, tokens=8,
                    abuse_jobs=3, abuse_tokens=ABUSE_TOKENS, upstream=upstream.url,
                )  # fmt: skip
            finally:
                for visitor in visitors:
                    visitor.close()
    finally:
        ctx.close()
    assert [r.error for r in phase.requests] == [None, None]
    assert all(r.tokens == 8 and r.first_token_s is not None for r in phase.requests)
    assert all(r.join_sent is not None and r.join_done is not None for r in phase.requests)
    abuse = phase.abuse
    assert abuse is not None
    # 3 joins at once under one session: 2 admitted (PLAYGROUND_VISITOR_JOBS' public default), 1 refused
    assert abuse.admitted >= 2 and abuse.refused.get("429 jobs", 0) >= 1
    assert phase.upstream is not None
    abusive = [a for a in phase.upstream["answers"] if a["asked"] == ABUSE_TOKENS]
    assert 2 <= len(abusive) <= abuse.admitted
    phase.page, phase.page_loads = (3.0, 1.0, 0.1), [3.0]  # a page three times slower than idle
    machine = {"date": "d", "cores": "2", "cpu": "c", "memory": "m", "python": "p", "packages": "x"}
    markdown = report([phase], [(1.0, 0.5, 0.1)], Options(targets=("openai",)), machine, ["0"], "cmd")
    assert "### Public mode under load" in markdown and "| openai | never-open | 2 | 0 |" in markdown
    assert "MISSED `openai` / `never-open`: page loaded in 3.00 s (3.00 s), 3.00× idle" in markdown


def _request(joined: float, first: float) -> Request:
    return Request(0, joined, join_sent=joined, join_done=joined + 0.01, started=first, first=first)


def test_inversions_count_only_clearly_ordered_pairs() -> None:
    in_order = [_request(0, 1.0), _request(1, 2.0), _request(2, 3.0)]
    assert inversions(in_order, lambda r: r.first) == (0, 3)
    swapped = [_request(0, 3.0), _request(1, 2.0), _request(2, 3.05)]  # 3.05 is within the tolerance
    assert inversions(swapped, lambda r: r.first) == (1, 3)
    overlapping = [_request(0, 2.0), _request(0.005, 1.0)]  # joined at once: no clear order
    assert inversions(overlapping, lambda r: r.first) == (0, 0)


def test_percentile_by_nearest_rank() -> None:
    values = [float(i) for i in range(1, 21)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (10.0, 19.0, 20.0)


def test_abusive_streams_are_the_long_ones_and_those_beyond_the_visitors() -> None:
    def stream(name: str, start: float, items: int) -> list[TraceEvent]:
        return [TraceEvent("engine", name, start + i / 100, i + 1) for i in range(items)]

    events = [*stream("a", 0, 9), *stream("b", 1, 300), *stream("a", 5, 9), *stream("c", 6, 4)]
    tokens, seconds = _abusive_streams(events, visitor_streams=2, tokens=8)
    assert tokens == [300, 4]  # the long one, then the short one furthest from a whole answer (9 items)
    assert seconds == pytest.approx(2.99 + 0.03)


def test_the_report_of_an_abuser_that_asks_no_answer_checks_memory_and_disk() -> None:
    from bench.abusers import Calls, Footprint
    from bench.load import Phase

    def phase(
        variant: str, calls: Calls | None, footprint: tuple[Footprint, Footprint, float] | None
    ) -> Phase:
        requests = [_request(0, 1.0), _request(1, 2.0)]
        return Phase(
            "embedded", variant, requests, None, [], 0.0, 0, None, 10.0, calls=calls, footprint=footprint
        )

    flood = Calls(attempts=60, admitted=5, refused={"429 upload budget": 55}, seconds=[0.2, 0.3])
    grown = (Footprint(200, 0.2, 0.0), Footprint(230, 0.2, 150.0), 260.0)
    machine = {"date": "d", "cores": "2", "cpu": "c", "memory": "m", "python": "p", "packages": "x"}
    phases = [phase("none", None, None), phase("upload-flood", flood, grown)]
    markdown = report(phases, [], Options(targets=("embedded",)), machine, ["0"], "cmd")
    assert "| upload-flood | 60 | 5 | 55 429 upload budget | 0.30 s | 200 → 230 MB (260) |" in markdown
    assert (
        "met `embedded` / `upload-flood`: server memory growth at its peak 60.0 MB (goal ≤ 64 MB)."
        in markdown
    )
    assert "MISSED `embedded` / `upload-flood`: upload folder growth 150.0 MB (goal ≤ 100 MB)." in markdown
