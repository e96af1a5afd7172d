"""A history file with damaged pages is noticed at start-up, kept aside, and replaced by a fresh one."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from playground.errors import HistoryError
from playground.history import HistoryStore, new_browser_id, open_history
from playground.history.integrity import quick_check
from playground.settings import Settings
from tests.support import ROOT

ROWS = 600


def write_history(path: Path, owner: str) -> None:
    """A real history with many rows, closed cleanly (so the WAL is checkpointed into the file)."""
    with HistoryStore(path) as store:
        for i in range(ROWS // 2):
            conversation = store.conversations.create_conversation(owner, "instruct", f"Question {i}")
            store.conversations.add_message(owner, conversation.id, "user", f"question {i} " + "q" * 300)
            store.conversations.add_message(
                owner, conversation.id, "assistant", f"answer {i} " + "a" * 300, finish_reason="stop"
            )


def damage_a_middle_page(path: Path) -> None:
    """Overwrite the header and first cells of a b-tree page in the middle of the file."""
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    assert pages > 20, "enough pages to damage one in the middle"
    with path.open("r+b") as f:
        f.seek(page_size * (pages // 2))
        f.write(b"\xa5" * 200)


def test_a_damaged_database_is_kept_aside_and_a_fresh_one_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    owner = new_browser_id()
    settings = Settings.from_env({"PLAYGROUND_DATA_DIR": str(tmp_path)})
    path = settings.history_path
    write_history(path, owner)
    assert quick_check(path) is None, "sound before the damage"
    original = path.read_bytes()
    damage_a_middle_page(path)
    damaged = path.read_bytes()
    assert damaged != original and quick_check(path) is not None

    with caplog.at_level(logging.ERROR, logger="playground.history"):
        store = open_history(settings)
    try:
        assert store.damage is not None
        kept = store.damage.kept_as
        assert (
            kept.parent == path.parent and kept.name.startswith("history.damaged-") and kept.suffix == ".db"
        )
        assert kept.read_bytes() == damaged, "the damaged file is kept as it was"
        # The fresh database serves: nothing of the old one, and writes work.
        assert store.conversations.list_conversations(owner) == []
        conversation = store.conversations.create_conversation(owner, "instruct", "After the damage")
        store.conversations.add_message(owner, conversation.id, "user", "still working")
        assert [c.title for c in store.conversations.list_conversations(owner)] == ["After the damage"]
        assert quick_check(path) is None

        message = store.damage.message()
        assert str(path) in message and str(kept) in message and ".recover" in message
        assert "damaged" in store.damage.public_notice() and str(kept) not in store.damage.public_notice()
        logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(logged) == 1 and str(kept) in logged[0] and ".recover" in logged[0]
    finally:
        store.close()


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 command-line tool is not installed")
def test_the_recovery_command_we_print_brings_back_what_can_be_read(tmp_path: Path) -> None:
    owner = new_browser_id()
    settings = Settings.from_env({"PLAYGROUND_DATA_DIR": str(tmp_path)})
    write_history(settings.history_path, owner)
    damage_a_middle_page(settings.history_path)
    store = open_history(settings)
    store.close()
    assert store.damage is not None
    recovered = store.damage.recovered
    subprocess.run(store.damage.recover_command(), shell=True, check=False, capture_output=True, timeout=60)
    if _count(recovered) == 0:  # a sqlite3 built without .recover (Debian's): the .dump way
        recovered.unlink()
        subprocess.run(store.damage.dump_command(), shell=True, check=True, capture_output=True, timeout=60)
    assert quick_check(recovered) is None
    with HistoryStore(recovered) as back:
        found = back.conversations.list_conversations(owner, limit=None)
    assert ROWS // 4 < len(found) <= ROWS // 2, "most conversations come back, none invented"


def _count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_a_sound_database_is_left_alone(tmp_path: Path) -> None:
    owner = new_browser_id()
    settings = Settings.from_env({"PLAYGROUND_DATA_DIR": str(tmp_path)})
    write_history(settings.history_path, owner)
    store = open_history(settings)
    try:
        assert store.damage is None
        assert len(store.conversations.list_conversations(owner, limit=None)) == ROWS // 2
        assert [p.name for p in tmp_path.glob("history.damaged-*")] == []
    finally:
        store.close()


def test_a_file_that_is_not_a_database_is_set_aside_too(tmp_path: Path) -> None:
    settings = Settings.from_env({"PLAYGROUND_DATA_DIR": str(tmp_path)})
    settings.history_path.write_bytes(b"this is not SQLite " * 400)
    store = open_history(settings)
    store.close()
    assert store.damage is not None and store.damage.kept_as.read_bytes().startswith(b"this is not SQLite")


def test_the_history_cli_refuses_a_damaged_file_with_the_recovery_command(tmp_path: Path) -> None:
    from playground.history.cli import _open

    settings = Settings.from_env({"PLAYGROUND_DATA_DIR": str(tmp_path)})
    write_history(settings.history_path, new_browser_id())
    damage_a_middle_page(settings.history_path)
    with pytest.raises(HistoryError, match=r"(?s)is damaged .*\.recover"):
        _open(settings)


READ_ONLY_CHECK = """
import sys
from pathlib import Path
from playground.errors import HistoryError
from playground.history.integrity import check_and_set_aside
try:
    check_and_set_aside(Path(sys.argv[1]))
except HistoryError as exc:
    print(exc)
"""


def test_an_intact_history_in_a_read_only_folder_is_not_called_damaged() -> None:
    """Root writes anywhere, so as root the check runs as `nobody` (setpriv), as a deployment would (in
    a folder of its own under the system's temp: pytest's is private to root)."""
    top = Path(tempfile.mkdtemp(prefix="ro-history-"))
    top.chmod(0o755)
    folder = top / "data"
    folder.mkdir()
    path = folder / "history.db"
    with HistoryStore(path) as store:
        store.conversations.create_conversation(new_browser_id(), "instruct", "kept")
    command = [sys.executable, "-c", READ_ONLY_CHECK, str(path)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root, and no setpriv to drop to another user")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
        left = [p.name for p in folder.iterdir()]
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)
        shutil.rmtree(top, ignore_errors=True)
    if "No module named" in result.stderr or "Permission denied" in result.stderr:
        pytest.skip(f"the unprivileged user cannot run the project here: {result.stderr[-200:]}")
    assert "cannot be written: make PLAYGROUND_DATA_DIR writable" in result.stdout, (
        result.stdout + result.stderr
    )
    assert "damaged" not in result.stdout and left == ["history.db"], "nothing set aside"
