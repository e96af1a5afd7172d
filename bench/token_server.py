"""An OpenAI-compatible server that streams at a steady rate: a stand-in for a cloud provider under load.

`POST /v1/chat/completions` with `stream: true` answers `max_tokens` tokens (the word "word "), one
chunk every `token_s` seconds, whatever the prompt; `GET /v1/models` lists one model. Each answer is
recorded: when it began, the tokens asked for and written, and whether the client hung up first.
`GET /stats` returns them as JSON and `POST /reset` forgets them, for a benchmark in another process.
Unlike `transformers serve`, its rate does not depend on the CPU the app and its visitors share, so
a load test against it measures the app's queueing, not the two competing for two cores.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "steady"
WORD = "word "


@dataclass
class Answer:
    """One streamed answer as the server wrote it (times on the monotonic clock)."""

    began: float
    asked: int
    written: int = 0
    ended: float = 0.0
    hung_up: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    token_server: TokenServer

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-answer is expected: stay quiet."""


class TokenServer:
    """A threading HTTP server on 127.0.0.1 (a free port); `close()` stops it."""

    def __init__(self, token_s: float = 0.02, port: int = 0) -> None:
        self.token_s = token_s
        self.answers: list[Answer] = []
        self.active = 0
        self.most_active = 0  # the most answers streaming at once
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.token_server = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The OpenAI base URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def began(self, asked: int) -> Answer:
        answer = Answer(time.monotonic(), asked)
        with self._lock:
            self.answers.append(answer)
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        return answer

    def ended(self, answer: Answer) -> None:
        answer.ended = time.monotonic()
        with self._lock:
            self.active -= 1

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def reset(self) -> None:
        """Forget the answers so far (between the phases of a benchmark)."""
        with self._lock:
            self.answers = []
            self.most_active = self.active

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _chunk(text: str = "", finish: str | None = None) -> dict[str, Any]:
    delta = {"content": text} if text else {}
    return {
        "id": "chatcmpl-steady",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def owner(self) -> TokenServer:
        return self.server.token_server  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        if self.path == "/stats":  # what a benchmark in another process reads
            answers = [vars(a) for a in self.owner.snapshot()]
            self._json(200, {"answers": answers, "most_active": self.owner.most_active})
        elif self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        if self.path == "/reset":
            self.owner.reset()
            self._json(200, {})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions") or not body.get("stream"):
            self._json(404, {"error": {"message": "only streamed chat completions here"}})
            return
        asked = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        answer = self.owner.began(asked)
        try:
            self._stream(answer, bool((body.get("stream_options") or {}).get("include_usage")))
        except OSError:
            answer.hung_up = True
            self.close_connection = True
        finally:
            self.owner.ended(answer)

    def _stream(self, answer: Answer, usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._event(_chunk())
        due = time.monotonic()
        for _ in range(answer.asked):
            due += self.owner.token_s
            if self.owner.stopping.wait(max(0.0, due - time.monotonic())):
                raise OSError("the server is stopping")
            self._event(_chunk(WORD))
            answer.written += 1
        self._event(_chunk(finish="length"))
        if usage:
            counts = {"prompt_tokens": 10, "completion_tokens": answer.written}
            self._event({**_chunk(), "choices": [], "usage": counts})
        self._event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _event(self, data: object) -> None:
        line = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, data: object) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.token_server --port P [--token-ms 20]`: serve until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-ms", type=float, default=20.0, help="milliseconds between tokens")
    args = parser.parse_args(argv)
    server = TokenServer(args.token_ms / 1000, args.port)
    print(f"steady token server on {server.url}", flush=True)
    try:
        server._thread.join()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
