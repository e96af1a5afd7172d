"""The Arena tab in the launched app: a blind round through the queue exactly as the page calls it, whose
raw payloads name neither side before the vote.

A round played, voted and ranked in a real browser is in the end-to-end tests (tests/test_e2e.py).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from playground.arena.anonymise import identity_words
from playground.context import AppContext
from playground.ui.arena_layout import BOARD_VIEWS
from playground.ui.arena_tab import BLIND
from tests.support import QUESTION
from tests.test_arena import mentioned

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
BOT_A, BOT_B = '#arena-chat-a [data-testid="bot"]', '#arena-chat-b [data-testid="bot"]'


def test_the_leak_check_sees_a_window_as_a_number_only() -> None:
    words = ["8,192", "8192", "smollm2"]
    assert mentioned('"duration":0.0018192, "event_id":"a98192ff", 18,192 tokens', words) == []
    assert mentioned("context 8,192 tokens; window 8192.", words) == ["8,192", "8192"]
    assert mentioned("an answer from onnxsmollm2", words) == ["smollm2"]


# The raw payloads: the queue protocol the page itself speaks (join, then the session's event stream)


class PageSession:
    """One page's session on the launched app, calling events by their trigger as the browser does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = uuid.uuid4().hex
        self.config = httpx.get(url + "config").json()
        self.raw: list[str] = []  # every data line the server sent this session

    def component(self, elem_id: str) -> int:
        return next(
            c["id"] for c in self.config["components"] if c.get("props", {}).get("elem_id") == elem_id
        )

    def dependency(self, trigger: tuple[int, str], outputs: int | None = None) -> dict[str, Any]:
        return next(
            d
            for d in self.config["dependencies"]
            if [trigger[0], trigger[1]] in [list(t) for t in d["targets"]]
            and (outputs is None or len(d["outputs"]) == outputs)
        )

    def call(self, dependency: dict[str, Any], data: list[Any]) -> list[dict[str, Any]]:
        body = {
            "data": data,
            "fn_index": dependency["id"],
            "session_hash": self.session,
            "event_data": None,
            "trigger_id": dependency["targets"][0][0],
        }
        joined = httpx.post(self.url + "gradio_api/queue/join", json=body, timeout=30)
        joined.raise_for_status()
        event = joined.json()["event_id"]
        messages = []
        with httpx.stream(
            "GET", self.url + "gradio_api/queue/data", params={"session_hash": self.session}, timeout=180
        ) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                self.raw.append(line)
                message = json.loads(line[5:])
                messages.append(message)
                if message.get("event_id") == event and message.get("msg") == "process_completed":
                    break
        return messages


def test_a_blind_round_names_nobody_in_the_raw_payloads_before_the_vote(
    app_url: str, ctx: AppContext
) -> None:
    specs = [ctx.registry.resolve(i) for i in (ONNX, HF)]
    words = {w.lower() for s in specs for w in identity_words(s)} | {str(s.context_window) for s in specs}
    words |= {f"{s.context_window:,}" for s in specs}
    page = PageSession(app_url)
    load = next(
        d
        for d in page.config["dependencies"]
        if any(t[1] == "load" for t in d["targets"]) and len(d["outputs"]) == 3
    )
    page.call(load, [None])  # the visitor's id, as on page load
    send = page.dependency((page.component("arena-send"), "click"))
    pane = ["", 0, 1, 0, 24, 1, -1, ""]
    data = [None, None, None, BLIND, "", ONNX, ONNX, QUESTION, True, *pane, *pane, True]  # Token view on
    messages = page.call(send, data)
    assert messages[-1].get("success"), messages[-1]
    before_vote = "\n".join(page.raw).lower()
    assert "model a" in before_vote and "tok/s" in before_vote, "the round reached the page"
    assert "tv-tok" in before_vote, "its token views too (Token view on)"
    leaked = mentioned(before_vote, sorted(words))
    assert not leaked, leaked
    # No API endpoint serves the arena (every arena event is private): the API lists none of it.
    info = httpx.get(app_url + "gradio_api/info").json()
    assert not [name for name in info.get("named_endpoints", {}) if "arena" in name.lower() or "play" in name]
    # The vote reveals the names in the next payload (the check above can see them).
    vote = page.dependency((page.component("arena-vote-b"), "click"))
    page.raw.clear()
    assert page.call(vote, [None, None, None, BOARD_VIEWS[0], False])[-1].get("success")
    revealed = "\n".join(page.raw)
    assert ONNX in revealed and HF in revealed
