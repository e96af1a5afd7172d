"""The history's conversations and their messages: questions, answers as they stream, expert maps, imports.

Every method takes `owner` and filters by it: another owner's conversation behaves exactly as one that does
not exist. `owner_of` and `list_all_conversations` are for the machine's owner (the CLI), never for a
request handler. It is the recorder's `AnswerSink`: an answer streams into it through three methods.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConversationNotFoundError, HistoryError
from ..types import FinishReason, Message, Metrics
from .database import Database
from .image_store import ImageStore
from .images import check_image_ref
from .quota import QuotaKeeper
from .recorder import AnswerRecorder
from .records import Conversation, ConversationDraft, ConversationSummary
from .rows import (
    check_finish_reason,
    check_owner,
    clean_title,
    dump_json,
    escape_like,
    message_draft,
    message_from_row,
    metrics_dict,
    new_id,
    summary_from_row,
    utc_now,
)
from .sql import NOT_FOUND, insert_conversation, insert_message, refs_of, touch_conversation

_SUMMARY = """SELECT c.id, c.owner, c.tab, c.title, c.model, c.created_utc, c.updated_utc,
    (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count
    FROM conversations c"""


class ConversationStore:
    """Conversations and their messages, each owner's apart; answers recorded as they stream."""

    def __init__(self, db: Database, images: ImageStore, quota: QuotaKeeper) -> None:
        self.db = db
        self.images = images
        self.quota = quota

    def create_conversation(self, owner: str, tab: str, title: str, model: str = "") -> ConversationSummary:
        """A new, empty conversation of this owner."""
        now = utc_now()
        summary = ConversationSummary(new_id(), check_owner(owner), tab, clean_title(title), model, now, now)
        with self.db.write() as conn:
            self.quota.check_in(conn, owner, conversations=1)
            insert_conversation(conn, summary.id, owner, tab, summary.title, model, now)
        return summary

    def list_conversations(
        self, owner: str, *, search: str | None = None, tab: str | None = None, limit: int | None = 100
    ) -> list[ConversationSummary]:
        """This owner's conversations, most recently updated first; search matches titles and texts."""
        with self.db.read() as conn:
            return _summaries(conn, ["c.owner = ?"], [check_owner(owner)], search, tab, limit)

    def list_all_conversations(
        self, *, search: str | None = None, limit: int | None = 100
    ) -> list[ConversationSummary]:
        """Every owner's conversations: for the machine's owner (CLI) only."""
        with self.db.read() as conn:
            return _summaries(conn, [], [], search, None, limit)

    def owner_of(self, conversation_id: str) -> str:
        """Who owns a conversation: for the machine's owner (CLI) only."""
        with self.db.read() as conn:
            row = conn.execute("SELECT owner FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise ConversationNotFoundError(NOT_FOUND)
        return str(row["owner"])

    def get_conversation(self, owner: str, conversation_id: str) -> Conversation:
        """One conversation of this owner with its messages, oldest first (one snapshot)."""
        with self.db.read() as conn:
            row = conn.execute(
                _SUMMARY + " WHERE c.id = ? AND c.owner = ?", (conversation_id, check_owner(owner))
            ).fetchone()
            if row is None:
                raise ConversationNotFoundError(NOT_FOUND)
            rows = conn.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
            ).fetchall()
            images = _images_by_message(conn, conversation_id)
        return Conversation(
            summary_from_row(row), tuple(message_from_row(r, images.get(r["id"], ())) for r in rows)
        )

    def chat_messages(self, owner: str, conversation_id: str) -> list[Message]:
        """The conversation as the chat service takes it, to continue it (images as file paths; of a
        turn's branches, the one shown)."""
        conversation = self.get_conversation(owner, conversation_id)
        return [
            Message(m.role, m.text, tuple(str(self.images.image_path(ref)) for ref in m.images))
            for m in conversation.messages
            if (m.role != "assistant" or m.text) and not m.hidden
        ]

    def show_branch(self, owner: str, conversation_id: str, message_id: str) -> None:
        """Show this answer of the last turn (one of its branches) and hide the turn's others: the
        conversation continues from it."""
        with self.db.write() as conn:
            _check_conversation(conn, owner, conversation_id)
            if not _hide_answers(conn, conversation_id, keep=message_id):
                raise HistoryError(
                    "That answer is not one of the last question's: only the last answer's branches can be "
                    "switched."
                )
            touch_conversation(conn, conversation_id, utc_now())

    def rename_conversation(self, owner: str, conversation_id: str, title: str) -> None:
        with self.db.write() as conn:
            _check_conversation(conn, owner, conversation_id)
            conn.execute(
                "UPDATE conversations SET title = ?, updated_utc = ? WHERE id = ?",
                (clean_title(title), utc_now(), conversation_id),
            )

    def delete_conversation(self, owner: str, conversation_id: str) -> None:
        """Delete one conversation of this owner, its messages and (when nothing else uses them) images."""
        with self.db.write() as conn:
            _check_conversation(conn, owner, conversation_id)
            refs = refs_of(conn, "c.id = ?", (conversation_id,))
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        self.images.prune(refs)

    # Messages

    def add_message(
        self,
        owner: str,
        conversation_id: str,
        role: str,
        text: str,
        *,
        images: Sequence[str] = (),
        model: str = "",
        engine: str = "",
        parameters: Mapping[str, object] | None = None,
        metrics: Metrics | Mapping[str, object] | None = None,
        finish_reason: FinishReason | str | None = None,
        branch_at: int | None = None,
    ) -> str:
        """Append a message to this owner's conversation (committed on return); its id.

        `branch_at`: the answer is a branch of the last turn's (continued from that token of the answer
        before it): it is shown, and the turn's other answers are hidden."""
        draft = message_draft(
            role, text, images, model, engine, parameters, metrics, finish_reason, "", branch_at=branch_at
        )
        with self.db.write() as conn:
            _check_conversation(conn, owner, conversation_id)
            if role != "assistant":  # an answer is never refused: it would be lost
                self.quota.check_in(conn, owner, texts=[text], refs=draft.images)
            if branch_at is not None:
                _hide_answers(conn, conversation_id, keep=None)
            return insert_message(conn, conversation_id, draft, utc_now())

    def start_answer(
        self,
        owner: str,
        conversation_id: str,
        *,
        model: str = "",
        engine: str = "",
        parameters: Mapping[str, object] | None = None,
        interval_s: float = 1.0,
        branch_at: int | None = None,
    ) -> AnswerRecorder:
        """Write an empty assistant message now (no finish reason: in progress) and return its recorder
        (`branch_at`: a branch of the last turn's answer, see `add_message`)."""
        message_id = self.add_message(
            owner,
            conversation_id,
            "assistant",
            "",
            model=model,
            engine=engine,
            parameters=parameters,
            branch_at=branch_at,
        )
        return AnswerRecorder(self, owner, message_id, interval_s=interval_s)

    def update_message_text(self, owner: str, message_id: str, text: str) -> None:
        """Replace a message's text (a streaming answer so far)."""
        now = utc_now()
        with self.db.write() as conn:
            conversation_id = _check_message(conn, owner, message_id)
            conn.execute(
                "UPDATE messages SET text = ?, updated_utc = ? WHERE id = ?", (text, now, message_id)
            )
            touch_conversation(conn, conversation_id, now)

    def finish_message(
        self,
        owner: str,
        message_id: str,
        *,
        finish_reason: FinishReason | str,
        metrics: Metrics | Mapping[str, object] | None = None,
        text: str | None = None,
    ) -> None:
        """Finalise an answer: its finish reason, metrics and (when given) its final text."""
        reason = check_finish_reason(finish_reason)
        now = utc_now()
        with self.db.write() as conn:
            conversation_id = _check_message(conn, owner, message_id)
            conn.execute(
                "UPDATE messages SET text = COALESCE(?, text), metrics_json = ?, finish_reason = ?, "
                "updated_utc = ? WHERE id = ?",
                (text, dump_json(metrics_dict(metrics)), reason, now, message_id),
            )
            touch_conversation(conn, conversation_id, now)
            (size,) = conn.execute(
                "SELECT LENGTH(CAST(text AS BLOB)) FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
        self.quota.addresses.add(owner, int(size or 0))  # an answer is counted, never refused

    def save_experts(self, owner: str, message_id: str, experts: Mapping[str, object]) -> None:
        """Keep the expert routing of an answer (moe_view.pack's form) with it, for its map."""
        with self.db.write() as conn:
            _check_message(conn, owner, message_id)
            conn.execute(
                "UPDATE messages SET experts_json = ? WHERE id = ?", (dump_json(dict(experts)), message_id)
            )

    def save_tokens(self, owner: str, message_id: str, tokens: Sequence[Mapping[str, object]]) -> None:
        """Keep an answer's token records (TokenRecord.to_dict's) with it, for the token view; their
        bytes count against the owner's address like the answer's text."""
        data = dump_json([dict(t) for t in tokens]) or "[]"
        with self.db.write() as conn:
            _check_message(conn, owner, message_id)
            conn.execute("UPDATE messages SET tokens_json = ? WHERE id = ?", (data, message_id))
        self.quota.addresses.add(owner, len(data.encode()))

    def edit_last_question(
        self, owner: str, conversation_id: str, text: str, *, images: Sequence[str] | None = None
    ) -> str:
        """Change the last user message and drop everything after it (to resend it); its id.

        `images` (references from store_image) replace the question's images; None keeps them."""
        with self.db.write() as conn:
            _check_conversation(conn, owner, conversation_id)
            row = conn.execute(
                "SELECT id, seq FROM messages WHERE conversation_id = ? AND role = 'user' "
                "ORDER BY seq DESC LIMIT 1",
                (conversation_id,),
            ).fetchone()
            if row is None:
                raise HistoryError("This conversation has no question to edit: send a new message instead.")
            refs = refs_of(conn, "m.conversation_id = ? AND m.seq > ?", (conversation_id, row["seq"]))
            conn.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND seq > ?", (conversation_id, row["seq"])
            )
            now = utc_now()
            conn.execute("UPDATE messages SET text = ?, updated_utc = ? WHERE id = ?", (text, now, row["id"]))
            if images is not None:
                refs |= refs_of(conn, "m.id = ?", (row["id"],))
                conn.execute("DELETE FROM message_images WHERE message_id = ?", (row["id"],))
                conn.executemany(
                    "INSERT INTO message_images (message_id, position, ref) VALUES (?, ?, ?)",
                    [(row["id"], i, check_image_ref(ref)) for i, ref in enumerate(images)],
                )
            touch_conversation(conn, conversation_id, now)
        self.images.prune(refs)
        return str(row["id"])

    def import_conversations(self, owner: str, drafts: Sequence[ConversationDraft]) -> list[str]:
        """Write whole conversations for this owner, all or none, with new ids; the ids."""
        owner = check_owner(owner)
        now = utc_now()
        with self.db.write() as conn:
            self.quota.check_in(
                conn,
                owner,
                conversations=len(drafts),
                texts=[m.text for d in drafts for m in d.messages],
                refs=[r for d in drafts for m in d.messages for r in m.images],
            )
            return [_import_one(conn, owner, draft, now) for draft in drafts]


def _import_one(conn: sqlite3.Connection, owner: str, draft: ConversationDraft, now: str) -> str:
    """One imported conversation with its messages, each checked as a new one would be; its new id."""
    conversation_id = new_id()
    created = draft.created_utc or now
    title = clean_title(draft.title)
    insert_conversation(
        conn, conversation_id, owner, draft.tab, title, draft.model, created, draft.updated_utc or created
    )
    for message in draft.messages:
        checked = message_draft(
            message.role,
            message.text,
            message.images,
            message.model,
            message.engine,
            message.parameters,
            message.metrics,
            message.finish_reason,
            message.created_utc,
            tokens=message.tokens,
            branch_at=message.branch_at,
            hidden=message.hidden,
        )
        insert_message(conn, conversation_id, checked, message.created_utc or created, touch=False)
    return conversation_id


def _hide_answers(conn: sqlite3.Connection, conversation_id: str, keep: str | None) -> bool:
    """Hide the answers after the conversation's last question but `keep` (shown); whether `keep` is
    one of them (None: all are hidden, a new branch follows)."""
    row = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ? AND role = 'user'",
        (conversation_id,),
    ).fetchone()
    after = (conversation_id, int(row[0]))
    if keep is not None:
        found = conn.execute(
            "SELECT 1 FROM messages WHERE conversation_id = ? AND seq > ? AND role = 'assistant' AND id = ?",
            (*after, keep),
        ).fetchone()
        if found is None:
            return False
    conn.execute(
        "UPDATE messages SET hidden = (id IS NOT ?) WHERE conversation_id = ? AND seq > ? AND role = 'assistant'",
        (keep, *after),
    )
    return True


