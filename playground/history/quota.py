"""How much history one visitor may keep on a public deployment: conversations and bytes.

The store checks the quota before it writes a new conversation (a chat, an arena battle's two, an import's
all) or a new question; an answer is never refused (it is written while it streams, and losing it would be
worse than going a little over), so a visitor may end up one answer past the byte quota. Bytes are what
the store keeps for the visitor: the UTF-8 text of their messages plus each image file they use, once.

`Quota` and `Usage` are values; `QuotaKeeper` is the store's part that measures an owner's usage and
checks it, inside the transaction of the write it guards (`check_in`), so that two writes at once cannot
both pass a check that only one of them fits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import HistoryFullError
from .database import Database
from .image_store import ImageStore
from .rows import check_owner
from .sql import refs_of

if TYPE_CHECKING:
    from ..settings import Limits

__all__ = ["HistoryFullError", "Quota", "QuotaKeeper", "Usage"]


@dataclass(frozen=True)
class Usage:
    """What one owner keeps now."""

    conversations: int
    bytes: int


@dataclass(frozen=True)
class Quota:
    """The most one owner may keep: conversations and bytes (None: no limit)."""

    conversations: int | None = None
    bytes: int | None = None

    @classmethod
    def from_limits(cls, limits: Limits) -> Quota | None:
        """PLAYGROUND_VISITOR_CONVERSATIONS and PLAYGROUND_VISITOR_HISTORY_MB; None when both are off."""
        size = None if limits.history_mb is None else int(limits.history_mb * 1e6)
        if limits.history_conversations is None and size is None:
            return None
        return cls(limits.history_conversations, size)

    def check(self, usage: Usage, *, conversations: int = 0, size: int = 0) -> None:
        """HistoryFullError when `conversations` more and `size` more bytes would pass the quota."""
        if (
            self.conversations is not None
            and conversations
            and (usage.conversations + conversations > self.conversations)
        ):
            adding = "" if conversations == 1 else f" (this adds {conversations})"
            raise HistoryFullError(
                f"Your history holds {usage.conversations} conversation(s){adding}; this server keeps at "
                f"most {self.conversations} per visitor. {ADVICE}"
            )
        if self.bytes is not None and size and usage.bytes + size > self.bytes:
            raise HistoryFullError(
                f"Your history holds {_mb(usage.bytes)} MB and this adds {_mb(size)} MB; this server keeps "
                f"at most {_mb(self.bytes)} MB per visitor. {ADVICE}"
            )


ADVICE = (
    "Delete old conversations in the History tab (export them first to keep a copy), or tick "
    "Incognito to chat without saving."
)


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f}".rstrip("0").removesuffix(".") or "0"


class QuotaKeeper:
    """What each owner keeps, checked against the quota (public mode); `limits` None: no limit."""

    def __init__(self, db: Database, images: ImageStore, limits: Quota | None) -> None:
        self.db = db
        self.images = images
        self.limits = limits

    def usage(self, owner: str) -> Usage:
        """What this owner keeps: conversations, and bytes (message texts, plus each image file once)."""
        with self.db.read() as conn:
            return self._usage(conn, check_owner(owner))[0]

    def _usage(self, conn: sqlite3.Connection, owner: str) -> tuple[Usage, set[str]]:
        """The owner's usage, and the image references it counts."""
        count, text_bytes = conn.execute(
            "SELECT COUNT(DISTINCT c.id), COALESCE(SUM(LENGTH(CAST(m.text AS BLOB))), 0) "
            "FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id WHERE c.owner = ?",
            (owner,),
        ).fetchone()
        refs = refs_of(conn, "c.owner = ?", (owner,))
        return Usage(int(count), int(text_bytes) + sum(self.images.size(r) for r in refs)), refs

    def check_quota(self, owner: str, *, conversations: int = 0, texts: Sequence[str] = ()) -> None:
        """HistoryFullError when this owner cannot keep `conversations` more with these texts (a check
        before slow work, such as storing an import's images; the write checks again)."""
        with self.db.read() as conn:
            self.check_in(conn, owner, conversations=conversations, texts=texts)

    def check_in(
        self,
        conn: sqlite3.Connection,
        owner: str,
        *,
        conversations: int = 0,
        texts: Sequence[str] = (),
        refs: Sequence[str] = (),
    ) -> None:
        """HistoryFullError (before anything is written) when this would pass the owner's quota; on the
        connection of the transaction about to write it."""
        quota = self.limits
        if quota is None or (quota.bytes is None and not (quota.conversations and conversations)):
            return
        usage, kept = self._usage(conn, check_owner(owner))
        added = sum(len(t.encode("utf-8", "replace")) for t in texts)
        added += sum(self.images.size(r) for r in set(refs) - kept)
        quota.check(usage, conversations=conversations, size=added)
