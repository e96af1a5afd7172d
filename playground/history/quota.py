"""How much history one visitor may keep on a public deployment: conversations and bytes.

The store checks the quota before it writes a new conversation (a chat, an arena battle's two, an import's
all) or a new question; an answer is never refused (it is written while it streams, and losing it would be
worse than going a little over), so a visitor may end up one answer past the byte quota. Bytes are what
the store keeps for the visitor: the UTF-8 text of their messages plus each image file they use, once.

`Quota` and `Usage` are values; `QuotaKeeper` is the store's part that measures an owner's usage and
checks it, inside the transaction of the write it guards (`check_in`), so that two writes at once cannot
both pass a check that only one of them fits.

A new page load is a new visitor with an empty quota, so the bytes written also count per client address
(`AddressLedger`): the handlers that know a visitor's address note it, and every question, import and
answer that visitor writes counts against PLAYGROUND_ADDRESS_HISTORY_MB a UTC day (in memory; answers are
counted, never refused).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import HistoryFullError
from ..public.daily import DailyCounter
from .database import Database
from .image_store import ImageStore
from .rows import check_owner
from .sql import refs_of

if TYPE_CHECKING:
    from ..settings import Limits

__all__ = ["AddressLedger", "HistoryFullError", "Quota", "QuotaKeeper", "Usage"]


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
    address_bytes: int | None = None  # written a UTC day from one client address

    @classmethod
    def from_limits(cls, limits: Limits) -> Quota | None:
        """PLAYGROUND_VISITOR_CONVERSATIONS, PLAYGROUND_VISITOR_HISTORY_MB and
        PLAYGROUND_ADDRESS_HISTORY_MB; None when all are off."""
        size = None if limits.history_mb is None else int(limits.history_mb * 1e6)
        per_address = None if limits.address_history_mb is None else int(limits.address_history_mb * 1e6)
        if limits.history_conversations is None and size is None and per_address is None:
            return None
        return cls(limits.history_conversations, size, per_address)

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
        self.addresses = AddressLedger(None if limits is None else limits.address_bytes)

    def usage(self, owner: str) -> Usage:
        """What this owner keeps: conversations, and bytes (message texts, plus each image file once)."""
        with self.db.read() as conn:
            return self._usage(conn, check_owner(owner))[0]

    def _usage(self, conn: sqlite3.Connection, owner: str) -> tuple[Usage, set[str]]:
        """The owner's usage, and the image references it counts."""
        count, text_bytes = conn.execute(
            "SELECT COUNT(DISTINCT c.id), "
            "COALESCE(SUM(LENGTH(CAST(m.text AS BLOB)) + COALESCE(LENGTH(m.tokens_json), 0)), 0) "
            "FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id WHERE c.owner = ?",
            (owner,),
        ).fetchone()
        refs = refs_of(conn, "c.owner = ?", (owner,))
        return Usage(int(count), int(text_bytes) + sum(self.images.size(r) for r in refs)), refs

    def check_quota(self, owner: str, *, conversations: int = 0, texts: Sequence[str] = ()) -> None:
        """HistoryFullError when this owner cannot keep `conversations` more with these texts (a check
        before slow work, such as storing an import's images; the write checks again)."""
        with self.db.read() as conn:
            self.check_in(conn, owner, conversations=conversations, texts=texts, count=False)

    def check_in(
        self,
        conn: sqlite3.Connection,
        owner: str,
        *,
        conversations: int = 0,
        texts: Sequence[str] = (),
        refs: Sequence[str] = (),
        count: bool = True,
    ) -> None:
        """HistoryFullError (before anything is written) when this would pass the owner's quota; on the
        connection of the transaction about to write it. `count`: the write follows, so its bytes count
        against the owner's address today (False: a check before slow work, which writes later)."""
        quota = self.limits
        if quota is None:
            return
        usage, kept = self._usage(conn, check_owner(owner))
        added = sum(len(t.encode("utf-8", "replace")) for t in texts)
        added += sum(self.images.size(r) for r in set(refs) - kept)
        quota.check(usage, conversations=conversations, size=added)
        self.addresses.take(owner, added, count=count)


class AddressLedger:
    """The history bytes each client address wrote today (UTC), through every visitor id it used.

    `note` ties a visitor id to its address (the latest `MAX_OWNERS` ids are remembered); `take` refuses
    a write past the address's bytes a day or counts it; `add` counts what is never refused (an answer).
    A visitor id with no known address (the CLI, a test) counts nowhere."""

    MAX_OWNERS = 100_000

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.today = DailyCounter()
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._counting = threading.Lock()  # a check and its count as one step

    def note(self, owner: str, address: str) -> None:
        if self.limit is None:
            return
        with self._lock:
            self._owners[owner] = address
            self._owners.move_to_end(owner)
            while len(self._owners) > self.MAX_OWNERS:
                self._owners.popitem(last=False)

    def address(self, owner: str) -> str | None:
        with self._lock:
            return self._owners.get(owner)

    def take(self, owner: str, size: int, *, count: bool = True) -> None:
        """Count `size` more bytes for the owner's address (when `count`), or HistoryFullError past its
        day's bytes."""
        address = self.address(owner)
        if self.limit is None or address is None or size <= 0:
            return
        with self._counting:
            written = self.today.count(address)
            if written + size > self.limit:
                raise HistoryFullError(
                    f"Your network address has written {_mb(written)} MB of history today and this adds "
                    f"{_mb(size)} MB; this server keeps at most {_mb(self.limit)} MB a day per address. "
                    "Tick Incognito to chat without saving, or try again tomorrow (UTC)."
                )
            if count:
                self.today.add(address, size)

    def add(self, owner: str, size: int) -> None:
        """Count bytes that are written whatever the count (an answer)."""
        address = self.address(owner)
        if self.limit is not None and address is not None and size > 0:
            self.today.add(address, size)
