"""Arena votes that outlive a Space's restart: JSON lines pushed to a dataset repository, read back at start.

A Space's disk is wiped when it restarts. When the owner names a dataset (PLAYGROUND_DATASET, with an
HF_TOKEN that may write to it), each voted round is appended as one JSON line to `arena/votes-<id>.jsonl`
in a local folder, which huggingface_hub's CommitScheduler pushes to the dataset every few minutes (and at
exit); at start, the dataset's lines are read back and the rounds not already in the store are imported, so
the leaderboard carries on. A line holds what the leaderboard rates and nothing about the visitor: the
round's id, thread and number, mode, both models and engines, the vote, the sides flagged as revealed, and
the times; no prompt, no answer, no visitor id. Rounds never voted on are not pushed. Each process writes a
file of its own, so two replicas, or a restart, never overwrite each other's lines.

Without a dataset, `reset_notice` is the sentence the Arena tab shows on a Space: votes reset on restart.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..history import Battle, HistoryStore, Vote

log = logging.getLogger(__name__)

SUBFOLDER = "arena"  # in the local folder and in the dataset
PUSH_EVERY_MIN = 5.0
IMPORTED_OWNER = "dataset"  # the owner of rounds read back (no visitor's id is ever pushed)
FIELDS = (
    "id", "thread", "round", "mode", "model_a", "engine_a", "model_b", "engine_b",
    "created_utc", "vote", "revealed", "voted_utc",
)  # fmt: skip

Fetch = Callable[[str, str | None], Path]  # (dataset repo, token) -> a local folder with its files


def record(battle: Battle) -> dict[str, Any]:
    """A voted round as one pushed line: what the leaderboard rates, nothing about the visitor."""
    if battle.vote is None:
        raise ValueError("only a voted round is recorded")
    row = {name: getattr(battle, name) for name in FIELDS}
    row["vote"] = str(battle.vote)
    return row


def battle_of(row: dict[str, Any]) -> Battle:
    """The round a line describes (owned by IMPORTED_OWNER, conversations to be created by the store)."""
    return Battle(
        id=str(row["id"]),
        owner=IMPORTED_OWNER,
        prompt="",
        model_a=str(row["model_a"]),
        engine_a=str(row.get("engine_a", "")),
        conversation_a="",
        model_b=str(row["model_b"]),
        engine_b=str(row.get("engine_b", "")),
        conversation_b="",
        created_utc=str(row.get("created_utc") or row["voted_utc"]),
        vote=Vote(str(row["vote"])),
        voted_utc=str(row["voted_utc"]),
        mode=str(row.get("mode", "named")),
        round=int(row.get("round", 1)),
        thread=str(row.get("thread") or row["id"]),
        revealed=str(row.get("revealed", "")),
    )


class VoteWriter:
    """Appends voted rounds to this process's file in `folder`; `lock` is the scheduler's, so a push
    never reads a half-written line."""

    def __init__(self, folder: Path, lock: threading.Lock | None = None) -> None:
        self.path = folder / SUBFOLDER / f"votes-{uuid.uuid4().hex}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = lock or threading.Lock()

    def write(self, battle: Battle) -> None:
        line = json.dumps(record(battle), ensure_ascii=False, sort_keys=True)
        with self.lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


def read_rows(folder: Path) -> Iterator[dict[str, Any]]:
    """Every line of every .jsonl file under `folder`; a line that is not a round's JSON is skipped."""
    for path in sorted(folder.rglob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                battle_of(row)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s line %d skipped: %s", path.name, number, exc)
                continue
            yield row


def import_rows(store: HistoryStore, rows: Iterable[dict[str, Any]]) -> int:
    """The rounds not already in the store, added with their votes; how many were added."""
    added = 0
    for row in rows:
        if store.battles.import_rated_battle(battle_of(row)):
            added += 1
    return added


def hub_fetch(repo: str, token: str | None) -> Path:
    """The dataset's arena files, downloaded into the local cache (a new dataset has none)."""
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(repo, repo_type="dataset", allow_patterns=[f"{SUBFOLDER}/*.jsonl"], token=token)
    )


@dataclass
class ArenaSync:
    """The running sync: where votes are written, and the scheduler pushing them (None in tests)."""

    repo: str
    writer: VoteWriter
    imported: int = 0
    scheduler: Any = None

    def write(self, battle: Battle) -> None:
        try:
            self.writer.write(battle)
        except OSError as exc:  # a full disk must not lose the visitor's vote, only its copy
            log.error("arena vote not written for the dataset %s: %s", self.repo, exc)

    def close(self) -> None:
        if self.scheduler is not None:
            try:
                self.scheduler.trigger().result(timeout=60)  # push what is left
            except Exception as exc:
                log.error("last push of arena votes to %s failed: %s", self.repo, exc)
            self.scheduler.stop()


def start(
    repo: str,
    token: str | None,
    store: HistoryStore,
    folder: Path,
    *,
    fetch: Fetch = hub_fetch,
    push: bool = True,
) -> ArenaSync:
    """Read the dataset back into the store, then write new votes under `folder` (pushed when `push`)."""
    if not token:
        raise ConfigError(
            f"PLAYGROUND_DATASET={repo} needs HF_TOKEN (a token that may write to that dataset), set as a "
            "Space secret."
        )
    imported = import_rows(store, read_rows(fetch(repo, token)))
    scheduler = None
    lock = None
    if push:
        from huggingface_hub import CommitScheduler

        scheduler = CommitScheduler(
            repo_id=repo,
            repo_type="dataset",
            folder_path=folder,
            every=PUSH_EVERY_MIN,
            allow_patterns=[f"{SUBFOLDER}/*.jsonl"],
            private=True,
            token=token,
        )
        lock = scheduler.lock
    log.info(
        "arena votes: %d rounds read back from %s; new votes pushed every %g min",
        imported,
        repo,
        PUSH_EVERY_MIN,
    )
    return ArenaSync(repo, VoteWriter(folder, lock), imported, scheduler)


def reset_notice(space: bool, synced: bool) -> str:
    """What the Arena tab says about keeping votes ('' when there is nothing to say)."""
    if not space or synced:
        return ""
    return (
        "Votes and the leaderboard reset when this Space restarts: its owner has not named a dataset to keep "
        "them (PLAYGROUND_DATASET)."
    )
