"""The Arena's battles and votes: each round a battle row over two arena conversations, one vote per round.

Every method that reads or writes a visitor's battles takes `owner`; another owner's battle reads as not
found. `list_rated_battles` (the leaderboard) returns every owner's voted rounds without owners or texts,
and `import_rated_battle` takes voted rounds back from a Space's dataset (arena/sync.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..errors import ConversationNotFoundError, HistoryError
from .database import Database
from .quota import QuotaKeeper
from .records import Battle, RatedBattle, Vote
from .redact import clean_parameters
from .rows import (
    battle_from_row,
    check_owner,
    clean_title,
    dump_json,
    message_draft,
    new_id,
    rated_from_row,
    utc_now,
)
from .sql import insert_conversation, insert_message

BATTLE_NOT_FOUND = "Battle not found: it may have been deleted. Start a new battle."

_BATTLE = """SELECT b.*, v.vote, v.created_utc AS voted_utc
    FROM battles b LEFT JOIN votes v ON v.battle_id = b.id"""


class BattleStore:
    """Arena battles, their rounds and votes, each owner's apart; the voted rounds for the leaderboard."""

    def __init__(self, db: Database, quota: QuotaKeeper) -> None:
        self.db = db
        self.quota = quota

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
        with self.db.write() as conn:
            self.quota.check_in(conn, owner, conversations=2, texts=[prompt, prompt], refs=question.images)
            for side, model in ((side_a, model_a), (side_b, model_b)):
                shown = "" if mode == "blind" else model
                insert_conversation(conn, side, check_owner(owner), "arena", clean_title(prompt), shown, now)
                insert_message(conn, side, question, now)
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
        with self.db.write() as conn:
            previous = _battle(conn, owner, previous_id)
            self.quota.check_in(conn, owner, texts=[prompt, prompt], refs=question.images)
            last = conn.execute(
                "SELECT MAX(round) FROM battles WHERE thread = ?", (previous.thread,)
            ).fetchone()[0]
            for side in (previous.conversation_a, previous.conversation_b):
                insert_message(conn, side, question, now)
            battle = Battle(
                new_id(), owner, prompt, previous.model_a, previous.engine_a, previous.conversation_a,
                previous.model_b, previous.engine_b, previous.conversation_b, previous.parameters, now,
                mode=_check_mode(mode or previous.mode), round=int(last) + 1, thread=previous.thread,
            )  # fmt: skip
            _insert_battle(conn, battle)
        return battle

    def get_battle(self, owner: str, battle_id: str) -> Battle:
        """One round of this owner's, with its vote."""
        with self.db.read() as conn:
            return _battle(conn, owner, battle_id)

    def list_battles(self, owner: str, *, limit: int | None = 100) -> list[Battle]:
        """This owner's battles, newest first."""
        sql = _BATTLE + " WHERE b.owner = ? ORDER BY b.created_utc DESC, b.id DESC"
        params: list[Any] = [check_owner(owner)]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(1, int(limit)))
        with self.db.read() as conn:
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
        with self.db.write() as conn:
            battle = _battle(conn, owner, battle_id)
            if battle.vote is not None:
                raise HistoryError("This round already has a vote: start a new round to vote again.")
            if daily_limit is not None and _votes_since(conn, owner, _utc_midnight()) >= daily_limit:
                raise HistoryError(
                    f"You have cast today's {daily_limit} arena votes: come back tomorrow (UTC), or keep "
                    "comparing without voting."
                )
            now = utc_now()
            _insert_vote(conn, battle_id, owner, choice, now)
            conn.execute("UPDATE battles SET revealed = ? WHERE id = ?", (revealed, battle_id))
            if battle.mode == "blind":
                _reveal_names(conn, battle)
        return replace(battle, vote=choice, voted_utc=now, revealed=revealed)

    def votes_today(self, owner: str) -> int:
        """How many votes this owner cast since midnight UTC (the public daily cap counts these)."""
        with self.db.read() as conn:
            return _votes_since(conn, check_owner(owner), _utc_midnight())

    def battle_rounds(self, owner: str, thread: str) -> list[Battle]:
        """The rounds of one battle of this owner, first to last."""
        with self.db.read() as conn:
            rows = conn.execute(
                _BATTLE + " WHERE b.thread = ? AND b.owner = ? ORDER BY b.round", (thread, check_owner(owner))
            ).fetchall()
        if not rows:
            raise ConversationNotFoundError(BATTLE_NOT_FOUND)
        return [battle_from_row(row) for row in rows]

    def list_rated_battles(self) -> list[RatedBattle]:
        """Every owner's voted rounds, oldest vote first: sides, vote, mode and revealed flags only (no
        owner, no prompt, no text). For the leaderboard, which rates from every visitor's votes."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT b.model_a, b.engine_a, b.model_b, b.engine_b, b.mode, b.revealed, v.vote, "
                "v.created_utc AS voted_utc FROM battles b JOIN votes v ON v.battle_id = b.id "
                "ORDER BY v.created_utc, v.id"
            ).fetchall()
        return [rated_from_row(row) for row in rows]

    def voted_answers(self) -> list[tuple[RatedBattle, str, str]]:
        """Every owner's voted rounds (as `list_rated_battles`) with each side's answer text, for what is
        computed from the answers' style (the leaderboard's style control); the texts go no further."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT b.model_a, b.engine_a, b.model_b, b.engine_b, b.mode, b.revealed, b.round, "
                "b.conversation_a, b.conversation_b, v.vote, v.created_utc AS voted_utc "
                "FROM battles b JOIN votes v ON v.battle_id = b.id ORDER BY v.created_utc, v.id"
            ).fetchall()
            return [
                (rated_from_row(row), _answer(conn, row["conversation_a"], row["round"]),
                 _answer(conn, row["conversation_b"], row["round"]))
                for row in rows
            ]  # fmt: skip

    def votes_on(self, prompts: Sequence[str]) -> list[tuple[str, str, str, str]]:
        """(prompt, model A, model B, vote) of every voted round whose prompt is one of these, whoever voted
        (an evaluation's judge is measured against them); nothing of a round but these four."""
        wanted = sorted(set(prompts))
        if not wanted:
            return []
        marks = ", ".join("?" for _ in wanted)
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT b.prompt, b.model_a, b.model_b, v.vote FROM battles b JOIN votes v ON v.battle_id = b.id "
                f"WHERE b.prompt IN ({marks}) ORDER BY v.created_utc",
                wanted,
            ).fetchall()
        return [(r["prompt"], r["model_a"], r["model_b"], str(r["vote"])) for r in rows]

    def import_rated_battle(self, battle: Battle) -> bool:
        """A voted round read back from elsewhere (a Space's dataset, arena/sync.py): the battle row with its
        vote, under `battle.owner`, with two empty arena conversations for its sides. False (nothing
        written) when a round with its id is already here."""
        if battle.vote is None:
            raise HistoryError("Only a voted round can be imported.")
        owner = check_owner(battle.owner)
        with self.db.write() as conn:
            if conn.execute("SELECT 1 FROM battles WHERE id = ?", (battle.id,)).fetchone() is not None:
                return False
            sides = new_id(), new_id()
            for side, model in zip(sides, (battle.model_a, battle.model_b), strict=True):
                insert_conversation(conn, side, owner, "arena", clean_title(""), model, battle.created_utc)
            _insert_battle(
                conn, replace(battle, owner=owner, conversation_a=sides[0], conversation_b=sides[1])
            )
            conn.execute("UPDATE battles SET revealed = ? WHERE id = ?", (battle.revealed, battle.id))
            _insert_vote(conn, battle.id, owner, battle.vote, battle.voted_utc or battle.created_utc)
        return True


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


