"""The database part: reads on connections of their own never wait for a slow writer; close() closes all."""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from playground.errors import HistoryError
from playground.history import AnswerRecorder, HistoryStore
from playground.types import FinishReason, Metrics

WATCHDOG_S = 20.0


def run_all(*targets: Callable[[], None]) -> None:
    """Run each target in its own thread; fail (instead of hanging) if any is still running after the
    watchdog's time, and re-raise the first exception a target raised."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WATCHDOG_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        pytest.fail(f"a thread was still running after {WATCHDOG_S:.0f} s: a read or write hangs")
    if errors:
        raise errors[0]


def test_a_read_does_not_wait_for_a_slow_writer(store: HistoryStore, alice: str) -> None:
    conversation = store.conversations.create_conversation(alice, "instruct", "before")
    events: list[str] = []
    note = events.append  # list.append is atomic
    writing = threading.Event()
    seen: list[str] = []

    def slow_writer() -> None:
        with store.db.write() as conn:
            conn.execute("UPDATE conversations SET title = 'during' WHERE id = ?", (conversation.id,))
            note("write began")
            writing.set()
            time.sleep(2.0)  # an answer's write held open: the old single lock made every read wait
            note("writer releases")

    def reader() -> None:
        assert writing.wait(WATCHDOG_S), "the writer never began"
        seen.extend(c.title for c in store.conversations.list_conversations(alice))
        note("read done")

    run_all(slow_writer, reader)
    assert events == ["write began", "read done", "writer releases"]
    assert seen == ["before"], "the read sees the last commit, not the write in progress"
    assert [c.title for c in store.conversations.list_conversations(alice)] == ["during"]


def test_writes_take_turns(store: HistoryStore, alice: str) -> None:
    """One writer at a time: a second write waits for the first to commit, and both are kept."""
    conversation = store.conversations.create_conversation(alice, "instruct", "t")
    events: list[str] = []
    writing = threading.Event()

    def slow_writer() -> None:
        with store.db.write() as conn:
            conn.execute("UPDATE conversations SET title = 'first' WHERE id = ?", (conversation.id,))
            writing.set()
            time.sleep(0.5)
            events.append("first commits")

    def second_writer() -> None:
        assert writing.wait(WATCHDOG_S)
        store.conversations.add_message(alice, conversation.id, "user", "second")
        events.append("second wrote")

    run_all(slow_writer, second_writer)
    assert events == ["first commits", "second wrote"]
    kept = store.conversations.get_conversation(alice, conversation.id)
    assert kept.title == "first" and [m.text for m in kept.messages] == ["second"]


def test_close_closes_every_reader(tmp_path: Path, alice: str) -> None:
    """Three reads at once open three readers; after close() no connection is left (SQLite removes the
    WAL file when the last one closes) and a read says the history is closed."""
    path = tmp_path / "history.db"
    store = HistoryStore(path)
    store.conversations.create_conversation(alice, "instruct", "t")
    together = threading.Barrier(3, timeout=WATCHDOG_S)

    def read() -> None:
        with store.db.read() as conn:
            together.wait()  # all three hold a reader at the same moment
            assert conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 1

    run_all(read, read, read)
    assert path.with_name("history.db-wal").exists(), "open connections keep the WAL"
    store.close()
    assert not path.with_name("history.db-wal").exists(), "a connection was left open"
    with pytest.raises(HistoryError, match="closed"):
        store.conversations.list_conversations(alice)


def test_readers_cannot_write(store: HistoryStore) -> None:
    with pytest.raises(HistoryError, match="Reading the history failed"), store.db.read() as conn:
        conn.execute("DELETE FROM conversations")


class ListSink:
    """An AnswerSink that keeps what it was told: the recorder needs nothing more of the store."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def update_message_text(self, owner: str, message_id: str, text: str) -> None:
        self.calls.append(("update", text))

    def finish_message(
        self,
        owner: str,
        message_id: str,
        *,
        finish_reason: FinishReason | str,
        metrics: Metrics | Mapping[str, object] | None = None,
        text: str | None = None,
    ) -> None:
        self.calls.append(("finish", str(finish_reason), str(text)))

    def save_experts(self, owner: str, message_id: str, experts: Mapping[str, object]) -> None:
        self.calls.append(("experts", str(dict(experts))))


def test_the_recorder_writes_through_its_sink_only() -> None:
    sink = ListSink()
    with AnswerRecorder(sink, "owner", "message-1") as recorder:
        recorder.update("Hel")
        recorder.save_experts({"layers": 2})
        recorder.append("lo")
    assert sink.calls == [("update", "Hel"), ("experts", "{'layers': 2}"), ("finish", "stop", "Hello")]
    source = Path(__file__).parents[2] / "playground" / "history" / "recorder.py"
    imported = {
        node.module or ""
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level == 1
    }
    assert imported.isdisjoint({"store", "conversations", "database"}), "no import cycle with the store"
