"""How much history one visitor may keep on a public deployment: conversations and bytes.

The store checks the quota before it writes a new conversation (a chat, an arena battle's two, an import's
all) or a new question; an answer is never refused (it is written while it streams, and losing it would be
worse than going a little over), so a visitor may end up one answer past the byte quota. Bytes are what
the store keeps for the visitor: the UTF-8 text of their messages plus each image file they use, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import HistoryFullError

if TYPE_CHECKING:
    from ..settings import Limits

__all__ = ["HistoryFullError", "Quota", "Usage"]


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
