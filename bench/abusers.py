"""The abusers of issue 17 for bench/load.py: clients that ask no answer but make the server work, keep
memory or fill its disk, through the page's own events and routes (raw HTTP, as a script would).

- `show-prompt`: 4 sessions at once press Show prompt with a 2 MB question in the box (refused at the
  door), then with 0.9 MB (under the body bound: the prompt view refuses it by PLAYGROUND_PROMPT_CHARS),
  again and again, reading each result;
- `upload-flood`: 60 uploads of 19.5 MB (each under PLAYGROUND_UPLOAD_MB), 4 at a time;
- `stored-questions`: 100 fresh sessions press Send with a 2 MB question, then a 0.9 MB one, then one of
  the longest length a question may have, asking no answer;
- `fresh-imports`: 20 fresh page loads (each a new visitor id: the page-load event, then the upload,
  then the import of a 4.8 MB export of 20 conversations).

Each runs in a thread beside the visitors until it has done its count (or the visitors are done, for
`show-prompt`) and reports its calls: attempted, admitted (the event ran) and refused, by HTTP status and
rule. `Footprint` reads the server's resident memory and the size of its data and upload folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

KINDS = ("show-prompt", "upload-flood", "stored-questions", "fresh-imports")


@dataclass(frozen=True)
class Sizes:
    """How much each abuser does (the defaults: the findings of issue 17; tests pass smaller ones)."""

    big: int = 2_000_000  # characters: past the 1 MB body bound
    under: int = 900_000  # characters: under the body bound, over PLAYGROUND_PROMPT_CHARS
    question: int = 8_000  # PLAYGROUND_PROMPT_CHARS' public default: the longest question taken
    show_prompt_sessions: int = 4
    uploads: int = 60
    upload_mb: float = 19.5  # each under PLAYGROUND_UPLOAD_MB
    uploads_at_once: int = 4
    stored_sessions: int = 100
    imports: int = 20
    import_mb: float = 4.8


ADDRESSES = {kind: f"203.0.113.{n}" for n, kind in enumerate(KINDS, start=10)}


@dataclass
class Calls:
    """What one abuser's calls got: attempted, admitted (ran) and refused by status and rule."""

    attempts: int = 0
    admitted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)  # each admitted call, until its result

    def __post_init__(self) -> None:
        self.lock = threading.Lock()  # not a field: asdict() leaves it out

    def refuse(self, kind: str) -> None:
        with self.lock:
            self.refused[kind] = self.refused.get(kind, 0) + 1

    def admit(self, seconds: float) -> None:
        with self.lock:
            self.admitted += 1
            self.seconds.append(seconds)

    def attempt(self) -> None:
        with self.lock:
            self.attempts += 1


def _kind(status: int, detail: str) -> str:
    words = detail.lower()
    for rule, marker in (
        ("body", "larger than"),
        ("upload budget", "has uploaded"),
        ("question length", "characters"),
        ("import cap", "has imported"),
        ("address history", "has written"),
        ("history", "history holds"),
        ("work", "waiting or running"),
    ):
        if marker in words:
            return f"{status} {rule}"
    return f"{status} other: {detail[:60]}"


# The page's events, found in /config


@dataclass(frozen=True)
class Event:
    fn_index: int
    inputs: tuple[dict[str, Any], ...]  # the input components' config
    queued: bool


def find_event(config: dict[str, Any], name: str, second_input: str | None = None) -> Event:
    """The first event whose api_name is `name` or Gradio's numbered form of it (`name_2`) and, when
    given, whose second input is a component of that type (the Instruct tab's textbox rather than the
    Vision tab's)."""
    components = {c["id"]: c for c in config["components"]}
    for dep in config["dependencies"]:
        inputs = tuple(components[i] for i in dep["inputs"])
        if not re.fullmatch(rf"{re.escape(name)}(_\d+)?", str(dep.get("api_name") or "")):
            continue
        if second_input is not None and (len(inputs) < 2 or inputs[1]["type"] != second_input):
            continue
        return Event(int(dep["id"]), inputs, dep.get("queue") is not False)
    raise LookupError(f"no event {name!r} in the app's config")


