"""The conversation history: a SQLite store, crash-safe answer recording, export and import."""

from __future__ import annotations

from ..settings import Settings
from .identity import (
    BROWSER_STATE_KEY,
    browser_owner,
    check_owner_id,
    new_browser_id,
    oauth_owner,
    resolve_owner,
)
from .recorder import AnswerRecorder
from .records import Battle, Conversation, ConversationSummary, StoredMessage, Vote
from .store import HistoryStore

__all__ = [
    "BROWSER_STATE_KEY",
    "AnswerRecorder",
    "Battle",
    "Conversation",
    "ConversationSummary",
    "HistoryStore",
    "StoredMessage",
    "Vote",
    "browser_owner",
    "check_owner_id",
    "new_browser_id",
    "oauth_owner",
    "open_history",
    "resolve_owner",
]


def open_history(settings: Settings) -> HistoryStore:
    """The app's store at start-up: migrated, interrupted answers marked, retention applied."""
    store = HistoryStore(settings.history_path)
    store.recover_interrupted()
    store.apply_retention(max_age_days=settings.history_max_age_days, max_count=settings.history_max_count)
    return store
