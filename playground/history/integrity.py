"""Damage noticed at start-up: `PRAGMA quick_check` on the history file before the app uses it.

A file with damaged pages opens and serves, then fails later with "database disk image is malformed"
in the middle of a visitor's answer. Checked at start instead, a damaged file is kept (renamed aside
with a timestamp, its WAL beside it) and a fresh database starts in its place; the log and the History
tab say where the old one is and how to recover what can be read from it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import HistoryError

# Besides the database itself, SQLite in WAL mode keeps committed pages in `-wal` (and an index in
# `-shm`): both travel with the file, so that `.recover` sees everything that was written.
SIDE_FILES = ("-wal", "-shm")


@dataclass(frozen=True)
class DamagedDatabase:
    """A history file found damaged at start-up, and where it was kept."""

    path: Path
    kept_as: Path
    problem: str

    @property
    def recovered(self) -> Path:
        """Where the recovery commands write what they could read."""
        return self.path.with_name(self.kept_as.stem + "-recovered.db")

    def recover_command(self) -> str:
        """SQLite's own recovery (`.recover` reads every page it can, damaged tables included)."""
        return f"sqlite3 {_q(self.kept_as)} .recover | sqlite3 {_q(self.recovered)}"

    def dump_command(self) -> str:
        """For a sqlite3 tool built without `.recover` (Debian's answers "SQL logic error"): `.dump`
        reads every row it can, then ends with ROLLBACK because of the damage; commit instead."""
        return (
            f"sqlite3 {_q(self.kept_as)} .dump | sed 's/^ROLLBACK; -- due to errors$/COMMIT;/' "
            f"| sqlite3 {_q(self.recovered)}"
        )

    def message(self) -> str:
        """For the operator (the log, a local page): where the file is and how to recover it."""
        return (
            f"The history database {self.path} is damaged ({self.problem}). It was kept as {self.kept_as} "
            f"and a fresh, empty history started in its place. To recover what can be read, run "
            f"`{self.recover_command()}` (if your sqlite3 lacks .recover: `{self.dump_command()}`), check "
            f"the result with `sqlite3 {_q(self.recovered)} 'PRAGMA quick_check'`, then stop the "
            f"playground and move it to {self.path} (or point PLAYGROUND_HISTORY_DB at it)."
        )

    def public_notice(self) -> str:
        """For a visitor of a public deployment: no server paths."""
        return (
            "The history database was found damaged at start-up and set aside; a fresh one started. "
            "Conversations from before then are not shown until the operator recovers them."
        )


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def quick_check(path: Path) -> str | None:
    """The first problem `PRAGMA quick_check` finds in an existing database file, or None if it is sound.

    A file that is not a database at all counts as damaged. A file that cannot be opened for another
    reason (permissions, a missing folder) raises HistoryError: that is not damage to set aside.
    """
    try:
        conn = sqlite3.connect(path, timeout=30.0)
    except sqlite3.Error as exc:
        raise HistoryError(f"The history database {path} cannot be opened ({exc}).") from exc
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if not _writable(path):  # an intact file in a read-only place is not damaged
            raise HistoryError(
                f"The history database {path} (or its folder) cannot be written: make "
                "PLAYGROUND_DATA_DIR writable, or set PLAYGROUND_HISTORY_DB to a writable path."
            ) from exc
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise HistoryError(
                f"The history database {path} is locked by another process: stop it, or set "
                "PLAYGROUND_HISTORY_DB to another path."
            ) from exc
        return str(exc)
    finally:
        conn.close()
    problems = [str(row[0]) for row in rows]
    if problems == ["ok"]:
        return None
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def _writable(path: Path) -> bool:
    """Whether the database and its folder (for the WAL files) can be written by this process."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def set_aside(path: Path, *, now: datetime | None = None) -> Path:
    """Rename a damaged database (and its WAL files) to `<name>.damaged-<UTC time>.db`; the new path."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    kept = path.with_name(f"{path.stem}.damaged-{stamp}{path.suffix or '.db'}")
    number = 1
    while kept.exists():
        number += 1
        kept = path.with_name(f"{path.stem}.damaged-{stamp}-{number}{path.suffix or '.db'}")
    try:
        path.rename(kept)
        for suffix in SIDE_FILES:
            side = path.with_name(path.name + suffix)
            if side.exists():
                with contextlib.suppress(FileNotFoundError):
                    side.rename(kept.with_name(kept.name + suffix))
    except OSError as exc:
        raise HistoryError(
            f"The history database {path} is damaged and could not be moved aside ({exc.strerror}): "
            "move it away by hand, or set PLAYGROUND_HISTORY_DB to another path."
        ) from exc
    return kept


def check_and_set_aside(path: Path) -> DamagedDatabase | None:
    """At start-up: a damaged file is kept aside and described; a sound (or absent) one is left alone."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    problem = quick_check(path)
    if problem is None:
        return None
    return DamagedDatabase(path, set_aside(path), problem)
