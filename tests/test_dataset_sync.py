"""Arena votes kept in a dataset: the folder the CommitScheduler pushes, and the read-back at start.

The push itself cannot reach the hub here: the tests check the folder it would push (written by the real
arena after a real round on the embedded model) and read it back into fresh SQLite stores, through the
same injectable fetch the app uses to download the dataset's files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playground.arena import sync
from playground.arena.pairing import Side, named
from playground.arena.ratings import leaderboard
from playground.arena.service import ArenaService
from playground.context import AppContext
from playground.errors import ConfigError
from playground.history import HistoryStore, new_browser_id
from playground.options import GenerationOptions
from tests.support import QUESTION

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
GREEDY = GenerationOptions(temperature=0, max_new_tokens=12)


@pytest.fixture(scope="module")
def played(ctx: AppContext, tmp_path_factory: pytest.TempPathFactory) -> tuple[HistoryStore, Path, str]:
    """Two voted rounds and one unvoted, played by the real arena into its own store; the pushed folder."""
    base = tmp_path_factory.mktemp("sync")
    store = HistoryStore(base / "a.db")
    writer = sync.VoteWriter(base / "push")
    arena = ArenaService(ctx.answers, store, on_vote=writer.write)
    owner = new_browser_id()
    view = arena.run(
        owner, arena.start(owner, named(Side(ONNX, options=GREEDY), Side(HF, options=GREEDY)), QUESTION)
    )
    arena.vote(owner, view.battle_id, "a")
    second = arena.run(owner, arena.next_round(owner, view.battle_id, "And of Italy?"))
    arena.vote(owner, second.battle_id, "tie")
    arena.run(owner, arena.next_round(owner, second.battle_id, "Unvoted round"))
    return store, base / "push", owner


def test_the_pushed_folder_holds_one_line_per_voted_round(played: tuple[HistoryStore, Path, str]) -> None:
    _, folder, owner = played
    files = list((folder / sync.SUBFOLDER).glob("votes-*.jsonl"))
    assert len(files) == 1
    text = files[0].read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines()]
    assert [r["vote"] for r in rows] == ["a", "tie"] and [r["round"] for r in rows] == [1, 2]
    assert all(set(r) == set(sync.FIELDS) for r in rows)
    assert {r["model_a"] for r in rows} == {ONNX} and {r["engine_b"] for r in rows} == {"transformers"}
    assert rows[0]["thread"] == rows[1]["thread"] == rows[0]["id"]
    for private in (owner, QUESTION, "And of Italy?", "Paris"):  # no visitor id, prompt or answer
        assert private not in text


def test_read_back_into_a_fresh_store_gives_the_same_leaderboard(
    played: tuple[HistoryStore, Path, str], tmp_path: Path
) -> None:
    store, folder, _ = played
    fresh = HistoryStore(tmp_path / "b.db")
    assert sync.import_rows(fresh, sync.read_rows(folder)) == 2
    assert fresh.battles.list_rated_battles() == store.battles.list_rated_battles()
    assert leaderboard(fresh.battles.list_rated_battles(), seed=0) == leaderboard(
        store.battles.list_rated_battles(), seed=0
    )
    assert sync.import_rows(fresh, sync.read_rows(folder)) == 0  # read back twice: nothing doubled
    assert len(fresh.battles.list_rated_battles()) == 2


def test_start_reads_the_dataset_through_the_injected_fetch(
    played: tuple[HistoryStore, Path, str], tmp_path: Path
) -> None:
    _, folder, _ = played
    downloaded = tmp_path / "dataset"
    (downloaded / sync.SUBFOLDER).mkdir(parents=True)
    for path in (folder / sync.SUBFOLDER).glob("*.jsonl"):
        (downloaded / sync.SUBFOLDER / path.name).write_text(path.read_text() + "not json\n{}\n")
    asked: list[tuple[str, str | None]] = []

    def fetch(repo: str, token: str | None) -> Path:
        asked.append((repo, token))
        return downloaded

    fresh = HistoryStore(tmp_path / "c.db")
    running = sync.start("me/votes", "hf_x", fresh, tmp_path / "local", fetch=fetch, push=False)
    assert asked == [("me/votes", "hf_x")] and running.imported == 2  # the two bad lines skipped
    assert len(fresh.battles.list_rated_battles()) == 2
    assert running.writer.path.parent == tmp_path / "local" / sync.SUBFOLDER  # new votes go here
    with pytest.raises(ConfigError, match="HF_TOKEN"):
        sync.start("me/votes", None, fresh, tmp_path / "local", fetch=fetch, push=False)


def test_reset_notice() -> None:
    assert "reset when this Space restarts" in sync.reset_notice(space=True, synced=False)
    assert sync.reset_notice(space=True, synced=True) == ""
    assert sync.reset_notice(space=False, synced=False) == ""
