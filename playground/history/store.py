"""The history store: one SQLite file (WAL) that owns every SQL statement of the history.

Every method that reads or writes a visitor's data takes `owner` and filters by it: another owner's
conversation behaves exactly as one that does not exist. The few methods without an owner
(`recover_interrupted`, `apply_retention`, `owner_of`, `list_all_conversations`) are for start-up and
for the machine's owner (the CLI), never for a request handler; `list_rated_battles` (the leaderboard)
returns every owner's voted rounds without owners or texts.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import ConversationNotFoundError, HistoryError, map_errors
from ..types import FinishReason, Message, Metrics
from .images import ImageFolder, check_image_ref, is_image_ref
from .integrity import DamagedDatabase
from .migrations import migrate
from .quota import Quota, Usage
from .recorder import AnswerRecorder
from .records import (
    Battle,
    Conversation,
    ConversationDraft,
    ConversationSummary,
    MessageDraft,
    RatedBattle,
    Vote,
)
from .redact import clean_parameters
from .rows import (
    battle_from_row,
    check_finish_reason,
    check_owner,
    clean_title,
    dump_json,
    escape_like,
    message_draft,
    message_from_row,
    metrics_dict,
    new_id,
    rated_from_row,
    summary_from_row,
    utc_now,
)

NOT_FOUND = "Conversation not found: it may have been deleted. Refresh the history list."
BATTLE_NOT_FOUND = "Battle not found: it may have been deleted. Start a new battle."

_SUMMARY = """SELECT c.id, c.owner, c.tab, c.title, c.model, c.created_utc, c.updated_utc,
    (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count
    FROM conversations c"""
_BATTLE = """SELECT b.*, v.vote, v.created_utc AS voted_utc
    FROM battles b LEFT JOIN votes v ON v.battle_id = b.id"""
_UNFINISHED = "SELECT conversation_id FROM messages WHERE role = 'assistant' AND finish_reason IS NULL"


class HistoryStore:
    """Conversations, messages, arena battles and votes in one SQLite file, plus its image folder."""

    def __init__(
        self, path: Path | str, *, images_dir: Path | None = None, quota: Quota | None = None
    ) -> None:
        self.path = Path(path)
        self.images = ImageFolder(images_dir or self.path.parent / "images")
        self.quota = quota  # per owner (public mode); None: no limit
        self.damage: DamagedDatabase | None = None  # set by open_history when the old file was set aside
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            migrate(self._conn)
        except (sqlite3.Error, OSError) as exc:
            raise HistoryError(
                f"The history database {self.path} cannot be opened ({exc}): check the folder's "
                "permissions, move a damaged file away, or set PLAYGROUND_HISTORY_DB to another path."
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, map_errors({sqlite3.Error: HistoryError}, "Reading the history failed"):
            yield self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE); rolled back on any error."""
        with (
            self._lock,
            map_errors({sqlite3.Error: HistoryError}, "Writing the history failed"),
            self._conn,
        ):
            self._conn.execute("BEGIN IMMEDIATE")
            yield self._conn

    # Conversations

    def create_conversation(self, owner: str, tab: str, title: str, model: str = "") -> ConversationSummary:
        """A new, empty conversation of this owner."""
        now = utc_now()
        summary = ConversationSummary(new_id(), check_owner(owner), tab, clean_title(title), model, now, now)
        with self._write() as conn:
            self._check_quota(conn, owner, conversations=1)
            conn.execute(
                "INSERT INTO conversations (id, owner, tab, title, model, created_utc, updated_utc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (summary.id, owner, tab, summary.title, model, now, now),
            )
        return summary

    def list_conversations(
        self, owner: str, *, search: str | None = None, tab: str | None = None, limit: int | None = 100
    ) -> list[ConversationSummary]:
        """This owner's conversations, most recently updated first; search matches titles and texts."""
        where, params = ["c.owner = ?"], [check_owner(owner)]
        return self._summaries(where, params, search=search, tab=tab, limit=limit)

    def list_all_conversations(
        self, *, search: str | None = None, limit: int | None = 100
    ) -> list[ConversationSummary]:
        """Every owner's conversations: for the machine's owner (CLI) only."""
        return self._summaries([], [], search=search, tab=None, limit=limit)

    def _summaries(
        self, where: list[str], params: list[Any], *, search: str | None, tab: str | None, limit: int | None
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
        with self._read() as conn:
            return [summary_from_row(row) for row in conn.execute(sql, params)]

    def owner_of(self, conversation_id: str) -> str:
        """Who owns a conversation: for the machine's owner (CLI) only."""
        with self._read() as conn:
            row = conn.execute("SELECT owner FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise ConversationNotFoundError(NOT_FOUND)
        return str(row["owner"])

    def get_conversation(self, owner: str, conversation_id: str) -> Conversation:
        """One conversation of this owner with its messages, oldest first."""
        with self._read() as conn:
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
        """The conversation as the chat service takes it, to continue it (images as file paths)."""
        conversation = self.get_conversation(owner, conversation_id)
        return [
            Message(m.role, m.text, tuple(str(self.images.path(ref)) for ref in m.images))
            for m in conversation.messages
            if m.role != "assistant" or m.text
        ]

    def rename_conversation(self, owner: str, conversation_id: str, title: str) -> None:
        with self._write() as conn:
            _check_conversation(conn, owner, conversation_id)
            conn.execute(
                "UPDATE conversations SET title = ?, updated_utc = ? WHERE id = ?",
                (clean_title(title), utc_now(), conversation_id),
            )

    def delete_conversation(self, owner: str, conversation_id: str) -> None:
        """Delete one conversation of this owner, its messages and (when nothing else uses them) images."""
        with self._write() as conn:
            _check_conversation(conn, owner, conversation_id)
            refs = _refs_of(conn, "c.id = ?", (conversation_id,))
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        self._prune(refs)

    def delete_owner_data(self, owner: str) -> int:
        """Delete everything this owner has: conversations, battles, votes, unshared images."""
        with self._write() as conn:
            refs = _refs_of(conn, "c.owner = ?", (check_owner(owner),))
            conn.execute("DELETE FROM votes WHERE owner = ?", (owner,))
            conn.execute("DELETE FROM battles WHERE owner = ?", (owner,))
            deleted = conn.execute("DELETE FROM conversations WHERE owner = ?", (owner,)).rowcount
        self._prune(refs)
        return int(deleted)

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
    ) -> str:
        """Append a message to this owner's conversation (committed on return); its id."""
        draft = message_draft(role, text, images, model, engine, parameters, metrics, finish_reason, "")
        with self._write() as conn:
            _check_conversation(conn, owner, conversation_id)
            if role != "assistant":  # an answer is never refused: it would be lost
                self._check_quota(conn, owner, texts=[text], refs=draft.images)
            return _insert_message(conn, conversation_id, draft, utc_now())

    def start_answer(
        self,
        owner: str,
        conversation_id: str,
        *,
        model: str = "",
        engine: str = "",
        parameters: Mapping[str, object] | None = None,
        interval_s: float = 1.0,
    ) -> AnswerRecorder:
        """Write an empty assistant message now (no finish reason: in progress) and return its recorder."""
        message_id = self.add_message(
            owner, conversation_id, "assistant", "", model=model, engine=engine, parameters=parameters
        )
        return AnswerRecorder(self, owner, message_id, interval_s=interval_s)

    def update_message_text(self, owner: str, message_id: str, text: str) -> None:
        """Replace a message's text (a streaming answer so far)."""
        now = utc_now()
        with self._write() as conn:
            conversation_id = _check_message(conn, owner, message_id)
            conn.execute(
                "UPDATE messages SET text = ?, updated_utc = ? WHERE id = ?", (text, now, message_id)
            )
            _touch(conn, conversation_id, now)

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
        with self._write() as conn:
            conversation_id = _check_message(conn, owner, message_id)
            conn.execute(
                "UPDATE messages SET text = COALESCE(?, text), metrics_json = ?, finish_reason = ?, "
                "updated_utc = ? WHERE id = ?",
                (text, dump_json(metrics_dict(metrics)), reason, now, message_id),
            )
            _touch(conn, conversation_id, now)

    def save_experts(self, owner: str, message_id: str, experts: Mapping[str, object]) -> None:
        """Keep the expert routing of an answer (moe_view.pack's form) with it, for its map."""
        with self._write() as conn:
            _check_message(conn, owner, message_id)
            conn.execute(
                "UPDATE messages SET experts_json = ? WHERE id = ?", (dump_json(dict(experts)), message_id)
            )

    def edit_last_question(
        self, owner: str, conversation_id: str, text: str, *, images: Sequence[str] | None = None
    ) -> str:
        """Change the last user message and drop everything after it (to resend it); its id.

        `images` (references from store_image) replace the question's images; None keeps them."""
        with self._write() as conn:
            _check_conversation(conn, owner, conversation_id)
            row = conn.execute(
                "SELECT id, seq FROM messages WHERE conversation_id = ? AND role = 'user' "
                "ORDER BY seq DESC LIMIT 1",
                (conversation_id,),
            ).fetchone()
            if row is None:
                raise HistoryError("This conversation has no question to edit: send a new message instead.")
            refs = _refs_of(conn, "m.conversation_id = ? AND m.seq > ?", (conversation_id, row["seq"]))
            conn.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND seq > ?", (conversation_id, row["seq"])
            )
            now = utc_now()
            conn.execute("UPDATE messages SET text = ?, updated_utc = ? WHERE id = ?", (text, now, row["id"]))
            if images is not None:
                refs |= _refs_of(conn, "m.id = ?", (row["id"],))
                conn.execute("DELETE FROM message_images WHERE message_id = ?", (row["id"],))
                conn.executemany(
                    "INSERT INTO message_images (message_id, position, ref) VALUES (?, ?, ?)",
                    [(row["id"], i, check_image_ref(ref)) for i, ref in enumerate(images)],
                )
            _touch(conn, conversation_id, now)
        self._prune(refs)
        return str(row["id"])

    def import_conversations(self, owner: str, drafts: Sequence[ConversationDraft]) -> list[str]:
        """Write whole conversations for this owner, all or none, with new ids; the ids."""
        ids: list[str] = []
        now = utc_now()
        with self._write() as conn:
            self._check_quota(
                conn,
                owner,
                conversations=len(drafts),
                texts=[m.text for d in drafts for m in d.messages],
                refs=[r for d in drafts for m in d.messages for r in m.images],
            )
            for draft in drafts:
                conversation_id = new_id()
                created = draft.created_utc or now
                conn.execute(
                    "INSERT INTO conversations (id, owner, tab, title, model, created_utc, updated_utc) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        check_owner(owner),
                        draft.tab,
                        clean_title(draft.title),
                        draft.model,
                        created,
                        draft.updated_utc or created,
                    ),
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
                    )
                    _insert_message(
                        conn, conversation_id, checked, message.created_utc or created, touch=False
                    )
                ids.append(conversation_id)
        return ids

    # Arena

    def create_battle(
        self,
        owner: str,
        prompt: str,
        model_a: str,
        model_b: str,
        *,
        engine_a: str = "",
        engine_b: str = "",
        parameters: Mapping[str, object] | None = None,
        images: Sequence[str] = (),
        mode: str = "named",
    ) -> Battle:
        """A battle: two arena conversations, each starting with the prompt (written before streaming).

        In blind mode the two conversations carry no model name until the vote reveals it."""
        now = utc_now()
        battle_id, side_a, side_b = new_id(), new_id(), new_id()
        params = clean_parameters(parameters)
        question = message_draft("user", prompt, images, "", "", None, None, None, "")
        with self._write() as conn:
            self._check_quota(conn, owner, conversations=2, texts=[prompt, prompt], refs=question.images)
            for side, model in ((side_a, model_a), (side_b, model_b)):
                conn.execute(
                    "INSERT INTO conversations (id, owner, tab, title, model, created_utc, updated_utc) "
                    "VALUES (?, ?, 'arena', ?, ?, ?, ?)",
                    (
                        side,
                        check_owner(owner),
                        clean_title(prompt),
                        "" if mode == "blind" else model,
                        now,
                        now,
                    ),
                )
                _insert_message(conn, side, question, now)
            battle = Battle(
                battle_id, owner, prompt, model_a, engine_a, side_a, model_b, engine_b, side_b, params, now,
                mode=_check_mode(mode), round=1, thread=battle_id,
            )  # fmt: skip
            _insert_battle(conn, battle)
        return battle

    def add_round(
        self,
        owner: str,
        previous_id: str,
        prompt: str,
        *,
        images: Sequence[str] = (),
        mode: str | None = None,
    ) -> Battle:
        """The next round of a battle: the prompt appended to both conversations, a new battle row with
        the same sides and parameters (its own vote); `mode` defaults to the previous round's."""
        now = utc_now()
        question = message_draft("user", prompt, images, "", "", None, None, None, "")
        with self._write() as conn:
            previous = _battle(conn, owner, previous_id)
            self._check_quota(conn, owner, texts=[prompt, prompt], refs=question.images)
            last = conn.execute(
                "SELECT MAX(round) FROM battles WHERE thread = ?", (previous.thread,)
            ).fetchone()[0]
            for side in (previous.conversation_a, previous.conversation_b):
                _insert_message(conn, side, question, now)
            battle = Battle(
                new_id(), owner, prompt, previous.model_a, previous.engine_a, previous.conversation_a,
                previous.model_b, previous.engine_b, previous.conversation_b, previous.parameters, now,
                mode=_check_mode(mode or previous.mode), round=int(last) + 1, thread=previous.thread,
            )  # fmt: skip
            _insert_battle(conn, battle)
        return battle

    def get_battle(self, owner: str, battle_id: str) -> Battle:
        with self._read() as conn:
            return _battle(conn, owner, battle_id)

    def list_battles(self, owner: str, *, limit: int | None = 100) -> list[Battle]:
        """This owner's battles, newest first."""
        sql = _BATTLE + " WHERE b.owner = ? ORDER BY b.created_utc DESC, b.id DESC"
        params: list[Any] = [check_owner(owner)]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(1, int(limit)))
        with self._read() as conn:
            return [battle_from_row(row) for row in conn.execute(sql, params)]

    def record_vote(
        self,
        owner: str,
        battle_id: str,
        vote: Vote | str,
        *,
        revealed: str = "",
        daily_limit: int | None = None,
    ) -> Battle:
        """This owner's vote on their battle round: a, b, tie or both_bad; one vote per round.

        `revealed`: the sides whose answer named their model (kept out of the ratings). `daily_limit`: the
        most votes this owner may cast per UTC day (public mode). A blind battle's names are written into
        its two conversations now (until the vote they carry none). Returns the battle as voted."""
        try:
            choice = Vote(vote)
        except ValueError:
            raise HistoryError(f"Unknown vote {vote!r}: vote a, b, tie or both_bad.") from None
        if revealed not in ("", "a", "b", "ab"):
            raise HistoryError(f"Unknown revealed sides {revealed!r}: use '', 'a', 'b' or 'ab'.")
        with self._write() as conn:
            battle = _battle(conn, owner, battle_id)
            if battle.vote is not None:
                raise HistoryError("This round already has a vote: start a new round to vote again.")
            if daily_limit is not None and _votes_since(conn, owner, _utc_midnight()) >= daily_limit:
                raise HistoryError(
                    f"You have cast today's {daily_limit} arena votes: come back tomorrow (UTC), or keep "
                    "comparing without voting."
                )
            now = utc_now()
            conn.execute(
                "INSERT INTO votes (id, battle_id, owner, vote, created_utc) VALUES (?, ?, ?, ?, ?)",
                (new_id(), battle_id, owner, str(choice), now),
            )
            conn.execute("UPDATE battles SET revealed = ? WHERE id = ?", (revealed, battle_id))
            if battle.mode == "blind":
                for side, model, engine in (
                    (battle.conversation_a, battle.model_a, battle.engine_a),
                    (battle.conversation_b, battle.model_b, battle.engine_b),
                ):
                    conn.execute("UPDATE conversations SET model = ? WHERE id = ?", (model, side))
                    conn.execute(
                        "UPDATE messages SET model = ?, engine = ? "
                        "WHERE conversation_id = ? AND role = 'assistant' AND model = ''",
                        (model, engine, side),
                    )
        return replace(battle, vote=choice, voted_utc=now, revealed=revealed)

    def votes_today(self, owner: str) -> int:
        """How many votes this owner cast since midnight UTC (the public daily cap counts these)."""
        with self._read() as conn:
            return _votes_since(conn, check_owner(owner), _utc_midnight())

    def battle_rounds(self, owner: str, thread: str) -> list[Battle]:
        """The rounds of one battle of this owner, first to last."""
        with self._read() as conn:
            rows = conn.execute(
                _BATTLE + " WHERE b.thread = ? AND b.owner = ? ORDER BY b.round", (thread, check_owner(owner))
            ).fetchall()
        if not rows:
            raise ConversationNotFoundError(BATTLE_NOT_FOUND)
        return [battle_from_row(row) for row in rows]

    def list_rated_battles(self) -> list[RatedBattle]:
        """Every owner's voted rounds, oldest vote first: sides, vote, mode and revealed flags only (no
        owner, no prompt, no text). For the leaderboard, which rates from every visitor's votes."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT b.model_a, b.engine_a, b.model_b, b.engine_b, b.mode, b.revealed, v.vote, "
                "v.created_utc AS voted_utc FROM battles b JOIN votes v ON v.battle_id = b.id "
                "ORDER BY v.created_utc, v.id"
            ).fetchall()
        return [rated_from_row(row) for row in rows]

    def import_rated_battle(self, battle: Battle) -> bool:
        """A voted round read back from elsewhere (a Space's dataset, arena/sync.py): the battle row with its
        vote, under `battle.owner`, with two empty arena conversations for its sides. False (nothing
        written) when a round with its id is already here."""
        if battle.vote is None:
            raise HistoryError("Only a voted round can be imported.")
        owner = check_owner(battle.owner)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM battles WHERE id = ?", (battle.id,)).fetchone() is not None:
                return False
            sides = new_id(), new_id()
            for side, model in zip(sides, (battle.model_a, battle.model_b), strict=True):
                conn.execute(
                    "INSERT INTO conversations (id, owner, tab, title, model, created_utc, updated_utc) "
                    "VALUES (?, ?, 'arena', ?, ?, ?, ?)",
                    (side, owner, clean_title(""), model, battle.created_utc, battle.created_utc),
                )
            _insert_battle(
                conn, replace(battle, owner=owner, conversation_a=sides[0], conversation_b=sides[1])
            )
            conn.execute("UPDATE battles SET revealed = ? WHERE id = ?", (battle.revealed, battle.id))
            conn.execute(
                "INSERT INTO votes (id, battle_id, owner, vote, created_utc) VALUES (?, ?, ?, ?, ?)",
                (new_id(), battle.id, owner, str(battle.vote), battle.voted_utc or battle.created_utc),
            )
        return True

    # The quota of one owner (public mode)

    def usage(self, owner: str) -> Usage:
        """What this owner keeps: conversations, and bytes (message texts, plus each image file once)."""
        with self._read() as conn:
            return self._usage(conn, check_owner(owner))[0]

    def _usage(self, conn: sqlite3.Connection, owner: str) -> tuple[Usage, set[str]]:
        """The owner's usage, and the image references it counts."""
        count, text_bytes = conn.execute(
            "SELECT COUNT(DISTINCT c.id), COALESCE(SUM(LENGTH(CAST(m.text AS BLOB))), 0) "
            "FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id WHERE c.owner = ?",
            (owner,),
        ).fetchone()
        refs = _refs_of(conn, "c.owner = ?", (owner,))
        return Usage(int(count), int(text_bytes) + sum(self._image_size(r) for r in refs)), refs

    def _image_size(self, ref: str) -> int:
        try:
            return self.images.path(ref).stat().st_size
        except (OSError, HistoryError):
            return 0

    def check_quota(self, owner: str, *, conversations: int = 0, texts: Sequence[str] = ()) -> None:
        """HistoryFullError when this owner cannot keep `conversations` more with these texts (a check
        before slow work, such as storing an import's images; the write checks again)."""
        with self._read() as conn:
            self._check_quota(conn, owner, conversations=conversations, texts=texts)

    def _check_quota(
        self,
        conn: sqlite3.Connection,
        owner: str,
        *,
        conversations: int = 0,
        texts: Sequence[str] = (),
        refs: Sequence[str] = (),
    ) -> None:
        """HistoryFullError (before anything is written) when this would pass the owner's quota."""
        quota = self.quota
        if quota is None or (quota.bytes is None and not (quota.conversations and conversations)):
            return
        usage, kept = self._usage(conn, check_owner(owner))
        added = sum(len(t.encode("utf-8", "replace")) for t in texts)
        added += sum(self._image_size(r) for r in set(refs) - kept)
        quota.check(usage, conversations=conversations, size=added)

    # Images

    def store_image(self, data: bytes, suffix: str = ".png") -> str:
        """Store image bytes once, by content hash; the reference to pass to add_message."""
        with self._lock, map_errors({OSError: HistoryError}, "Storing the image failed"):
            return self.images.put(data, suffix)

    def store_image_file(self, path: Path | str) -> str:
        """Store an uploaded image file once, by content hash; its reference."""
        with self._lock:
            return self.images.put_file(Path(path))

    def image_path(self, ref: str) -> Path:
        return self.images.path(ref)

    def _prune(self, candidates: Iterable[str]) -> int:
        refs = set(candidates)
        if not refs:
            return 0
        with self._read() as conn:
            marks = ",".join("?" * len(refs))
            used = {
                r["ref"]
                for r in conn.execute(f"SELECT ref FROM message_images WHERE ref IN ({marks})", list(refs))
            }
            return self.images.remove_unreferenced(refs, used)

    def prune_images(self) -> int:
        """Delete image files no message references any more (older than a minute)."""
        if not self.images.root.is_dir():
            return 0
        files = [p.name for p in self.images.root.iterdir() if p.is_file()]
        return self._prune(name for name in files if is_image_ref(name))

    # Maintenance

    def recover_interrupted(self) -> int:
        """At start-up: mark answers left without a finish reason (the process died) as interrupted."""
        with self._write() as conn:
            return int(
                conn.execute(
                    "UPDATE messages SET finish_reason = 'interrupted' "
                    "WHERE role = 'assistant' AND finish_reason IS NULL"
                ).rowcount
            )

    def apply_retention(
        self, *, max_age_days: float | None = None, max_count: int | None = None, now: datetime | None = None
    ) -> int:
        """Delete conversations older than max_age_days, then all but each owner's newest max_count.

        One transaction; a conversation with an answer still streaming is never deleted. Returns how many
        conversations were deleted.
        """
        if max_age_days is None and max_count is None:
            return 0
        deleted = 0
        with self._write() as conn:
            doomed = "FROM conversations WHERE id NOT IN (" + _UNFINISHED + ") AND "
            conditions: list[tuple[str, tuple[Any, ...]]] = []
            if max_age_days is not None:
                cutoff = (now or datetime.now(UTC)) - timedelta(days=max_age_days)
                conditions.append(("updated_utc < ?", (cutoff.isoformat(timespec="microseconds"),)))
            if max_count is not None:
                conditions.append(
                    (
                        "id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY owner "
                        "ORDER BY updated_utc DESC, id DESC) AS rank FROM conversations) WHERE rank > ?)",
                        (max(0, int(max_count)),),
                    )
                )
            refs: set[str] = set()
            for condition, params in conditions:
                refs |= _refs_of(conn, f"c.id IN (SELECT id {doomed}{condition})", params)
                deleted += conn.execute(f"DELETE {doomed}{condition}", params).rowcount
        self._prune(refs)
        self.prune_images()
        return int(deleted)

    def integrity_check(self) -> str:
        """SQLite's own check: 'ok' when the file is sound."""
        with self._read() as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def _insert_message(
    conn: sqlite3.Connection, conversation_id: str, draft: MessageDraft, now: str, *, touch: bool = True
) -> str:
    message_id = new_id()
    seq = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?", (conversation_id,)
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO messages (id, conversation_id, seq, role, text, model, engine, parameters_json, "
        "metrics_json, finish_reason, created_utc, updated_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        ),
    )
    conn.executemany(
        "INSERT INTO message_images (message_id, position, ref) VALUES (?, ?, ?)",
        [(message_id, i, ref) for i, ref in enumerate(draft.images)],
    )
    if touch:
        _touch(conn, conversation_id, now)
    return message_id


def _insert_battle(conn: sqlite3.Connection, battle: Battle) -> None:
    conn.execute(
        "INSERT INTO battles (id, owner, prompt, model_a, engine_a, conversation_a, model_b, engine_b, "
        "conversation_b, parameters_json, created_utc, mode, round, thread) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            battle.id,
            battle.owner,
            battle.prompt,
            battle.model_a,
            battle.engine_a,
            battle.conversation_a,
            battle.model_b,
            battle.engine_b,
            battle.conversation_b,
            dump_json(battle.parameters),
            battle.created_utc,
            battle.mode,
            battle.round,
            battle.thread,
        ),
    )


