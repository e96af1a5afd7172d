"""The history's SQLite file: one writer, many readers, the migrations, and the checks at start-up.

SQLite in WAL mode lets readers read while one writer writes, but only on connections of their own: on a
shared connection (or behind a shared lock) a reader waits for every write, and an answer being recorded
once a second would hold up every history listing. So writes go through one connection under one lock,
each in a transaction taken at once (BEGIN IMMEDIATE), and each read takes a connection from a small pool
of read-only ones, in a read transaction of its own: it sees one consistent snapshot (the last commit
before it began) and never waits for the writer.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import HistoryError, map_errors
from .migrations import migrate

# Idle readers kept open for the next read; more than this many at once are opened, then closed when done.
IDLE_READERS = 8
UNFINISHED = "SELECT conversation_id FROM messages WHERE role = 'assistant' AND finish_reason IS NULL"


class Database:
    """The SQLite file of the history: `write()` and `read()` hand out its connections."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()  # the writer's
        self._pool_lock = threading.Lock()  # the idle readers' list, never held across a query
        self._idle: list[sqlite3.Connection] = []  # readers between reads
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._open_writer()
        except (sqlite3.Error, OSError) as exc:
            raise HistoryError(
                f"The history database {self.path} cannot be opened ({exc}): check the folder's "
                "permissions, move a damaged file away, or set PLAYGROUND_HISTORY_DB to another path."
            ) from exc

    def __repr__(self) -> str:
        return f"<Database {self.path}{' closed' if self._closed else ''}>"

    def _open_writer(self) -> sqlite3.Connection:
        """The writer: WAL on, foreign keys enforced, the schema migrated."""
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_reader(self) -> sqlite3.Connection:
        """A read-only connection; autocommit, so that read() begins and ends its transaction itself."""
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Close the writer and every reader (one still reading is closed as its read ends)."""
        with self._lock:
            with self._pool_lock:
                self._closed = True
                idle, self._idle = self._idle, []
            for conn in idle:
                conn.close()
            self._writer.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE); rolled back on any error."""
        with (
            self._lock,
            map_errors({sqlite3.Error: HistoryError}, "Writing the history failed"),
            self._writer,
        ):
            self._writer.execute("BEGIN IMMEDIATE")
            yield self._writer

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A reader of its own for one read transaction: one snapshot, never waiting for the writer."""
        with map_errors({sqlite3.Error: HistoryError}, "Reading the history failed"):
            conn = self._take_reader()
            try:
                conn.execute("BEGIN")
                yield conn
            finally:
                self._give_back(conn)

    def _take_reader(self) -> sqlite3.Connection:
        with self._pool_lock:
            if self._closed:
                raise HistoryError("The history is closed: restart the playground.")
            if self._idle:
                return self._idle.pop()
        return self._open_reader()  # outside the pool's lock: opening may wait on the file

    def _give_back(self, conn: sqlite3.Connection) -> None:
        """End the read transaction; keep the reader for the next read, or close it."""
        try:
            if conn.in_transaction:
                conn.rollback()
        except sqlite3.Error:
            keep = False  # a reader that cannot end its transaction is not reused
        else:
            keep = True
        with self._pool_lock:
            keep = keep and not self._closed and len(self._idle) < IDLE_READERS
            if keep:
                self._idle.append(conn)
        if not keep:
            conn.close()

    # At start-up, and for the machine's owner

    def integrity_check(self) -> str:
        """SQLite's own check: 'ok' when the file is sound."""
        with self.read() as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

    def recover_interrupted(self) -> int:
        """At start-up: mark answers left without a finish reason (the process died) as interrupted."""
        with self.write() as conn:
            return int(
                conn.execute(
                    "UPDATE messages SET finish_reason = 'interrupted' "
                    "WHERE role = 'assistant' AND finish_reason IS NULL"
                ).rowcount
            )

    def delete_expired(
        self, *, max_age_days: float | None = None, max_count: int | None = None, now: datetime | None = None
    ) -> int:
        """Delete conversations older than max_age_days, then all but each owner's newest max_count.

        One transaction; a conversation with an answer still streaming is never deleted; a battle goes with
        its conversations (the schema cascades). Returns how many conversations were deleted. The image
        files they alone used stay until `ImageStore.prune_images` (HistoryStore.apply_retention calls it).
        """
        conditions: list[tuple[str, tuple[Any, ...]]] = []
        if max_age_days is not None:
            cutoff = (now or datetime.now(UTC)) - timedelta(days=max_age_days)
            conditions.append(("updated_utc < ?", (cutoff.isoformat(timespec="microseconds"),)))
        if max_count is not None:
            conditions.append(
                (
                    "id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY owner "
                    "ORDER BY updated_utc DESC, id DESC) AS rank FROM conversations) WHERE rank > ?)",
                    (max(0, int(max_count)),),
                )
            )
        if not conditions:
            return 0
        deleted = 0
        with self.write() as conn:
            for condition, params in conditions:
                deleted += conn.execute(
                    f"DELETE FROM conversations WHERE id NOT IN ({UNFINISHED}) AND {condition}", params
                ).rowcount
        return int(deleted)
