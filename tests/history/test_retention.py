from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta

from playground.history import HistoryStore

PNG = b"\x89PNG retention"


def age_files(store: HistoryStore) -> None:
    """Make every image file older than the prune grace period."""
    old = time.time() - 3600
    for path in store.images.root.iterdir():
        os.utime(path, (old, old))


def test_nothing_is_deleted_without_limits(store: HistoryStore, alice: str) -> None:
    store.conversations.create_conversation(alice, "instruct", "t")
    assert store.apply_retention() == 0
    assert len(store.conversations.list_conversations(alice)) == 1


def backdate(store: HistoryStore, conversation_id: str, days: float) -> None:
    """Pretend a conversation was last updated `days` ago (as another process would see it)."""
    when = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="microseconds")
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE conversations SET updated_utc = ? WHERE id = ?", (when, conversation_id))


def test_max_age_deletes_old_conversations_only(store: HistoryStore, alice: str, bob: str) -> None:
    old = store.conversations.create_conversation(alice, "instruct", "old")
    recent = store.conversations.create_conversation(alice, "instruct", "recent")
    bobs_old = store.conversations.create_conversation(bob, "instruct", "bob's old")
    backdate(store, old.id, 40)
    backdate(store, recent.id, 20)
    backdate(store, bobs_old.id, 31)
    assert store.apply_retention(max_age_days=30) == 2
    assert [c.id for c in store.conversations.list_conversations(alice)] == [recent.id]
    assert store.conversations.list_conversations(bob) == []


def test_max_count_keeps_each_owners_newest(store: HistoryStore, alice: str, bob: str) -> None:
    alices = [store.conversations.create_conversation(alice, "instruct", f"a{i}").id for i in range(4)]
    bobs = [store.conversations.create_conversation(bob, "instruct", f"b{i}").id for i in range(2)]
    assert store.apply_retention(max_count=2) == 2
    assert [c.id for c in store.conversations.list_conversations(alice)] == alices[:1:-1]
    assert [c.id for c in store.conversations.list_conversations(bob)] == bobs[::-1]


def test_an_answer_in_progress_is_never_deleted(store: HistoryStore, alice: str) -> None:
    streaming = store.conversations.create_conversation(alice, "instruct", "streaming")
    store.conversations.add_message(alice, streaming.id, "user", "q")
    recorder = store.conversations.start_answer(alice, streaming.id)
    recorder.update("partial")
    store.conversations.create_conversation(alice, "instruct", "newer")
    future = datetime.now(UTC) + timedelta(days=400)
    assert store.apply_retention(max_age_days=1, max_count=1, now=future) == 1
    assert [c.title for c in store.conversations.list_conversations(alice)] == ["streaming"]
    recorder.finish(finish_reason="stop")
    assert store.apply_retention(max_age_days=1, now=future) == 1


def test_retention_removes_unreferenced_images_and_cascades_battles(store: HistoryStore, alice: str) -> None:
    ref = store.images.store_image(PNG)
    conversation = store.conversations.create_conversation(alice, "vision", "img")
    store.conversations.add_message(alice, conversation.id, "user", "look", images=[ref])
    battle = store.battles.create_battle(alice, "p", "a", "b")
    store.battles.record_vote(alice, battle.id, "a")
    age_files(store)
    future = datetime.now(UTC) + timedelta(days=2)
    assert store.apply_retention(max_age_days=1, now=future) == 3
    assert store.battles.list_battles(alice) == []
    assert not store.images.image_path(ref).exists()
    assert store.db.integrity_check() == "ok"
