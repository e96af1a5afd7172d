"""The statements more than one part of the store runs, each inside a transaction its caller holds.

A battle writes conversations and messages, a quota check counts an owner's images, a deletion asks which
images are still used: these run on the caller's connection, so that they belong to its transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .records import MessageDraft
from .rows import dump_json, new_id

NOT_FOUND = "Conversation not found: it may have been deleted. Refresh the history list."


def insert_conversation(
    conn: sqlite3.Connection,
    conversation_id: str,
    owner: str,
    tab: str,
    title: str,
    model: str,
    created: str,
    updated: str | None = None,
) -> None:
    """A conversation row (title and owner already checked); updated defaults to created."""
    conn.execute(
        "INSERT INTO conversations (id, owner, tab, title, model, created_utc, updated_utc) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (conversation_id, owner, tab, title, model, created, updated or created),
    )


def insert_message(
    conn: sqlite3.Connection, conversation_id: str, draft: MessageDraft, now: str, *, touch: bool = True
) -> str:
    """Append a checked message (and its image references) to a conversation; its new id."""
    message_id = new_id()
    seq = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?", (conversation_id,)
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO messages (id, conversation_id, seq, role, text, model, engine, parameters_json, "
        "metrics_json, finish_reason, created_utc, updated_utc, tokens_json, branch_at, hidden) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            message_id,
            conversation_id,
            seq,
            draft.role,
            draft.text,
            draft.model,
            draft.engine,
            dump_json(draft.parameters),
            dump_json(draft.metrics),
            None if draft.finish_reason is None else str(draft.finish_reason),
            now,
            now,
            dump_json(draft.tokens),
            draft.branch_at,
            int(draft.hidden),
        ),
    )
    conn.executemany(
        "INSERT INTO message_images (message_id, position, ref) VALUES (?, ?, ?)",
        [(message_id, i, ref) for i, ref in enumerate(draft.images)],
    )
    if touch:
        touch_conversation(conn, conversation_id, now)
    return message_id


def touch_conversation(conn: sqlite3.Connection, conversation_id: str, now: str) -> None:
    """A conversation changed now: it moves to the top of its owner's list."""
    conn.execute("UPDATE conversations SET updated_utc = ? WHERE id = ?", (now, conversation_id))


def refs_of(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> set[str]:
    """The image references of the messages matching `where` (over messages m and conversations c)."""
    rows = conn.execute(
        "SELECT DISTINCT i.ref FROM message_images i JOIN messages m ON m.id = i.message_id "
        f"JOIN conversations c ON c.id = m.conversation_id WHERE {where}",
        tuple(params),
    )
    return {str(r[0]) for r in rows}


def referenced(conn: sqlite3.Connection, refs: set[str]) -> set[str]:
    """Which of these image references a message still uses."""
    if not refs:
        return set()
    marks = ",".join("?" * len(refs))
    rows = conn.execute(f"SELECT ref FROM message_images WHERE ref IN ({marks})", list(refs))
    return {str(r[0]) for r in rows}
