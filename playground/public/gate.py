"""The ASGI middleware in front of Gradio: admission at join time, abandoned jobs dropped, `/healthz`.

- A question joins Gradio's queue by `POST .../gradio_api/queue/join` (the page, gradio_client) or
  `POST .../gradio_api/call/<api_name>` (plain HTTP). For the answering events, the gate asks
  `Admission` first, so a refused job never occupies the queue. The refusal's form depends on the
  caller: the page (`x-gradio-user: app`) shows a string `detail` as an error toast, gradio_client
  (`x-gradio-user: api`) raises `ValidationError` with the message only for a 422 in Gradio's
  validation format, and any other client gets a 429 with `{"detail": message}` and `Retry-After`.
- A client reads its results on `GET .../gradio_api/queue/data?session_hash=...` (or
  `.../call/<api_name>/<event_id>`). Gradio drops a session's jobs when that stream closes, but not
  those of a client that never opens it (an abusive script can join jobs and never read them): the
  gate counts the open streams per session and, every second, drops the answering jobs of a session
  that has had no open stream for ABANDON_GRACE_S seconds (queued ones are removed; a running one is
  marked dead, so Gradio closes the handler at its next update and the engine stops).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs

from .address import scope_address
from .admission import Admission, AdmissionRefused, Job
from .events import WORK_PER_ADDRESS, WORK_PER_SESSION

log = logging.getLogger("playground.public")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ABANDON_GRACE_S = 5.0  # the default of PLAYGROUND_ABANDON_GRACE_S: a client opens its stream within ms
WATCH_INTERVAL_S = 1.0
# Every request body but an upload's (Gradio bounds those by PLAYGROUND_UPLOAD_MB): a join carries the
# inputs' values (a question is at most PLAYGROUND_PROMPT_CHARS; files are uploaded on their own route).
MAX_BODY_BYTES = 1024 * 1024  # public mode
PRIVATE_BODY_BYTES = 32 * 1024 * 1024  # one's own playground: a long document pasted as a question


def too_large(limit: int) -> str:
    return (
        f"The request is larger than {limit // (1024 * 1024)} MB, which no question here needs: shorten the "
        "text, and attach images with the upload button."
    )


_UPLOAD = re.compile(r"/gradio_api/upload/?$")
UPLOAD_WINDOW_S = 600.0  # uploads per address are counted over the last ten minutes
UPLOADS_PER_WINDOW = 5  # an address may upload this many of PLAYGROUND_UPLOAD_MB in the window
HEALTH_PATH = "/healthz"
_JOIN = re.compile(r"/gradio_api/(?:queue/join|call/(?:v2/)?(?P<api>[^/]+))/?$")
_DATA = re.compile(r"/gradio_api/(?:queue/data|call/(?:v2/)?[^/]+/(?P<event>[^/]+))/?$")


class Gate:
    """The middleware: `Middleware(Gate, blocks=demo, admission=..., answers=..., ...)`.

    `answers` maps each answering event's function id to its pane key (None for the API, which has
    none); `api_answers` the same by api_name, for `/call/<api_name>`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        blocks: Any,
        admission: Admission,
        answers: Mapping[int, str | None],
        api_answers: Mapping[str, str | None],
        work: Collection[int] = (),
        upload_budget: int | None = None,
        max_body: int = MAX_BODY_BYTES,
        trust_forwarded: bool,
        health: Callable[[], dict[str, Any]],
        grace_s: float = ABANDON_GRACE_S,
    ) -> None:
        self.app = app
        self.blocks = blocks
        self.admission = admission
        self.answers = dict(answers)
        self.api_answers = dict(api_answers)
        self.work = frozenset(work)
        self.upload_budget = upload_budget  # bytes an address may upload per UPLOAD_WINDOW_S (public)
        self.uploads: dict[str, deque[tuple[float, int]]] = {}
        self.max_body = max_body  # every request body but an upload's
        self.trust_forwarded = trust_forwarded
        self.health = health
        self.grace_s = grace_s
        self.open_streams: dict[str, int] = {}
        self.last_stream: dict[str, float] = {}  # session -> when its last stream closed (monotonic)
        self.dropped = 0  # sessions whose jobs were dropped as abandoned
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self._watch_started()
        path, method = scope["path"], scope["method"]
        if method == "GET" and path.removeprefix(scope.get("root_path") or "") == HEALTH_PATH:
            queue = {"waiting": self.waiting(), "running": self.running()}
            await _json(send, 200, {**self.health(), "queue": queue})
            return
        if method == "POST" and _UPLOAD.search(path) and self.upload_budget is not None:
            refusal = self._upload_refusal(scope)
            if refusal is not None:
                await _json(send, 429, {"detail": refusal}, retry_after=int(UPLOAD_WINDOW_S))
                return
        if method == "POST" and not _UPLOAD.search(path):
            if _declared_size(scope) > self.max_body:  # refused before a byte of it is read
                await _json(send, 413, {"detail": too_large(self.max_body)})
                return
            receive = _bounded(receive, self.max_body)
        if method == "POST" and (found := _JOIN.search(path)):
            await self._join(scope, receive, send, found.group("api"))
            return
        if method == "GET" and (found := _DATA.search(path)):
            session = self._session_of(found.group("event")) or _query(scope, "session_hash")
            if session:
                await self._stream(session, scope, receive, send)
                return
        await self.app(scope, receive, send)

    # Admission

    async def _join(self, scope: Scope, receive: Receive, send: Send, api_name: str | None) -> None:
        body, replay = await _read_body(receive, self.max_body)
        if body is None:  # past the bound (a body without a length), or the client left
            await _json(send, 413, {"detail": too_large(self.max_body)})
            return
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if api_name is not None:
            known, pane = api_name in self.api_answers, self.api_answers.get(api_name)
            session = None  # a /call job has no session of its own: the address counts
        else:
            fn_index = payload.get("fn_index")
            known = isinstance(fn_index, int) and fn_index in self.answers
            pane = self.answers.get(fn_index) if known else None  # type: ignore[arg-type]
            raw = payload.get("session_hash")
            session = raw if isinstance(raw, str) and raw else None
        if known and (wrong := self._arity(api_name, payload)):
            if _caller(scope) == "api":  # gradio_client shows a 422 in Gradio's validation format
                detail: Any = [
                    {
                        "__type__": "validate",
                        "is_valid": False,
                        "message": wrong,
                        "parameter_name": "question",
                    }
                ]
                await _json(send, 422, {"detail": detail})
            else:
                await _json(send, 400, {"detail": wrong})
            return
        if not known:
            if api_name is None and payload.get("fn_index") in self.work:
                await self._join_work(scope, replay, send, session)
                return
            await self.app(scope, replay, send)
            return
        address = scope_address(scope, trust_forwarded=self.trust_forwarded)
        async with self._lock:  # check and push as one step: two joins at once both count
            try:
                self.admission.admit(session, address, pane, list(self.jobs()), self.waiting())
            except AdmissionRefused as refused:
                log.info("refused a question from %s (session %s): %s", address, session, refused)
                await _refuse(scope, send, refused)
                return
            await self.app(scope, replay, send)

    def _upload_refusal(self, scope: Scope) -> str | None:
        """Count an upload's declared bytes against its address's budget for the last UPLOAD_WINDOW_S;
        the refusal's message when it would pass it (60 uploads of 20 MB filled 1.1 GB in 6 s before)."""
        address = scope_address(scope, trust_forwarded=self.trust_forwarded)
        now, size = time.monotonic(), _declared_size(scope)
        budget = int(self.upload_budget or 0)
        if size > budget:  # one upload over the whole budget: Gradio's max_file_size refuses it (413)
            return None
        recent = self.uploads.setdefault(address, deque())
        while recent and recent[0][0] <= now - UPLOAD_WINDOW_S:
            recent.popleft()
        used = sum(n for _, n in recent)
        if used + size > budget:
            log.info("refused an upload of %d bytes from %s (%d in the window)", size, address, used)
            return (
                f"Your network address has uploaded {used / 1e6:.0f} MB in the last "
                f"{UPLOAD_WINDOW_S / 60:.0f} minutes (at most {budget / 1e6:.0f} MB): try again in a few minutes."
            )
        recent.append((now, size))
        return None

    def _arity(self, api_name: str | None, payload: Mapping[str, Any]) -> str | None:
        """Our message for an answering call with the wrong number of values (Gradio's own lists its
        components' Python reprs); None when the count is right or cannot be known."""
        data = payload.get("data")
        fn = None
        if api_name is not None:
            fn = next((f for f in self.blocks.fns.values() if f.api_name == api_name), None)
        elif isinstance(payload.get("fn_index"), int):
            fn = self.blocks.fns.get(payload["fn_index"])
        if fn is None or not isinstance(data, list) or len(data) == len(fn.inputs):
            return None
        names = ", ".join(str(getattr(c, "label", None) or type(c).__name__) for c in fn.inputs)
        called = f"/{fn.api_name}" if fn.api_name else "this event"
        return (
            f"{called} takes {len(fn.inputs)} values ({names}); {len(data)} were given. gradio_client fills "
            f"the ones left out: Client(url).predict(question, api_name='{called}')."
        )

    async def _join_work(self, scope: Scope, receive: Receive, send: Send, session: str | None) -> None:
        """A work event (render, code, history, export...): at most WORK_PER_SESSION of a session's and
        WORK_PER_ADDRESS of an address's waiting or running at once (events.py)."""
        address = scope_address(scope, trust_forwarded=self.trust_forwarded)
        async with self._lock:
            mine = theirs = 0
            for event in self._events():
                if getattr(event.fn, "_id", None) in self.work:
                    mine += session is not None and event.session_hash == session
                    theirs += self._address_of(event) == address
            refusal = None
            if mine >= WORK_PER_SESSION:
                refusal = f"You already have {mine} requests waiting or running (at most {WORK_PER_SESSION})"
            elif theirs >= WORK_PER_ADDRESS:
                refusal = f"Your network address has {theirs} requests waiting or running (at most {WORK_PER_ADDRESS})"
            if refusal is not None:
                log.info("refused a work event from %s (session %s): %s", address, session, refusal)
                await _refuse(scope, send, AdmissionRefused(f"{refusal}: wait for them to finish.", 2))
                return
            await self.app(scope, receive, send)

    def _address_of(self, event: Any) -> str:
        scope = getattr(getattr(event, "request", None), "scope", None) or {}
        return scope_address(scope, trust_forwarded=self.trust_forwarded)

    def _queue(self) -> Any:
        return self.blocks._queue

    def _events(self) -> Iterator[Any]:
        """Every event queued or running now."""
        queue = self._queue()
        for event_queue in list(queue.event_queue_per_concurrency_id.values()):
            yield from list(event_queue.queue)
        for job in list(queue.active_jobs):
            if job:
                yield from job

    def jobs(self) -> Iterator[Job]:
        """The answering jobs queued or running now."""
        for event in self._events():
            fn_id = getattr(event.fn, "_id", None)
            if fn_id in self.answers:
                yield Job(event.session_hash, self._address_of(event), self.answers[fn_id])

    def waiting(self) -> int:
        """Jobs waiting in the whole queue (not running)."""
        return len(self._queue())

    def running(self) -> int:
        return sum(len(job) for job in list(self._queue().active_jobs) if job)

    # Streams, and the jobs nobody reads

    async def _stream(self, session: str, scope: Scope, receive: Receive, send: Send) -> None:
        self.open_streams[session] = self.open_streams.get(session, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.open_streams[session] - 1
            if left:
                self.open_streams[session] = left
            else:
                del self.open_streams[session]
            self.last_stream[session] = time.monotonic()

    def _session_of(self, event_id: str | None) -> str | None:
        """The session of a `/call/<api_name>/<event_id>` stream: the event's (its own id unless the
        caller gave one), so that reading it keeps the job alive."""
        if not event_id:
            return None
        event = self._queue().event_ids_to_events.get(event_id)
        return getattr(event, "session_hash", None) or event_id

    def _watch_started(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="gate-watch")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            try:
                await self.drop_abandoned()
            except Exception:  # the watcher must outlive a surprise in Gradio's queue
                log.exception("dropping abandoned jobs failed")

    async def drop_abandoned(self) -> int:
        """Drop the answering jobs of the sessions with no open stream for grace_s; how many sessions."""
        now = time.monotonic()
        abandoned: set[str] = set()
        for event in self._events():
            session = event.session_hash
            if getattr(event.fn, "_id", None) not in self.answers or self.open_streams.get(session):
                continue
            since = max(event.enqueue_time, self.last_stream.get(session, 0.0))
            if now - since > self.grace_s:
                abandoned.add(session)
        for session in abandoned:
            log.info("dropping the jobs of session %s: nobody reads them", session)
            await self._queue().clean_events(session_hash=session)
        self.dropped += len(abandoned)
        for session, closed in list(self.last_stream.items()):  # bounded: the last ten minutes'
            if now - closed > 600:
                del self.last_stream[session]
        return len(abandoned)


def _query(scope: Scope, name: str) -> str | None:
    values = parse_qs((scope.get("query_string") or b"").decode("latin-1")).get(name)
    return values[0] if values else None


def _declared_size(scope: Scope) -> int:
    """The Content-Length a request declares (0 when it declares none, or nonsense)."""
    raw = next((v for k, v in scope.get("headers") or [] if k == b"content-length"), b"0")
    try:
        return int(raw)
    except ValueError:
        return 0


def _bounded(receive: Receive, limit: int) -> Receive:
    """`receive` that ends the request (as a client that left) once its body passes `limit` bytes,
    for a body sent without a Content-Length."""
    size = 0

    async def bounded() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                log.info("a request body passed %d bytes: ended", limit)
                return {"type": "http.disconnect"}
        return message

    return bounded


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The whole request body (None past `limit` bytes) and a `receive` that replays it."""
    chunks: list[Message] = []
    size, more = 0, True
    while more:
        message = await receive()
        chunks.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        more = bool(message.get("more_body"))
        if size > limit:
            break
    pending = list(chunks)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    complete = not more and all(m["type"] == "http.request" for m in chunks)
    body = b"".join(m.get("body", b"") for m in chunks) if complete else None
    return body, replay


def _caller(scope: Scope) -> str:
    """Who sent the request, as Gradio's clients say: "app" (the page), "api" (gradio_client) or ""."""
    return next((v.decode("latin-1") for k, v in scope.get("headers") or [] if k == b"x-gradio-user"), "")


async def _refuse(scope: Scope, send: Send, refused: AdmissionRefused) -> None:
    """The refusal in the form the caller shows (see the module's docstring)."""
    user = _caller(scope)
    message = str(refused)
    if user == "api":
        detail: Any = [
            {"__type__": "validate", "is_valid": False, "message": message, "parameter_name": "question"}
        ]
        await _json(send, 422, {"detail": detail}, retry_after=refused.retry_after_s)
    else:
        await _json(send, 429, {"detail": message}, retry_after=refused.retry_after_s)


async def _json(send: Send, status: int, payload: Any, *, retry_after: int | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