def defaults(event: Event, **values: Any) -> list[Any]:
    """The event's inputs as the page sends them untouched (states as None), then `values` by label
    ("Model") or by position ("at_1")."""
    data = [None if c["type"] in ("state",) else c.get("props", {}).get("value") for c in event.inputs]
    for key, value in values.items():
        if key.startswith("at_"):
            data[int(key[3:])] = value
        else:
            labels = [c.get("props", {}).get("label") for c in event.inputs]
            data[labels.index(key)] = value
    return data


class RawSession:
    """One page session by hand: an event called as the page calls it, its result read to the end."""

    def __init__(self, url: str, http: httpx.Client) -> None:
        self.url, self.http = url, http
        self.session = uuid.uuid4().hex[:11]
        self.api = url + "gradio_api"

    def call(self, event: Event, data: list[Any], calls: Calls) -> Any:
        """The event's output data, or None when it was refused (counted in `calls`): at the door (an
        HTTP status) or by the handler (an error in its result)."""
        body = {"data": data, "fn_index": event.fn_index, "session_hash": self.session,
                "event_data": None, "trigger_id": None}  # fmt: skip
        content = json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        calls.attempt()
        began = time.monotonic()
        try:
            route = "/queue/join" if event.queued else "/run/predict"
            response = self.http.post(self.api + route, content=content, headers=headers)
            if response.status_code != 200:
                return self._refused(response, calls)
            if event.queued:
                ok, outcome = self._read(response.json()["event_id"])
            else:
                result = response.json()
                ok, outcome = "error" not in result, result.get("data", result.get("error"))
        except httpx.HTTPError as exc:
            calls.refuse(f"error {type(exc).__name__}")
            return None
        if not ok:
            calls.refuse(_kind(200, str(outcome)))
            return None
        calls.admit(time.monotonic() - began)
        return outcome

    def _refused(self, response: httpx.Response, calls: Calls) -> None:
        try:
            detail = str(response.json().get("detail") or response.json().get("error"))
        except ValueError:
            detail = response.text
        calls.refuse(_kind(response.status_code, detail))

    def _read(self, event_id: str) -> tuple[bool, Any]:
        """(success, its data or error) of a queued call, from the session's result stream."""
        params = {"session_hash": self.session}
        with self.http.stream("GET", self.api + "/queue/data", params=params) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    output = message.get("output") or {}
                    success = bool(message.get("success", "error" not in output))
                    return success, output.get("data") if success else output.get("error")
        return False, "the result stream ended"

    def upload(self, name: str, content: bytes, calls: Calls) -> str | None:
        """The server path of an uploaded file, or None (refused, counted)."""
        calls.attempt()
        began = time.monotonic()
        try:
            response = self.http.post(self.api + "/upload", files={"files": (name, content)})
        except httpx.HTTPError as exc:
            calls.refuse(f"error {type(exc).__name__}")
            return None
        if response.status_code != 200:
            self._refused(response, calls)
            return None
        calls.admit(time.monotonic() - began)
        return str(response.json()[0])


# Resident memory and disk


@dataclass
class Footprint:
    """The server's resident memory (MB) and the size of its data and upload folders (MB)."""

    rss_mb: float
    data_mb: float
    uploads_mb: float


@dataclass(frozen=True)
class Watch:
    """Where to read a server's footprint: its process, its data folder and Gradio's upload folder."""

    pid: int
    data: Path
    uploads: Path

    def read(self) -> Footprint:
        """SQLite's write-ahead log is left out of the data folder: it is emptied at each checkpoint."""
        return Footprint(_rss_mb(self.pid), folder_mb(self.data, skip=WAL), folder_mb(self.uploads))


class PeakMemory(threading.Thread):
    """The server's largest resident memory while it runs, read every `every_s` seconds."""

    def __init__(self, pid: int, every_s: float = 0.25) -> None:
        super().__init__(name="peak-memory", daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak_mb = _rss_mb(pid)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, _rss_mb(self.pid))

    def finish(self) -> float:
        self.done.set()
        self.join()
        return self.peak_mb


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


WAL = ("-wal", "-shm")


