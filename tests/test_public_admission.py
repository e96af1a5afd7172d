"""Public mode at the door, on the real app with the embedded model: each admission limit is hit and
says when to try again; jobs nobody reads are dropped and a running one's engine stops."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from gradio_client import Client

from playground.context import AppContext
from playground.settings import Limits
from playground.ui.app import build_app, serve_options

LONG = "Write a very long story about a lighthouse keeper, with many chapters."
GRACE_S = 5.0  # gate.ABANDON_GRACE_S


@contextmanager
def public_app(ctx: AppContext, **limits: Any) -> Iterator[str]:
    """The real app with these limits (everything else off), on a loopback port."""
    demo = build_app(ctx)
    _, url, _ = demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", **serve_options(demo, ctx, Limits(**limits))
    )
    try:
        yield url
    finally:
        demo.close()


def chat_fn(url: str) -> int:
    config = httpx.get(f"{url}config", timeout=30).json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")


def join(
    url: str, session: str, question: str = LONG, *, tokens: int = 400, user: str | None = None
) -> httpx.Response:
    """POST /queue/join for `/chat` as a script would, never reading the result."""
    data = [question, None, "", 0.0, None, None, tokens, None, None, "", "", ""]
    headers = {"x-gradio-user": user} if user else {}
    body = {"data": data, "fn_index": chat_fn(url), "session_hash": session, "event_data": None}
    return httpx.post(f"{url}gradio_api/queue/join", json=body, headers=headers, timeout=30)


def health(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}healthz", timeout=10)
    assert response.status_code == 200
    return dict(response.json())


def wait_for(condition: Callable[[], bool], limit_s: float) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < limit_s, "timed out"
        time.sleep(0.1)
    return time.monotonic() - start


def idle(ctx: AppContext) -> bool:
    return not any(ctx.registry.busy(m.spec.id) for m in ctx.registry.loaded())


def test_healthz_says_ok_with_the_queue_and_nothing_else(ctx: AppContext) -> None:
    with public_app(ctx) as url:
        found = health(url)
    assert found["status"] == "ok"
    assert set(found) == {"status", "public", "models_loaded", "queue"}
    assert set(found["queue"]) == {"waiting", "running"}


def test_an_abusive_sessions_third_join_is_refused_while_another_visitor_is_answered(ctx: AppContext) -> None:
    with public_app(ctx, visitor_jobs=2) as url:
        abuser = uuid.uuid4().hex
        assert join(url, abuser).status_code == 200
        assert join(url, abuser).status_code == 200
        raw = join(url, abuser)  # a plain HTTP client: 429, the message and when to retry
        assert raw.status_code == 429
        assert "2 questions waiting or being answered" in raw.json()["detail"]
        assert int(raw.headers["retry-after"]) >= 1
        page = join(url, abuser, user="app")  # the page shows a string detail as an error toast
        assert page.status_code == 429 and "wait for one to finish" in page.json()["detail"]
        api = join(url, abuser, user="api")  # gradio_client raises with the message
        assert api.status_code == 422 and "at most 2 at once" in api.json()["detail"][0]["message"]
        answer = Client(url, verbose=False).predict("What is 2+2?", api_name="/chat")
        assert isinstance(answer, str) and answer.strip(), "another visitor is still answered"
        # nobody reads the abuser's jobs: dropped, and the engine is left idle
        wait_for(lambda: health(url)["queue"] == {"waiting": 0, "running": 0}, GRACE_S + 20)
        wait_for(lambda: idle(ctx), 10)


def test_gradio_client_gets_the_refusal_as_an_error_with_the_message(ctx: AppContext) -> None:
    with public_app(ctx, rate_per_minute=2) as url:
        client = Client(url, verbose=False)
        for _ in range(2):
            client.predict("Say yes.", max_new_tokens=4, api_name="/chat")
        with pytest.raises(
            Exception, match=r"asked 2 questions in the last minute \(at most 2\): try again in \d+ s"
        ):
            client.predict("Say yes.", max_new_tokens=4, api_name="/chat")
        # another session (another visitor) may still ask
        assert Client(url, verbose=False).predict("Say yes.", max_new_tokens=4, api_name="/chat")


def test_the_address_limits_count_every_session_from_one_address(ctx: AppContext) -> None:
    with public_app(ctx, address_jobs=1, address_rate_per_minute=2) as url:
        first = join(url, uuid.uuid4().hex)
        assert first.status_code == 200
        second = join(url, uuid.uuid4().hex)  # a new session, the same address (a script's new Client)
        assert second.status_code == 429
        assert "from your network address" in second.json()["detail"]
        wait_for(lambda: health(url)["queue"] == {"waiting": 0, "running": 0}, GRACE_S + 20)
        assert join(url, uuid.uuid4().hex, tokens=4).status_code == 200
        wait_for(lambda: health(url)["queue"] == {"waiting": 0, "running": 0}, GRACE_S + 20)
        refused = join(url, uuid.uuid4().hex, tokens=4)  # the 3rd question admitted this minute from here
        assert (
            refused.status_code == 429
            and "Your network address has asked 2 questions" in refused.json()["detail"]
        )


def test_the_queue_is_bounded(ctx: AppContext) -> None:
    with public_app(ctx, queue_size=1) as url:
        codes = [join(url, uuid.uuid4().hex).status_code for _ in range(6)]  # 4 run (/chat's limit), 1 waits
        assert codes[:5] == [200] * 5
        assert codes[5] == 429
        last = join(url, uuid.uuid4().hex)
        assert "The playground is busy" in last.json()["detail"]
        wait_for(lambda: health(url)["queue"] == {"waiting": 0, "running": 0}, GRACE_S + 30)
        wait_for(lambda: idle(ctx), 15)


def test_a_running_answer_whose_reader_leaves_stops_its_engine(ctx: AppContext) -> None:
    with public_app(ctx) as url:
        session = uuid.uuid4().hex
        seen = threading.Event()

        def read() -> None:
            params = {"session_hash": session}
            with httpx.stream("GET", f"{url}gradio_api/queue/data", params=params, timeout=60) as stream:
                for line in stream.iter_lines():
                    if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_generating":
                        seen.set()
                        return  # the visitor closes the page mid-answer

        assert join(url, session, tokens=2000).status_code == 200
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert seen.wait(120), "the answer started streaming"
        reader.join(10)
        assert not idle(ctx), "the engine was generating"
        took = wait_for(lambda: idle(ctx), 10)
        assert took < 10, "the engine stopped once its reader left"
        assert health(url)["queue"]["running"] == 0


def test_a_job_nobody_reads_is_dropped_before_it_runs(ctx: AppContext) -> None:
    with public_app(ctx) as url:
        # four readers' jobs fill /chat's four places; the fifth job waits and its client never reads
        readers = [Client(url, verbose=False) for _ in range(4)]
        # greedy, so that no answer ends early (the story runs to the token limit)
        running = [c.submit(LONG, temperature=0, max_new_tokens=2000, api_name="/chat") for c in readers]
        wait_for(lambda: health(url)["queue"]["running"] == 4, 60)
        assert join(url, uuid.uuid4().hex, tokens=2000).status_code == 200
        assert health(url)["queue"]["waiting"] == 1
        wait_for(lambda: health(url)["queue"]["waiting"] == 0, GRACE_S + 5)
        assert not any(job.done() for job in running), "no place was freed: the job never started"
        assert health(url)["queue"]["running"] == 4
        before = sum(len(job.outputs()) for job in running)  # two workers: two of them stream at a time
        wait_for(lambda: sum(len(job.outputs()) for job in running) > before, 10)
        for job in running:  # the readers' answers were not affected: still streaming; enough of them
            job.cancel()
        wait_for(lambda: health(url)["queue"] == {"waiting": 0, "running": 0}, 20)
        wait_for(lambda: idle(ctx), 20)


def call_chat(url: str, session: str) -> tuple[float, Any]:
    """`/call/chat` as a plain HTTP client, with a session of its own, read on `/call/chat/<event_id>`:
    how long the stream lasted, and the last data it carried."""
    data = [LONG, None, "", 0.0, None, None, 500, None, None, "", "", ""]
    event = httpx.post(f"{url}gradio_api/call/chat", json={"data": data, "session_hash": session}, timeout=30)
    started, last = time.monotonic(), None
    with httpx.stream("GET", f"{url}gradio_api/call/chat/{event.json()['event_id']}", timeout=60) as stream:
        for line in stream.iter_lines():  # heartbeats keep a dropped job's stream open: give up at 30 s
            if line.startswith("data: ") and line != "data: null":
                last = json.loads(line.removeprefix("data: "))
            if time.monotonic() - started > 30:
                break
    return time.monotonic() - started, last


def test_a_plain_http_caller_that_reads_its_call_stream_is_not_dropped(ctx: AppContext) -> None:
    """Read past the gate's grace, the stream of a `/call` job keeps it alive: the gate knows whose
    session it belongs to, and the whole (greedy) answer arrives, as with a grace nothing reaches."""
    with public_app(ctx, abandon_grace_s=60) as url:
        _, whole = call_chat(url, "my-own-session")
    with public_app(ctx, abandon_grace_s=0.2) as url:
        lasted, last = call_chat(url, "my-own-session")
    assert lasted > 1.5, "it streamed past the grace and the gate's next look"
    assert last == whole and len(whole[0]) > 1000, "the whole answer, not one cut off as abandoned"


def test_request_bodies_are_bounded_at_the_door_uploads_by_their_own_limit(ctx: AppContext) -> None:
    """A join padded past 1 MB in a key the app ignores is refused before it reaches the queue (it was
    admitted past the admission check before); an upload of 2 MB (under PLAYGROUND_UPLOAD_MB) still
    goes through, and an ordinary question is answered."""
    with public_app(ctx, visitor_jobs=2, upload_mb=5.0) as url:
        body = {"data": [LONG, None, "", 0.0, None, None, 4, None, None, ""], "fn_index": chat_fn(url)}
        padded = {**body, "session_hash": uuid.uuid4().hex, "padding": "x" * (2 * 1024 * 1024)}
        refused = httpx.post(f"{url}gradio_api/queue/join", json=padded, timeout=30)
        assert refused.status_code == 413 and "larger than 1 MB" in refused.json()["detail"]
        assert health(url)["queue"] == {"waiting": 0, "running": 0}, "nothing reached the queue"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield json.dumps(padded).encode()

        streamed = httpx.post(f"{url}gradio_api/queue/join", content=chunks(), timeout=30)
        assert streamed.status_code == 413
        other = httpx.post(f"{url}gradio_api/run/predict", content=b"x" * (2 * 1024 * 1024), timeout=30)
        assert other.status_code == 413, "every route but the upload is bounded"
        upload = httpx.post(
            f"{url}gradio_api/upload", files={"files": ("big.bin", b"\0" * (2 * 1024 * 1024))}, timeout=30
        )
        assert upload.status_code == 200, upload.text[:200]
        answer = Client(url, verbose=False).predict("Say yes.", max_new_tokens=4, api_name="/chat")
        assert isinstance(answer, str) and answer.strip()


def test_a_call_with_the_wrong_number_of_values_gets_our_message_not_component_reprs(ctx: AppContext) -> None:
    with public_app(ctx) as url:
        data = ["Hi", None, "", 0, 1, 0, 4, 1, -1]  # 9 of /chat's 12 values
        raw = httpx.post(f"{url}gradio_api/call/chat", json={"data": data}, timeout=30)
        assert raw.status_code == 400, raw.text[:300]
        detail = raw.json()["detail"]
        assert "/chat takes 12 values (question, model, system_prompt" in detail and "9 were given" in detail
        assert "object at 0x" not in detail
        body = {"data": data, "fn_index": chat_fn(url), "session_hash": uuid.uuid4().hex}
        page = httpx.post(
            f"{url}gradio_api/queue/join", json=body, headers={"x-gradio-user": "api"}, timeout=30
        )
        assert page.status_code == 422 and "9 were given" in page.json()["detail"][0]["message"]


def test_uploads_are_counted_per_address_over_ten_minutes(ctx: AppContext) -> None:
    """An address may upload 5 × PLAYGROUND_UPLOAD_MB in ten minutes (60 uploads of 20 MB filled 1.1 GB
    of disk in 6 s before): the sixth 0.9 MB file under a 1 MB upload limit is refused with a message."""
    with public_app(ctx, visitor_jobs=2, upload_mb=1.0) as url:
        codes = [
            httpx.post(f"{url}gradio_api/upload", files={"files": (f"f{i}.bin", b"\0" * 900_000)}, timeout=30)
            for i in range(6)
        ]
        assert [c.status_code for c in codes] == [200] * 5 + [429], [c.text[:120] for c in codes]
        assert "uploaded 5 MB in the last 10 minutes (at most 5 MB)" in codes[-1].json()["detail"]
