"""The conversation history: a SQLite store, crash-safe answer recording, export and import."""

from __future__ import annotations

import logging

from ..settings import Settings
from .conversations import ConversationStore
from .identity import (
    BROWSER_STATE_KEY,
    BROWSER_STORAGE_SECRET,
    IdentityKey,
    browser_owner,
    check_owner_id,
    new_browser_id,
    oauth_owner,
    resolve_owner,
)
from .integrity import DamagedDatabase, check_and_set_aside
from .quota import Quota
from .recorder import AnswerRecorder, AnswerSink
from .records import Battle, Conversation, ConversationSummary, StoredMessage, Vote
from .store import HistoryStore

__all__ = [
    "BROWSER_STATE_KEY",
    "BROWSER_STORAGE_SECRET",
    "AnswerRecorder",
    "AnswerSink",
    "Battle",
    "Conversation",
    "ConversationStore",
    "ConversationSummary",
    "DamagedDatabase",
    "HistoryStore",
    "IdentityKey",
    "StoredMessage",
    "Vote",
    "browser_owner",
    "check_owner_id",
    "new_browser_id",
    "oauth_owner",
    "open_history",
    "resolve_owner",
]


log = logging.getLogger(__name__)


def open_history(settings: Settings) -> HistoryStore:
    """The app's store at start-up: checked, migrated, interrupted answers marked, retention applied.

    A damaged file is kept aside and a fresh one starts (see integrity.py); `store.damage` says so.
    """
    damage = check_and_set_aside(settings.history_path)
    if damage is not None:
        log.error("%s", damage.message())
    store = HistoryStore(settings.history_path, quota=Quota.from_limits(settings.limits))
    store.damage = damage
    store.db.recover_interrupted()
    store.evals.recover_interrupted()  # runs cut short by the last process's end: Continue goes on
    store.apply_retention(max_age_days=settings.history_max_age_days, max_count=settings.history_max_count)
    return store