def folder_mb(folder: Path, skip: tuple[str, ...] = ()) -> float:
    """The files under `folder` (but those whose names end with one of `skip`), in MB."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            if skip and name.endswith(skip):
                continue
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total / 1e6


# The abusers


class EventAbuser(threading.Thread):
    """One abuser: `kind` of KINDS against the app at `url`; `workdir` for the files it sends."""

    def __init__(self, url: str, kind: str, workdir: Path, model: str, sizes: Sizes = Sizes()) -> None:
        super().__init__(name=f"abuser-{kind}", daemon=True)
        self.url, self.kind, self.workdir, self.model, self.sizes = url, kind, workdir, model, sizes
        self.calls = Calls()
        self.stop = threading.Event()
        # each abuser from an address of its own (the app trusts X-Forwarded-For, as on a Space), so one
        # abuser's per-address counts do not start the next one's phase
        headers = {"x-forwarded-for": ADDRESSES[kind]}
        self.http = httpx.Client(timeout=httpx.Timeout(120, connect=10), headers=headers)
        self.config = self.http.get(url + "config").json()

    def run(self) -> None:
        runs: dict[str, Callable[[], None]] = {
            "show-prompt": self.show_prompt,
            "upload-flood": self.upload_flood,
            "stored-questions": self.stored_questions,
            "fresh-imports": self.fresh_imports,
        }
        runs[self.kind]()

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=300)
        self.http.close()

    def show_prompt(self) -> None:
        event = find_event(self.config, "open_prompt", second_input="textbox")
        sizes = self.sizes

        def press(_: int) -> None:
            session = RawSession(self.url, self.http)
            while not self.stop.is_set():
                for size in (sizes.big, sizes.under):
                    session.call(event, defaults(event, Model=self.model, at_1="x" * size), self.calls)

        with ThreadPoolExecutor(sizes.show_prompt_sessions) as pool:
            list(pool.map(press, range(sizes.show_prompt_sessions)))

    def upload_flood(self) -> None:
        base = os.urandom(int(self.sizes.upload_mb * 1e6))

        def send(n: int) -> None:  # each file different: Gradio keeps one copy of identical uploads
            content = n.to_bytes(8, "big") + base[8:]
            RawSession(self.url, self.http).upload(f"flood-{n}.bin", content, self.calls)

        with ThreadPoolExecutor(self.sizes.uploads_at_once) as pool:
            list(pool.map(send, range(self.sizes.uploads)))

    def stored_questions(self) -> None:
        event = find_event(self.config, "add_question", second_input="state")
        for _ in range(self.sizes.stored_sessions):
            session = RawSession(self.url, self.http)
            for size in (self.sizes.big, self.sizes.under, self.sizes.question):
                session.call(event, defaults(event, at_0="x" * size), self.calls)

    def fresh_imports(self) -> None:
        export = export_file(self.workdir / "export.json", self.sizes.import_mb)
        content = export.read_bytes()
        load = find_event(self.config, "load")
        importer = find_event(self.config, "import_file")
        for _ in range(self.sizes.imports):
            session = RawSession(self.url, self.http)
            session.call(load, [None], Calls())  # the page load: a new visitor id, server-side
            path = session.upload(export.name, content, Calls())
            if path is None:
                self.calls.attempt()
                self.calls.refuse("upload refused")
                continue
            file = {"path": path, "orig_name": export.name, "meta": {"_type": "gradio.FileData"}}
            session.call(importer, defaults(importer, at_0=file, at_2=""), self.calls)


def export_file(path: Path, megabytes: float) -> Path:
    """A valid history export of about `megabytes`: 20 conversations of 7,000-character messages (at
    least one each)."""
    from playground.history import HistoryStore, new_browser_id
    from playground.history.export import export_json

    with HistoryStore(path.parent / "export-source.db") as store:
        owner = new_browser_id()
        per = max(1, int(megabytes * 1e6 / 20 / 7_000))
        for n in range(20):
            conversation = store.conversations.create_conversation(owner, "instruct", f"notes {n}")
            for i in range(per):
                role = "user" if i % 2 == 0 else "assistant"
                store.conversations.add_message(owner, conversation.id, role, "y" * 7_000)
        path.write_text(export_json(store, owner), encoding="utf-8")
    return path
