"""A real process killed with SIGKILL mid-answer loses at most the last second of the answer."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playground.history import HistoryStore, new_browser_id
from tests.support import MODELS_DIR, ROOT

from ._writer import QUESTION

WRITER = Path(__file__).with_name("_writer.py")
WANTED_CHARS = 300  # about four seconds of answer on 2 cores
SLACK_S = 0.5  # scheduling noise on a busy machine, on top of the one-second write interval
KILL_DELAY_S = 2.2  # after the partial answer is seen: long enough for a 3-second interval to fail


def partial_answer(db: Path) -> tuple[str, str | None] | None:
    """The answer as a reader in another process sees it now."""
    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
            row = conn.execute("SELECT text, finish_reason FROM messages WHERE role = 'assistant'").fetchone()
    except sqlite3.OperationalError:  # the writer is still creating the tables
        return None
    return None if row is None else (row[0], row[1])


def logged_before(log: Path, moment: float) -> int:
    """The length of the answer the writer had produced by `moment`."""
    lengths = [
        int(n) for t, n in (line.split() for line in log.read_text().splitlines()) if float(t) <= moment
    ]
    return max(lengths, default=0)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_mid_answer_keeps_the_question_and_the_partial_answer(
    tmp_path: Path, embedded_onnx_folder: Path
) -> None:
    owner, db, log = new_browser_id(), tmp_path / "history.db", tmp_path / "writer.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with (tmp_path / "writer.err").open("w") as err:
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), str(tmp_path), str(MODELS_DIR), owner, str(log)],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 240
            while (seen := partial_answer(db)) is None or len(seen[0]) < WANTED_CHARS:
                assert writer.poll() is None, (tmp_path / "writer.err").read_text()[-3000:]
                assert time.monotonic() < deadline, "the writer produced no long partial answer in 4 minutes"
                time.sleep(0.05)
            time.sleep(KILL_DELAY_S)  # kill at a moment unrelated to the writes
            killed_at = time.time()
            writer.send_signal(signal.SIGKILL)
        finally:
            writer.kill()
            writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert seen[1] is None, "the answer finished before the kill: make it longer"

    with HistoryStore(db) as restarted:  # what the app does at start-up
        assert restarted.db.integrity_check() == "ok"
        assert restarted.db.recover_interrupted() == 1
        (summary,) = restarted.conversations.list_conversations(owner)
        question, answer = restarted.conversations.get_conversation(owner, summary.id).messages
    assert (question.role, question.text) == ("user", QUESTION)
    assert answer.role == "assistant" and answer.finish_reason == "interrupted"
    assert answer.text.startswith(seen[0]) and len(answer.text) >= WANTED_CHARS
    assert answer.model == "smollm2-135m-instruct@onnx" and answer.parameters["max_new_tokens"] == 3000
    # At most the last second is missing: everything produced a second (plus slack) before the kill is kept.
    assert len(answer.text) >= logged_before(log, killed_at - 1.0 - SLACK_S) > 0
