"""A real HTTP server on 127.0.0.1 for what `transformers serve` cannot produce: 401, 404, 410, 429, 500,
hangs, dropped streams, stop sequences it ignores and text that is not valid Unicode. It records every request (method, path, headers, JSON body).

The scenario is the first path segment: `http://127.0.0.1:<port>/<scenario>/v1`. A suffix after `~`
(`r429~test-a`) gives a test its own request counter.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_LIMIT_S = 30.0
MODELS = ["alpha", "beta"]
NVIDIA_MODELS = [
    "microsoft/phi-4-mini-instruct",
    "microsoft/phi-3.5-vision-instruct",
    "microsoft/phi-3-vision-128k-instruct",
    "meta/llama-3.1-8b-instruct",
]
OLLAMA_TAGS = [
    {
        "name": "phi4-mini:latest",
        "size": 2_500_000_000,
        "details": {"family": "phi3", "parameter_size": "3.8B"},
    },
    {
        "name": "llama3.2:latest",
        "size": 2_000_000_000,
        "details": {"family": "llama", "parameter_size": "3.2B"},
    },
]


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    scenario: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)
    query: str = ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up (timeouts, dropped streams) is part of the script: stay quiet."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class FakeServer:
    """A threading HTTP server that plays one scenario per path prefix and stops itself on close()."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.counts: Counter[str] = Counter()
        self.gave_up: dict[str, int] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-server", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def root(self, scenario: str) -> str:
        return f"http://127.0.0.1:{self.port}/{scenario}"

    def url(self, scenario: str) -> str:
        return f"{self.root(scenario)}/v1"

    def requests(self, scenario: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.scenario == scenario]

    def record(self, received: Received) -> int:
        with self._lock:
            self.received.append(received)
            self.counts[received.scenario] += 1
            return self.counts[received.scenario]

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def chunk(text: str = "", finish: str | None = None, usage: dict[str, int] | None = None) -> dict[str, Any]:
    """One chat.completion.chunk as OpenAI sends it."""
    delta = {"content": text} if text else {}
    data: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return data


ANSWER = ["The capital", " of France", " is Paris."]
# Streams of their own, for scenarios named by the key: text with stop sequences in it (one split across two
# chunks), and text with a lone surrogate (the JSON escape "\ud800", which decodes to one).
STREAMS = {
    "stops": ["Alpha beta", " SI", "X gamma FI", "VE delta"],
    "surrogate": ["The capital \ud800", " of France", " is Paris."],
    "judgea": ["A"],  # a judge that always prefers the answer shown first
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def fake(self) -> FakeServer:
        return self.server.fake  # type: ignore[attr-defined,no-any-return]

    # request handling ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        path, _, query = self.path.partition("?")
        scenario, _, rest = path.lstrip("/").partition("/")
        headers = {k.lower(): v for k, v in self.headers.items()}
        received = Received(method, scenario, "/" + rest, headers, body, query)
        count = self.fake.record(received)
        kind = scenario.split("~", 1)[0]
        if method == "GET":
            self._get(kind, received.path)
        else:
            self._post(kind, count, received)

    def _get(self, kind: str, path: str) -> None:
        if kind == "ollama" and path == "/api/tags":
            self._json(200, {"models": OLLAMA_TAGS})
        elif kind == "nvidia" and path.endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in NVIDIA_MODELS]})
        elif kind == "s401":
            self._json(401, {"error": {"message": "Unauthorized"}})
        elif kind == "hang":
            self._hang()
        elif path.endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})
        else:
            self._json(404, {"detail": "Not Found"})

    def _post(self, kind: str, count: int, received: Received) -> None:
        key = received.headers.get("authorization", "").removeprefix("Bearer ")
        if kind == "s401":  # a careless server that echoes the key back
            self._json(
                401, {"error": {"message": f"Incorrect API key provided: {key}", "code": "invalid_api_key"}}
            )
        elif kind == "s403":
            self._json(403, {"error": {"message": "This key may not use this model."}})
        elif kind == "s404":
            self._json(404, {"error": {"message": f"The model {received.body.get('model')} does not exist"}})
        elif kind in ("s410", "github"):
            message = "GitHub Models is temporarily unavailable as part of a scheduled retirement brownout"
            self._json(410, {"error": {"code": "unavailable", "message": message}})
        elif kind == "s413":
            self._json(413, {"error": {"message": "Request entity too large"}})
        elif kind == "ctx":
            message = (
                "This model's maximum context length is 4096 tokens. However, you requested 9000 tokens."
            )
            self._json(400, {"error": {"message": message, "code": "context_length_exceeded"}})
        elif (kind == "r429" and count == 1) or kind == "r429x":
            self._json(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "1"})
        elif kind == "q429":
            self._json(429, {"error": {"message": "Quota exceeded for today"}}, {"Retry-After": "3600"})
        elif kind == "s400u":  # an error whose message holds a lone surrogate
            self._json(400, {"error": {"message": "bad input \udc80 here"}})
        elif kind == "s500":
            self._json(500, {"error": {"message": "Internal failure"}})
        elif kind == "s503":
            self._json(503, {"error": {"message": "Service Unavailable"}})
        elif kind == "hang":
            self._hang()
        elif kind == "noopts" and "stream_options" in received.body:
            self._json(400, {"error": {"message": "Unrecognized request argument supplied: stream_options"}})
        else:
            self._stream(kind, received.body)

    # answers ---------------------------------------------------------------------------------------
    def _json(self, status: int, data: object, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _hang(self) -> None:
        self.fake.stopping.wait(HANG_LIMIT_S)
        self.close_connection = True

    def _event(self, data: object) -> None:
        line = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.flush()

    def _slow(self, scenario: str) -> None:
        """A word every 50 ms for 10 s, unless the client hangs up: then note how many were written."""
        for written in range(200):
            try:
                self._event(chunk("word "))
            except OSError:
                self.fake.gave_up[scenario] = written
                self.close_connection = True
                return
            if self.fake.stopping.wait(0.05):
                return
        self.wfile.write(b"0\r\n\r\n")

    def _stream(self, kind: str, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._event(chunk())
        if kind == "slow":
            self._slow(self.path.lstrip("/").partition("/")[0])
            return
        if kind == "logprobs":  # a server that returns logprobs (transformers serve ignores the request)
            for n, text in enumerate(ANSWER):
                top = [{"token": text, "logprob": -0.1 * (n + 1), "bytes": None},
                       {"token": "X", "logprob": -2.5, "bytes": None}]  # fmt: skip
                content = [{"token": text, "logprob": -0.1 * (n + 1), "bytes": None, "top_logprobs": top}]
                event = chunk(text)
                event["choices"][0]["logprobs"] = {"content": content}
                self._event(event)
            self._event(chunk(finish="stop"))
            self._event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        if kind in STREAMS:
            for text in STREAMS[kind]:
                self._event(chunk(text))
            self._event(chunk(finish="stop"))
            self._event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        for text in ANSWER[:2]:
            self._event(chunk(text))
        if kind == "drop":  # the connection dies mid-answer: no final chunk of the chunked body
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if kind == "hangmid":
            self._hang()
            return
        if kind != "eof":  # "eof": the body ends cleanly but no finish_reason ever came
            self._event(chunk(ANSWER[2]))
            self._event(chunk(finish="stop"))
            if (body.get("stream_options") or {}).get("include_usage") and kind == "usage":
                self._event(
                    {**chunk(), "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7}}
                )
            self._event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