def _insert_vote(conn: sqlite3.Connection, battle_id: str, owner: str, vote: Vote, when: str) -> None:
    conn.execute(
        "INSERT INTO votes (id, battle_id, owner, vote, created_utc) VALUES (?, ?, ?, ?, ?)",
        (new_id(), battle_id, owner, str(vote), when),
    )


def _reveal_names(conn: sqlite3.Connection, battle: Battle) -> None:
    """A blind battle's model names, written into its conversations and their answers once voted."""
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


def _battle(conn: sqlite3.Connection, owner: str, battle_id: str) -> Battle:
    """One battle round of this owner, with its vote; another owner's reads as not found."""
    row = conn.execute(
        _BATTLE + " WHERE b.id = ? AND b.owner = ?", (battle_id, check_owner(owner))
    ).fetchone()
    if row is None:
        raise ConversationNotFoundError(BATTLE_NOT_FOUND)
    return battle_from_row(row)


def _answer(conn: sqlite3.Connection, conversation_id: str, round_number: int) -> str:
    """The answer of a round in one side's conversation: its `round_number`-th assistant message."""
    row = conn.execute(
        "SELECT text FROM messages WHERE conversation_id = ? AND role = 'assistant' ORDER BY seq LIMIT 1 OFFSET ?",
        (conversation_id, max(0, int(round_number) - 1)),
    ).fetchone()
    return "" if row is None else str(row["text"])
