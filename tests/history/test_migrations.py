from __future__ import annotations

import sqlite3
from pathlib import Path

from playground.history import HistoryStore
from playground.history.migrations import MIGRATIONS, migrate

EXPECTED = {
    "conversations": ["id", "owner", "tab", "title", "model", "created_utc", "updated_utc"],
    "messages": [
        "id", "conversation_id", "seq", "role", "text", "model", "engine", "parameters_json",
        "metrics_json", "finish_reason", "created_utc", "updated_utc", "experts_json", "tokens_json",
        "branch_at", "hidden",
    ],
    "message_images": ["message_id", "position", "ref"],
    "battles": [
        "id", "owner", "prompt", "model_a", "engine_a", "conversation_a", "model_b", "engine_b",
        "conversation_b", "parameters_json", "created_utc", "mode", "round", "thread", "revealed",
    ],
    "votes": ["id", "battle_id", "owner", "vote", "created_utc"],
    "eval_runs": [
        "id", "owner", "status", "set_name", "set_hash", "items_json", "models_json", "options_json",
        "judge_json", "created_utc", "updated_utc",
    ],
    "eval_models": ["run_id", "model", "facts_json"],
    "eval_results": [
        "run_id", "model", "item", "text", "finish_reason", "metrics_json", "verdict_json", "judge_json",
        "created_utc",
    ],
    "eval_pairs": ["run_id", "item", "model_a", "model_b", "verdict", "detail_json"],
    "_migrations": ["name", "applied_utc"],
}  # fmt: skip


def columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [c[1] for c in conn.execute(f"PRAGMA table_info({t})")] for t in tables}


def test_migrate_twice_is_idempotent() -> None:
    conn = sqlite3.connect(":memory:")
    assert migrate(conn) == [fn.__name__ for fn in MIGRATIONS]
    assert migrate(conn) == []
    assert columns(conn) == EXPECTED
    names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
    assert names == [
        "m001_conversations_messages",
        "m002_message_images",
        "m003_battles_votes",
        "m004_message_experts",
        "m005_arena_rounds",
        "m006_eval_runs",
        "m007_message_tokens",
        "m008_message_branches",
    ]


def test_migration_names_are_ordered_and_unique() -> None:
    names = [fn.__name__ for fn in MIGRATIONS]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    assert all(name.startswith("m") and name[1:4].isdigit() for name in names)


def test_reopening_a_store_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with HistoryStore(path) as first:
        conversation = first.conversations.create_conversation("owner-1", "instruct", "kept", "m")
    with HistoryStore(path) as second:
        assert second.conversations.get_conversation("owner-1", conversation.id).title == "kept"
        assert second.db.integrity_check() == "ok"


def test_the_store_uses_wal_and_foreign_keys(store: HistoryStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with store.db.read() as own:
        assert own.execute("PRAGMA foreign_keys").fetchone()[0] == 1
