"""Issue 17's findings reproduced against the real app in public mode, with bench/abusers.py's clients
(raw HTTP through the page's own events and routes, as a script would) and smaller limits set through
the settings: each asks no answer and used to cost the server CPU, memory or disk. The same clients, at
the public defaults, are phases of bench/load.py (docs/benchmarks.md)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from gradio_client import Client

from bench.abusers import EventAbuser, Sizes, folder_mb
from playground.context import AppContext
from tests.support import make_settings, serving_app

EMBEDDED = "smollm2-135m-instruct@onnx"


def public(tmp_path: Path, **extra: str) -> AppContext:
    return AppContext.create(
        make_settings(tmp_path / "data", PLAYGROUND_PUBLIC="1", PLAYGROUND_TRUST_FORWARDED="1", **extra)
    )


def run(url: str, kind: str, tmp_path: Path, sizes: Sizes) -> EventAbuser:
    abuser = EventAbuser(url, kind, tmp_path, EMBEDDED, sizes)
    abuser.start()
    abuser.join(timeout=600)
    assert not abuser.is_alive()
    return abuser


def test_show_prompt_with_megabytes_in_the_box_is_refused_while_a_visitor_is_answered(tmp_path: Path) -> None:
    """Four sessions pressing Show prompt with 2 MB in the box (refused at the door) and 0.9 MB (under
    the body bound: the prompt view refuses it by its length, without rendering it), again and again,
    while a visitor asks: the visitor gets its answer."""
    ctx = public(tmp_path)
    try:
        with serving_app(ctx) as (_, url):
            abuser = EventAbuser(url, "show-prompt", tmp_path, EMBEDDED, Sizes())
            abuser.start()
            answer = Client(url, verbose=False).predict("Say yes.", max_new_tokens=4, api_name="/chat")
            abuser.finish()
    finally:
        ctx.close()
    assert isinstance(answer, str) and answer.strip()
    calls = abuser.calls
    assert calls.refused.get("413 body", 0) >= 4 and set(calls.refused) == {"413 body"}
    assert calls.admitted >= 4, "the 0.9 MB ones ran: the prompt view said the question is too long"


def test_a_hundred_sessions_pressing_send_with_megabytes_keep_nothing_of_it(tmp_path: Path) -> None:
    """100 fresh sessions press Send with 2 MB (refused at the door), 0.9 MB (over the question limit:
    left in the box) and 8,000 characters; none writes the history, no session keeps the long ones, and
    the server keeps the state of at most PLAYGROUND_SESSIONS sessions (Gradio's ~0.6 MB each)."""
    ctx = public(tmp_path, PLAYGROUND_SESSIONS="20")
    try:
        with serving_app(ctx) as (demo, url):
            calls = run(url, "stored-questions", tmp_path, Sizes(stored_sessions=100)).calls
            sessions = list(demo.state_holder.session_data.values())
            held = [v for s in sessions for v in s.state_data.values() if isinstance(v, list) and v]
        stored = ctx.history.conversations.list_all_conversations()
    finally:
        ctx.close()
    assert calls.attempts == 300 and calls.refused == {"413 body": 100}
    assert len(sessions) <= 20, "the oldest sessions are forgotten past PLAYGROUND_SESSIONS"
    longest = max(
        (len(str(turn.get("content"))) for v in held for turn in v if isinstance(turn, dict)), default=0
    )
    assert longest <= 8_000, "no session kept a question over the limit"
    assert stored == [], "Send alone writes nothing to the history"


def test_an_upload_flood_from_one_address_stops_at_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 uploads of 0.9 MB (each under PLAYGROUND_UPLOAD_MB, 1 MB here) from one address, 4 at a time:
    5 × 1 MB in ten minutes are taken, the rest refused with a message; the upload folder grows by at
    most that (it grew 1.14 GB in 6 s for 60 of 20 MB before)."""
    uploads = tmp_path / "uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    ctx = public(tmp_path, PLAYGROUND_UPLOAD_MB="1", PLAYGROUND_IMPORT_MB="1", PLAYGROUND_IMAGE_MB="1")
    try:
        with serving_app(ctx) as (_, url):
            calls = run(url, "upload-flood", tmp_path, Sizes(uploads=60, upload_mb=0.9)).calls
            grown = folder_mb(uploads)
    finally:
        ctx.close()
    assert calls.attempts == 60 and calls.admitted == 5
    assert calls.refused == {"429 upload budget": 55}
    assert 4.5 <= grown <= 5.0, grown


def test_fresh_page_loads_importing_from_one_address_stop_at_the_address_cap(tmp_path: Path) -> None:
    """Each page load a new visitor id with an empty quota: the imports of one address stop at one
    visitor's history a day, whatever the ids; the history holds only what was taken."""
    ctx = public(tmp_path, PLAYGROUND_VISITOR_HISTORY_MB="0.35")
    try:
        with serving_app(ctx) as (_, url):
            calls = run(url, "fresh-imports", tmp_path, Sizes(imports=5, import_mb=0.1)).calls
        conversations = ctx.history.conversations.list_all_conversations()
    finally:
        ctx.close()
    assert calls.attempts == 5 and calls.admitted == 2 and calls.refused == {"200 import cap": 3}
    assert len(conversations) == 2 * 20, "two imports of 20 conversations each, nothing of the refused"


def test_the_abusers_run_beside_each_other_without_a_visitor_error(tmp_path: Path) -> None:
    """All four at once, and a visitor asking: answered."""
    ctx = public(tmp_path, PLAYGROUND_UPLOAD_MB="1", PLAYGROUND_IMPORT_MB="1", PLAYGROUND_IMAGE_MB="1")
    small = Sizes(uploads=8, upload_mb=0.5, stored_sessions=5, imports=3, import_mb=0.05)
    try:
        with serving_app(ctx) as (_, url):
            abusers = [
                EventAbuser(url, kind, tmp_path / kind, EMBEDDED, small)
                for kind in ("show-prompt", "upload-flood", "stored-questions", "fresh-imports")
            ]
            for abuser in abusers:
                abuser.workdir.mkdir()
                abuser.start()
            answer = Client(url, verbose=False).predict("Say yes.", max_new_tokens=4, api_name="/chat")
            for abuser in abusers:
                abuser.finish()
    finally:
        ctx.close()
    assert isinstance(answer, str) and answer.strip()
    assert all(a.calls.attempts > 0 for a in abusers)
    assert threading.active_count() < 100
