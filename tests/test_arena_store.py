"""The store's arena part: rounds, votes that persist, the daily cap, blind names, every visitor's votes."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.errors import HistoryError
from playground.history import HistoryStore, Vote, new_browser_id


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(tmp_path / "history.db")


def test_rounds_share_the_conversations_and_each_takes_one_vote(store: HistoryStore) -> None:
    owner = new_browser_id()
    first = store.battles.create_battle(
        owner, "one", "a@onnx", "b@transformers", engine_a="onnx", engine_b="transformers"
    )
    assert (first.round, first.thread, first.mode) == (1, first.id, "named")
    second = store.battles.add_round(owner, first.id, "two")
    assert (second.round, second.thread) == (2, first.id)
    assert (second.conversation_a, second.conversation_b) == (first.conversation_a, first.conversation_b)
    questions = [m.text for m in store.conversations.get_conversation(owner, first.conversation_a).messages]
    assert questions == ["one", "two"]
    store.battles.record_vote(owner, first.id, "a")
    store.battles.record_vote(owner, second.id, Vote.TIE)  # one vote per round, not per battle
    with pytest.raises(HistoryError, match="already has a vote"):
        store.battles.record_vote(owner, second.id, "b")
    assert [(r.round, r.vote) for r in store.battles.battle_rounds(owner, first.id)] == [
        (1, Vote.A),
        (2, Vote.TIE),
    ]


def test_votes_persist_across_a_reopen(tmp_path: Path) -> None:
    owner = new_browser_id()
    with HistoryStore(tmp_path / "h.db") as first:
        battle = first.battles.create_battle(
            owner, "p", "a@onnx", "b@onnx", parameters={"a": {"options": {"seed": 3}}}
        )
        first.battles.record_vote(owner, battle.id, "both_bad")
    with HistoryStore(tmp_path / "h.db") as again:
        reloaded = again.battles.get_battle(owner, battle.id)
        assert reloaded.vote == Vote.BOTH_BAD and reloaded.voted_utc
        assert reloaded.parameters == {"a": {"options": {"seed": 3}}}
        assert [r.vote for r in again.battles.list_rated_battles()] == [Vote.BOTH_BAD]


def test_a_daily_cap_counts_this_visitors_votes_only(store: HistoryStore) -> None:
    alice, bob = new_browser_id(), new_browser_id()
    battles = [store.battles.create_battle(alice, f"p{i}", "a@onnx", "b@onnx") for i in range(3)]
    store.battles.record_vote(alice, battles[0].id, "a", daily_limit=2)
    store.battles.record_vote(alice, battles[1].id, "b", daily_limit=2)
    with pytest.raises(HistoryError, match="today's 2 arena votes"):
        store.battles.record_vote(alice, battles[2].id, "a", daily_limit=2)
    assert (
        store.battles.votes_today(alice) == 2 and store.battles.get_battle(alice, battles[2].id).vote is None
    )
    theirs = store.battles.create_battle(bob, "q", "a@onnx", "b@onnx")
    store.battles.record_vote(bob, theirs.id, "a", daily_limit=2)
    assert store.battles.votes_today(bob) == 1


def test_blind_conversations_carry_no_model_until_the_vote(store: HistoryStore) -> None:
    owner = new_browser_id()
    battle = store.battles.create_battle(
        owner, "p", "phi-3-mini-4k@onnx", "phi-3.5-mini@onnx", engine_a="onnx", engine_b="onnx", mode="blind"
    )
    for conversation in (battle.conversation_a, battle.conversation_b):
        store.conversations.add_message(owner, conversation, "assistant", "an answer", finish_reason="stop")
    listed = store.conversations.list_conversations(owner)
    assert {s.model for s in listed} == {""}
    voted = store.battles.record_vote(owner, battle.id, "a", revealed="b")
    assert voted.revealed == "b" and voted.vote == Vote.A
    assert {s.model for s in store.conversations.list_conversations(owner)} == {
        "phi-3-mini-4k@onnx",
        "phi-3.5-mini@onnx",
    }
    answer = store.conversations.get_conversation(owner, battle.conversation_a).messages[-1]
    assert (answer.model, answer.engine) == ("phi-3-mini-4k@onnx", "onnx")


def test_every_visitors_votes_are_listed_without_owners_or_texts(store: HistoryStore) -> None:
    alice, bob = new_browser_id(), new_browser_id()
    mine = store.battles.create_battle(
        alice, "alice's secret prompt", "x@onnx", "y@onnx", engine_a="onnx", engine_b="onnx"
    )
    theirs = store.battles.create_battle(
        bob, "bob's secret prompt", "y@onnx", "x@onnx", engine_a="onnx", engine_b="onnx", mode="blind"
    )
    store.battles.create_battle(bob, "never voted", "x@onnx", "y@onnx")
    store.battles.record_vote(alice, mine.id, "a")
    store.battles.record_vote(bob, theirs.id, "tie", revealed="ab")
    rows = store.battles.list_rated_battles()
    assert [(r.model_a, r.vote, r.mode, r.revealed) for r in rows] == [
        ("x@onnx", Vote.A, "named", ""),
        ("y@onnx", Vote.TIE, "blind", "ab"),
    ]
    text = repr(rows)
    assert "secret" not in text and alice not in text and bob not in text
    with pytest.raises(HistoryError, match="Unknown revealed"):
        store.battles.record_vote(bob, store.battles.list_battles(bob)[0].id, "a", revealed="c")