def _check_mode(mode: str) -> str:
    if mode not in ("named", "blind"):
        raise HistoryError(f"Unknown arena mode {mode!r}: use named or blind.")
    return mode


def _utc_midnight() -> str:
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).isoformat(timespec="microseconds")


def _votes_since(conn: sqlite3.Connection, owner: str, since: str) -> int:
    row = conn.execute("SELECT COUNT(*) FROM votes WHERE owner = ? AND created_utc >= ?", (owner, since))
    return int(row.fetchone()[0])


def _touch(conn: sqlite3.Connection, conversation_id: str, now: str) -> None:
    conn.execute("UPDATE conversations SET updated_utc = ? WHERE id = ?", (now, conversation_id))


def _battle(conn: sqlite3.Connection, owner: str, battle_id: str) -> Battle:
    """One battle round of this owner, with its vote; another owner's reads as not found."""
    row = conn.execute(
        _BATTLE + " WHERE b.id = ? AND b.owner = ?", (battle_id, check_owner(owner))
    ).fetchone()
    if row is None:
        raise ConversationNotFoundError(BATTLE_NOT_FOUND)
    return battle_from_row(row)


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


def _refs_of(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> set[str]:
    """The image references of the messages matching `where` (over messages m and conversations c)."""
    rows = conn.execute(
        "SELECT DISTINCT i.ref FROM message_images i JOIN messages m ON m.id = i.message_id "
        f"JOIN conversations c ON c.id = m.conversation_id WHERE {where}",
        tuple(params),
    )
    return {str(r[0]) for r in rows}


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
