"""Conversions between SQLite rows and history records, and the checks every write goes through."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

from ..errors import HistoryError
from ..types import FinishReason, Metrics, Role
from .images import check_image_ref
from .records import Battle, ConversationSummary, MessageDraft, RatedBattle, StoredMessage, Vote
from .redact import clean_parameters

ROLES = ("system", "user", "assistant")
TITLE_MAX = 200


def utc_now() -> str:
    """The current time as a UTC ISO 8601 string (sortable as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_id() -> str:
    return uuid.uuid4().hex


def metrics_dict(metrics: Metrics | Mapping[str, object] | None) -> dict[str, object] | None:
    """Metrics as the plain dict the store keeps."""
    if metrics is None:
        return None
    if isinstance(metrics, Metrics):
        return metrics.to_dict()
    return dict(metrics)


def check_owner(owner: str) -> str:
    if not isinstance(owner, str) or not owner:
        raise HistoryError("No visitor id: reload the page.")
    return owner


def clean_title(title: str) -> str:
    cleaned = " ".join((title or "").split())
    return cleaned[:TITLE_MAX] or "New conversation"


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def dump_json(value: object) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def check_finish_reason(value: FinishReason | str) -> str:
    try:
        return str(FinishReason(value))
    except ValueError:
        choices = ", ".join(r.value for r in FinishReason)
        raise HistoryError(f"Unknown finish reason {value!r}: use one of {choices}.") from None


def message_draft(
    role: str,
    text: str,
    images: Sequence[str],
    model: str,
    engine: str,
    parameters: Mapping[str, object] | None,
    metrics: Metrics | Mapping[str, object] | None,
    finish_reason: FinishReason | str | None,
    created_utc: str,
    *,
    tokens: Sequence[Mapping[str, object]] | None = None,
    branch_at: int | None = None,
    hidden: bool = False,
) -> MessageDraft:
    """A message checked before writing: known role and finish reason, image references, no secrets;
    a branch's position (`branch_at`) and whether it is hidden only on an answer."""
    if role not in ROLES:
        raise HistoryError(f"Unknown role {role!r}: use system, user or assistant.")
    if (branch_at is not None or hidden) and role != "assistant":
        raise HistoryError("Only an answer can be a branch: a question never is.")
    if branch_at is not None and (
        isinstance(branch_at, bool) or not isinstance(branch_at, int) or branch_at < 0
    ):
        raise HistoryError(f"A branch's token must be a number from 0 (got {branch_at!r}).")
    for ref in images:
        check_image_ref(ref)
    reason = None if finish_reason is None else FinishReason(check_finish_reason(finish_reason))
    return MessageDraft(
        cast(Role, role),
        text,
        tuple(images),
        model,
        engine,
        clean_parameters(parameters),
        metrics_dict(metrics),
        reason,
        created_utc,
        None if tokens is None else [dict(t) for t in tokens if isinstance(t, Mapping)],
        branch_at,
        bool(hidden),
    )


def summary_from_row(row: sqlite3.Row) -> ConversationSummary:
    return ConversationSummary(
        row["id"],
        row["owner"],
        row["tab"],
        row["title"],
        row["model"],
        row["created_utc"],
        row["updated_utc"],
        int(row["message_count"]),
    )


def message_from_row(row: sqlite3.Row, images: tuple[str, ...]) -> StoredMessage:
    reason = row["finish_reason"]
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        seq=int(row["seq"]),
        role=row["role"],
        text=row["text"],
        images=images,
        model=row["model"],
        engine=row["engine"],
        parameters=json.loads(row["parameters_json"] or "{}"),
        metrics=json.loads(row["metrics_json"]) if row["metrics_json"] else None,
        finish_reason=FinishReason(reason) if reason else None,
        created_utc=row["created_utc"],
        updated_utc=row["updated_utc"],
        experts=_experts_of(row),
        tokens=_tokens_of(row),
        branch_at=row["branch_at"],
        hidden=bool(row["hidden"]),
    )


def _tokens_of(row: sqlite3.Row) -> list[dict[str, object]] | None:
    raw = row["tokens_json"]
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None  # damaged: the answer reads without its token view
    return [t for t in value if isinstance(t, dict)] if isinstance(value, list) else None


def _experts_of(row: sqlite3.Row) -> dict[str, object] | None:
    raw = row["experts_json"]
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None  # a damaged map: the answer reads without it (moe_view says so when asked)
    return value if isinstance(value, dict) else None


def battle_from_row(row: sqlite3.Row) -> Battle:
    return Battle(
        id=row["id"],
        owner=row["owner"],
        prompt=row["prompt"],
        model_a=row["model_a"],
        engine_a=row["engine_a"],
        conversation_a=row["conversation_a"],
        model_b=row["model_b"],
        engine_b=row["engine_b"],
        conversation_b=row["conversation_b"],
        parameters=json.loads(row["parameters_json"] or "{}"),
        created_utc=row["created_utc"],
        vote=Vote(row["vote"]) if row["vote"] else None,
        voted_utc=row["voted_utc"],
        mode=row["mode"],
        round=int(row["round"]),
        thread=row["thread"],
        revealed=row["revealed"],
    )


def rated_from_row(row: sqlite3.Row) -> RatedBattle:
    return RatedBattle(
        row["model_a"],
        row["engine_a"],
        row["model_b"],
        row["engine_b"],
        Vote(row["vote"]),
        row["mode"],
        row["revealed"],
        row["voted_utc"],
    )
