"""The history store: one SQLite file (WAL) and its image folder, held as parts split by what they keep.

- `store.db` (database.py): the file itself: the writer and the readers, migrations, integrity, the
  start-up repairs (answers left by a dead process, retention's deletions).
- `store.conversations` (conversations.py): conversations and their messages, answers as they stream
  (the recorder's sink), expert maps, imports.
- `store.battles` (battles.py): the Arena's rounds and votes, the leaderboard's rated rounds, the
  dataset's rounds read back.
- `store.quota` (quota.py): what each visitor keeps, checked against the public quota.
- `store.images` (image_store.py): the visitors' image files, stored once, removed when unused.
- `store.evals` (evals.py): evaluation runs, what each model measured, and their results.

Every method that reads or writes a visitor's data takes `owner` and filters by it: another owner's
conversation behaves exactly as one that does not exist. What spans the parts (deleting an owner's
everything, retention with its image files) is here.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .battles import BattleStore
from .conversations import ConversationStore
from .database import Database
from .evals import EvalStore
from .image_store import ImageStore
from .integrity import DamagedDatabase
from .quota import Quota, QuotaKeeper
from .rows import check_owner
from .sql import refs_of


class HistoryStore:
    """Conversations, messages, arena battles and votes in one SQLite file, plus its image folder."""

    def __init__(
        self, path: Path | str, *, images_dir: Path | None = None, quota: Quota | None = None
    ) -> None:
        self.path = Path(path)
        self.damage: DamagedDatabase | None = None  # set by open_history when the old file was set aside
        self.db = Database(self.path)
        self.images = ImageStore(self.db, images_dir or self.path.parent / "images")
        self.quota = QuotaKeeper(self.db, self.images, quota)  # per owner (public mode)
        self.conversations = ConversationStore(self.db, self.images, self.quota)
        self.battles = BattleStore(self.db, self.quota)
        self.evals = EvalStore(self.db)

    def __repr__(self) -> str:
        return f"<HistoryStore {self.path}>"

    def close(self) -> None:
        """Close every connection to the file."""
        self.db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def delete_owner_data(self, owner: str) -> int:
        """Delete everything this owner has: conversations, battles, votes, evaluation runs, unshared images;
        how many conversations went."""
        with self.db.write() as conn:
            refs = refs_of(conn, "c.owner = ?", (check_owner(owner),))
            conn.execute("DELETE FROM votes WHERE owner = ?", (owner,))
            conn.execute("DELETE FROM battles WHERE owner = ?", (owner,))
            conn.execute("DELETE FROM eval_runs WHERE owner = ?", (owner,))
            deleted = conn.execute("DELETE FROM conversations WHERE owner = ?", (owner,)).rowcount
        self.images.prune(refs)
        return int(deleted)

    def apply_retention(
        self, *, max_age_days: float | None = None, max_count: int | None = None, now: datetime | None = None
    ) -> int:
        """Delete conversations older than max_age_days, then all but each owner's newest max_count
        (never one still streaming), then the image files no message uses; how many conversations went."""
        if max_age_days is None and max_count is None:
            return 0
        deleted = self.db.delete_expired(max_age_days=max_age_days, max_count=max_count, now=now)
        self.images.prune_images()
        return deleted
