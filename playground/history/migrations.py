"""The history schema as ordered, named, append-only migrations (as simonw/llm's migrations.py).

Never edit a migration that has shipped: add a new `m00N_...` function at the end instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[Migration] = []
migration = MIGRATIONS.append


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction; return their names."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)")
    conn.commit()
    applied: list[str] = []
    for fn in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (fn.__name__,)).fetchone()
            if done is None:
                fn(conn)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_utc) VALUES (?, ?)",
                    (fn.__name__, datetime.now(UTC).isoformat(timespec="microseconds")),
                )
                applied.append(fn.__name__)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    return applied


@migration
def m001_conversations_messages(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            tab TEXT NOT NULL,
            title TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            created_utc TEXT NOT NULL,
            updated_utc TEXT NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX conversations_owner_updated ON conversations (owner, updated_utc)")
    conn.execute(
        """CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            text TEXT NOT NULL DEFAULT '',
            model TEXT NOT NULL DEFAULT '',
            engine TEXT NOT NULL DEFAULT '',
            parameters_json TEXT NOT NULL DEFAULT '{}',
            metrics_json TEXT,
            finish_reason TEXT CHECK (
                finish_reason IN ('stop', 'length', 'cancelled', 'interrupted', 'error')
            ),
            created_utc TEXT NOT NULL,
            updated_utc TEXT NOT NULL,
            UNIQUE (conversation_id, seq)
        )"""
    )
    conn.execute(
        "CREATE INDEX messages_unfinished ON messages (role) "
        "WHERE role = 'assistant' AND finish_reason IS NULL"
    )


@migration
def m002_message_images(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE message_images (
            message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            ref TEXT NOT NULL,
            PRIMARY KEY (message_id, position)
        )"""
    )
    conn.execute("CREATE INDEX message_images_ref ON message_images (ref)")


@migration
def m003_battles_votes(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE battles (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            prompt TEXT NOT NULL,
            model_a TEXT NOT NULL,
            engine_a TEXT NOT NULL DEFAULT '',
            conversation_a TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            model_b TEXT NOT NULL,
            engine_b TEXT NOT NULL DEFAULT '',
            conversation_b TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            parameters_json TEXT NOT NULL DEFAULT '{}',
            created_utc TEXT NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX battles_owner_created ON battles (owner, created_utc)")
    conn.execute(
        """CREATE TABLE votes (
            id TEXT PRIMARY KEY,
            battle_id TEXT NOT NULL UNIQUE REFERENCES battles (id) ON DELETE CASCADE,
            owner TEXT NOT NULL,
            vote TEXT NOT NULL CHECK (vote IN ('a', 'b', 'tie', 'both_bad')),
            created_utc TEXT NOT NULL
        )"""
    )


@migration
def m004_message_experts(conn: sqlite3.Connection) -> None:
    """The expert routing of a mixture-of-experts answer (moe_view.pack's JSON), for its map."""
    conn.execute("ALTER TABLE messages ADD COLUMN experts_json TEXT")


@migration
def m005_arena_rounds(conn: sqlite3.Connection) -> None:
    """A battle row is one round: its mode, its number, the first round's id (the thread the rounds share),
    and which sides' answers named their model (left out of the ratings)."""
    conn.execute(
        "ALTER TABLE battles ADD COLUMN mode TEXT NOT NULL DEFAULT 'named' CHECK (mode IN ('named', 'blind'))"
    )
    conn.execute("ALTER TABLE battles ADD COLUMN round INTEGER NOT NULL DEFAULT 1")
    conn.execute("ALTER TABLE battles ADD COLUMN thread TEXT NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE battles ADD COLUMN revealed TEXT NOT NULL DEFAULT ''")
    conn.execute("UPDATE battles SET thread = id")
    conn.execute("CREATE INDEX battles_thread ON battles (thread, round)")
    conn.execute("CREATE INDEX votes_owner_created ON votes (owner, created_utc)")


@migration
def m006_eval_runs(conn: sqlite3.Connection) -> None:
    """Evaluation runs (the Evaluate tab, `python -m playground eval`): a run's set, models and settings,
    what each model measured, one result per model per item (written as each answer ends), and a judge's
    verdicts on pairs of answers."""
    conn.execute(
        """CREATE TABLE eval_runs (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running', 'stopped', 'interrupted', 'done')),
            set_name TEXT NOT NULL,
            set_hash TEXT NOT NULL,
            items_json TEXT NOT NULL,
            models_json TEXT NOT NULL,
            options_json TEXT NOT NULL,
            judge_json TEXT NOT NULL DEFAULT '{}',
            created_utc TEXT NOT NULL,
            updated_utc TEXT NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX eval_runs_owner ON eval_runs (owner, created_utc)")
    conn.execute(
        """CREATE TABLE eval_models (
            run_id TEXT NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            facts_json TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (run_id, model)
        )"""
    )
    conn.execute(
        """CREATE TABLE eval_results (
            run_id TEXT NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            item INTEGER NOT NULL,
            text TEXT NOT NULL,
            finish_reason TEXT NOT NULL,
            metrics_json TEXT NOT NULL,
            verdict_json TEXT,
            judge_json TEXT,
            created_utc TEXT NOT NULL,
            PRIMARY KEY (run_id, model, item)
        )"""
    )
    conn.execute(
        """CREATE TABLE eval_pairs (
            run_id TEXT NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
            item INTEGER NOT NULL,
            model_a TEXT NOT NULL,
            model_b TEXT NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ('a', 'b', 'tie')),
            detail_json TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (run_id, item, model_a, model_b)
        )"""
    )


@migration
def m007_message_tokens(conn: sqlite3.Connection) -> None:
    """Each generated token's probability and alternatives (TokenRecord.to_dict's, a JSON list), for the
    token view."""
    conn.execute("ALTER TABLE messages ADD COLUMN tokens_json TEXT")


@migration
def m008_message_branches(conn: sqlite3.Connection) -> None:
    """Branches from a token (branching.py): an answer continued from token `branch_at` of the answer
    before it (a branch sits right after the turn's first answer and its other branches); `hidden`: an
    answer of the turn the visitor switched away from, kept but not part of the conversation."""
    conn.execute("ALTER TABLE messages ADD COLUMN branch_at INTEGER")
    conn.execute("ALTER TABLE messages ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0")