def _summaries(
    conn: sqlite3.Connection,
    where: list[str],
    params: list[Any],
    search: str | None,
    tab: str | None,
    limit: int | None,
) -> list[ConversationSummary]:
    if tab is not None:
        where.append("c.tab = ?")
        params.append(tab)
    if search and search.strip():
        pattern = "%" + escape_like(search.strip()) + "%"
        where.append(
            "(c.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m "
            "WHERE m.conversation_id = c.id AND m.text LIKE ? ESCAPE '\\'))"
        )
        params += [pattern, pattern]
    sql = _SUMMARY + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY c.updated_utc DESC, c.id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(max(1, int(limit)))
    return [summary_from_row(row) for row in conn.execute(sql, params)]


def _check_conversation(conn: sqlite3.Connection, owner: str, conversation_id: str) -> None:
    row = conn.execute(
        "SELECT 1 FROM conversations WHERE id = ? AND owner = ?", (conversation_id, check_owner(owner))
    ).fetchone()
    if row is None:
        raise ConversationNotFoundError(NOT_FOUND)


def _check_message(conn: sqlite3.Connection, owner: str, message_id: str) -> str:
    row = conn.execute(
        "SELECT m.conversation_id FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        "WHERE m.id = ? AND c.owner = ?",
        (message_id, check_owner(owner)),
    ).fetchone()
    if row is None:
        raise ConversationNotFoundError(NOT_FOUND)
    return str(row[0])


def _images_by_message(conn: sqlite3.Connection, conversation_id: str) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    rows = conn.execute(
        "SELECT i.message_id, i.ref FROM message_images i JOIN messages m ON m.id = i.message_id "
        "WHERE m.conversation_id = ? ORDER BY i.message_id, i.position",
        (conversation_id,),
    )
    for row in rows:
        found.setdefault(row[0], []).append(row[1])
    return {k: tuple(v) for k, v in found.items()}
