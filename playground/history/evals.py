"""Evaluation runs: a run's prompt set (its items, as run), models, settings and judge; what each model
measured (load time, peak memory, its files' hash); one result per model per item, written when its
answer ends, so a run survives a restart and goes on from where it stopped.

Every method takes `owner`; another owner's run reads as not found. A run still marked running at
start-up was cut short by the process's end: `recover_interrupted` marks it so.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConversationNotFoundError
from .database import Database
from .rows import check_owner, dump_json, new_id, utc_now

RUN_NOT_FOUND = "Evaluation run not found: it may have been deleted. Start a new run."
STATUSES = ("running", "stopped", "interrupted", "done")


@dataclass(frozen=True)
class EvalRunRow:
    id: str
    owner: str
    status: str
    set_name: str
    set_hash: str
    items: list[dict[str, Any]]
    models: list[str]
    options: dict[str, Any]
    judge: dict[str, Any]
    created_utc: str
    updated_utc: str


@dataclass(frozen=True)
class EvalResultRow:
    model: str
    item: int
    text: str
    finish_reason: str
    metrics: dict[str, Any]
    verdict: dict[str, Any] | None
    judge: dict[str, Any] | None


class EvalStore:
    """Evaluation runs and their results, each owner's apart."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_run(
        self,
        owner: str,
        *,
        set_name: str,
        set_hash: str,
        items: Sequence[Mapping[str, Any]],
        models: Sequence[str],
        options: Mapping[str, Any],
        judge: Mapping[str, Any] | None = None,
    ) -> EvalRunRow:
        now, run_id = utc_now(), new_id()
        with self.db.write() as conn:
            conn.execute(
                """INSERT INTO eval_runs (id, owner, status, set_name, set_hash, items_json, models_json,
                options_json, judge_json, created_utc, updated_utc)
                VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    run_id, check_owner(owner), set_name, set_hash, dump_json(list(items)), dump_json(list(models)),
                    dump_json(dict(options)), dump_json(dict(judge or {})), now, now,
                ),
            )  # fmt: skip
            return _run(conn, owner, run_id)

    def get_run(self, owner: str, run_id: str) -> EvalRunRow:
        with self.db.read() as conn:
            return _run(conn, owner, run_id)

    def list_runs(self, owner: str, *, limit: int = 50) -> list[EvalRunRow]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM eval_runs WHERE owner = ? ORDER BY created_utc DESC LIMIT ?",
                (check_owner(owner), limit),
            ).fetchall()
        return [_run_from_row(row) for row in rows]

    def set_status(self, owner: str, run_id: str, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        with self.db.write() as conn:
            _run(conn, owner, run_id)
            conn.execute(
                "UPDATE eval_runs SET status = ?, updated_utc = ? WHERE id = ?", (status, utc_now(), run_id)
            )

    def add_result(
        self,
        owner: str,
        run_id: str,
        *,
        model: str,
        item: int,
        text: str,
        finish_reason: str,
        metrics: Mapping[str, Any],
        verdict: Mapping[str, Any] | None,
        judge: Mapping[str, Any] | None = None,
    ) -> bool:
        """Keep one answer's result; False when that model already answered that item (never twice)."""
        with self.db.write() as conn:
            _run(conn, owner, run_id)
            added = conn.execute(
                """INSERT OR IGNORE INTO eval_results (run_id, model, item, text, finish_reason, metrics_json,
                verdict_json, judge_json, created_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    run_id, model, item, text, finish_reason, dump_json(dict(metrics)),
                    dump_json(None if verdict is None else dict(verdict)),
                    dump_json(None if judge is None else dict(judge)), utc_now(),
                ),
            ).rowcount  # fmt: skip
            conn.execute("UPDATE eval_runs SET updated_utc = ? WHERE id = ?", (utc_now(), run_id))
        return bool(added)

    def set_judge(self, owner: str, run_id: str, model: str, item: int, judge: Mapping[str, Any]) -> None:
        """The judge's grade of an answer kept before it (a run's judging goes after its answers)."""
        with self.db.write() as conn:
            _run(conn, owner, run_id)
            conn.execute(
                "UPDATE eval_results SET judge_json = ? WHERE run_id = ? AND model = ? AND item = ?",
                (dump_json(dict(judge)), run_id, model, item),
            )

    def results(self, owner: str, run_id: str) -> list[EvalResultRow]:
        with self.db.read() as conn:
            _run(conn, owner, run_id)
            rows = conn.execute(
                "SELECT * FROM eval_results WHERE run_id = ? ORDER BY model, item", (run_id,)
            ).fetchall()
        return [
            EvalResultRow(
                row["model"],
                int(row["item"]),
                row["text"],
                row["finish_reason"],
                json.loads(row["metrics_json"]),
                _loads(row["verdict_json"]),
                _loads(row["judge_json"]),
            )
            for row in rows
        ]

    def set_model_facts(self, owner: str, run_id: str, model: str, facts: Mapping[str, Any]) -> None:
        """What a model measured in this run (merged into what it had: load time, peak memory, hash)."""
        with self.db.write() as conn:
            _run(conn, owner, run_id)
            row = conn.execute(
                "SELECT facts_json FROM eval_models WHERE run_id = ? AND model = ?", (run_id, model)
            ).fetchone()
            merged = {**(json.loads(row["facts_json"]) if row else {}), **facts}
            conn.execute(
                "INSERT OR REPLACE INTO eval_models (run_id, model, facts_json) VALUES (?, ?, ?)",
                (run_id, model, dump_json(merged)),
            )

    def model_facts(self, owner: str, run_id: str) -> dict[str, dict[str, Any]]:
        with self.db.read() as conn:
            _run(conn, owner, run_id)
            rows = conn.execute(
                "SELECT model, facts_json FROM eval_models WHERE run_id = ?", (run_id,)
            ).fetchall()
        return {row["model"]: json.loads(row["facts_json"]) for row in rows}

    def add_pair(
        self,
        owner: str,
        run_id: str,
        item: int,
        model_a: str,
        model_b: str,
        verdict: str,
        detail: Mapping[str, Any],
    ) -> None:
        """A judge's verdict on two models' answers to one item ('a', 'b' or 'tie', positions swapped)."""
        with self.db.write() as conn:
            _run(conn, owner, run_id)
            conn.execute(
                """INSERT OR REPLACE INTO eval_pairs (run_id, item, model_a, model_b, verdict, detail_json)
                VALUES (?, ?, ?, ?, ?, ?)""",
                (run_id, item, model_a, model_b, verdict, dump_json(dict(detail))),
            )

    def pairs(self, owner: str, run_id: str) -> list[tuple[int, str, str, str]]:
        """(item, model A, model B, verdict) for every judged pair of the run."""
        with self.db.read() as conn:
            _run(conn, owner, run_id)
            rows = conn.execute(
                "SELECT item, model_a, model_b, verdict FROM eval_pairs WHERE run_id = ? ORDER BY item",
                (run_id,),
            ).fetchall()
        return [(int(r["item"]), r["model_a"], r["model_b"], r["verdict"]) for r in rows]

    def recover_interrupted(self) -> int:
        """At start-up: runs still marked running were cut short by the process's end."""
        with self.db.write() as conn:
            return int(
                conn.execute(
                    "UPDATE eval_runs SET status = 'interrupted', updated_utc = ? WHERE status = 'running'",
                    (utc_now(),),
                ).rowcount
            )


def _run(conn: sqlite3.Connection, owner: str, run_id: str) -> EvalRunRow:
    row = conn.execute(
        "SELECT * FROM eval_runs WHERE id = ? AND owner = ?", (run_id, check_owner(owner))
    ).fetchone()
    if row is None:
        raise ConversationNotFoundError(RUN_NOT_FOUND)
    return _run_from_row(row)


def _run_from_row(row: sqlite3.Row) -> EvalRunRow:
    return EvalRunRow(
        row["id"], row["owner"], row["status"], row["set_name"], row["set_hash"], json.loads(row["items_json"]),
        json.loads(row["models_json"]), json.loads(row["options_json"]), json.loads(row["judge_json"]),
        row["created_utc"], row["updated_utc"],
    )  # fmt: skip


def _loads(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)
