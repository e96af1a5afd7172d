from __future__ import annotations

import pytest

from playground.errors import ConversationNotFoundError, HistoryError
from playground.history import HistoryStore, Vote
from playground.types import FinishReason, Message, Metrics

PNG = b"\x89PNG\r\n\x1a\n" + b"not really an image"


def test_conversation_round_trip(store: HistoryStore, alice: str) -> None:
    made = store.conversations.create_conversation(
        alice, "instruct", "  Paris \n question ", "smollm2-135m-instruct@onnx"
    )
    loaded = store.conversations.get_conversation(alice, made.id)
    assert loaded.summary == made
    assert loaded.title == "Paris question"
    assert (loaded.summary.tab, loaded.summary.model, loaded.messages) == (
        "instruct",
        "smollm2-135m-instruct@onnx",
        (),
    )
    assert made.created_utc.endswith("+00:00")


def test_message_round_trip_with_images_parameters_and_metrics(store: HistoryStore, alice: str) -> None:
    conversation = store.conversations.create_conversation(alice, "vision", "", "m")
    ref = store.images.store_image(PNG, ".png")
    parameters = {"temperature": 0.2, "max_new_tokens": 64, "api_key": "sk-secret", "HF_TOKEN": "hf_x"}
    metrics = Metrics(prompt_tokens=9, completion_tokens=7, ttft_s=0.05, tokens_per_s=40.0, total_s=0.2)
    store.conversations.add_message(alice, conversation.id, "system", "Be brief.")
    store.conversations.add_message(alice, conversation.id, "user", "What is this?", images=[ref])
    store.conversations.add_message(
        alice,
        conversation.id,
        "assistant",
        "A test.",
        model="m@onnx",
        engine="onnx",
        parameters=parameters,
        metrics=metrics,
        finish_reason="length",
    )
    system, user, answer = store.conversations.get_conversation(alice, conversation.id).messages
    assert [m.seq for m in (system, user, answer)] == [1, 2, 3]
    assert (user.role, user.text, user.images, user.finish_reason) == ("user", "What is this?", (ref,), None)
    assert store.images.image_path(ref).read_bytes() == PNG
    assert (answer.model, answer.engine, answer.finish_reason) == ("m@onnx", "onnx", FinishReason.LENGTH)
    assert answer.parameters == {"temperature": 0.2, "max_new_tokens": 64}
    assert answer.metrics == metrics.to_dict()


def test_chat_messages_continue_a_conversation(store: HistoryStore, alice: str) -> None:
    conversation = store.conversations.create_conversation(alice, "instruct", "t")
    ref = store.images.store_image(PNG)
    store.conversations.add_message(alice, conversation.id, "user", "Hi", images=[ref])
    store.conversations.add_message(alice, conversation.id, "assistant", "Hello!", finish_reason="stop")
    store.conversations.add_message(alice, conversation.id, "user", "Again")
    store.conversations.add_message(alice, conversation.id, "assistant", "", finish_reason="error")
    assert store.conversations.chat_messages(alice, conversation.id) == [
        Message("user", "Hi", (str(store.images.image_path(ref)),)),
        Message("assistant", "Hello!"),
        Message("user", "Again"),
    ]


def test_battle_and_vote_round_trip(store: HistoryStore, alice: str) -> None:
    battle = store.battles.create_battle(
        alice, "Say hi", "a@onnx", "b@transformers", engine_a="onnx", engine_b="transformers",
        parameters={"temperature": 0.0, "secret": "x"},
    )  # fmt: skip
    assert store.battles.get_battle(alice, battle.id) == battle
    assert battle.parameters == {"temperature": 0.0}
    for side, model in ((battle.conversation_a, "a@onnx"), (battle.conversation_b, "b@transformers")):
        conversation = store.conversations.get_conversation(alice, side)
        assert (conversation.summary.tab, conversation.summary.model) == ("arena", model)
        assert [(m.role, m.text) for m in conversation.messages] == [("user", "Say hi")]
    store.battles.record_vote(alice, battle.id, "tie")
    voted = store.battles.get_battle(alice, battle.id)
    assert voted.vote == Vote.TIE and voted.voted_utc
    assert store.battles.list_battles(alice) == [voted]


def test_one_vote_per_battle_and_only_known_votes(store: HistoryStore, alice: str) -> None:
    battle = store.battles.create_battle(alice, "p", "a", "b")
    with pytest.raises(HistoryError, match="a, b, tie or both_bad"):
        store.battles.record_vote(alice, battle.id, "c")
    store.battles.record_vote(alice, battle.id, Vote.BOTH_BAD)
    with pytest.raises(HistoryError, match="already has a vote"):
        store.battles.record_vote(alice, battle.id, "a")


def test_list_newest_first_with_search(store: HistoryStore, alice: str) -> None:
    first = store.conversations.create_conversation(alice, "instruct", "About Paris")
    second = store.conversations.create_conversation(alice, "moe", "Experts")
    store.conversations.add_message(alice, second.id, "user", "How many experts are active? 100%_sure")
    assert [c.id for c in store.conversations.list_conversations(alice)] == [second.id, first.id]
    assert [c.id for c in store.conversations.list_conversations(alice, search="paris")] == [first.id]
    assert [c.id for c in store.conversations.list_conversations(alice, search="ACTIVE")] == [second.id]
    assert [c.id for c in store.conversations.list_conversations(alice, search="100%_")] == [second.id]
    assert store.conversations.list_conversations(alice, search="0_%") == []  # literal, not wildcards
    assert [c.id for c in store.conversations.list_conversations(alice, tab="moe")] == [second.id]
    assert store.conversations.list_conversations(alice)[0].message_count == 1
    assert len(store.conversations.list_conversations(alice, limit=1)) == 1


def test_rename_delete_and_edit_last_question(store: HistoryStore, alice: str) -> None:
    conversation = store.conversations.create_conversation(alice, "instruct", "old")
    store.conversations.add_message(alice, conversation.id, "user", "first")
    store.conversations.add_message(alice, conversation.id, "assistant", "one", finish_reason="stop")
    question = store.conversations.add_message(alice, conversation.id, "user", "secnd")
    store.conversations.add_message(alice, conversation.id, "assistant", "two", finish_reason="stop")
    store.conversations.rename_conversation(alice, conversation.id, "new")
    assert store.conversations.edit_last_question(alice, conversation.id, "second") == question
    loaded = store.conversations.get_conversation(alice, conversation.id)
    assert loaded.title == "new"
    assert [(m.role, m.text) for m in loaded.messages] == [
        ("user", "first"),
        ("assistant", "one"),
        ("user", "second"),
    ]
    store.conversations.delete_conversation(alice, conversation.id)
    with pytest.raises(ConversationNotFoundError):
        store.conversations.get_conversation(alice, conversation.id)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "tool"}, "Unknown role"),
        ({"finish_reason": "done"}, "Unknown finish reason"),
        ({"images": ["../../etc/passwd"]}, "not an image reference"),
    ],
)
def test_bad_messages_are_refused(store: HistoryStore, alice: str, kwargs: dict, message: str) -> None:
    conversation = store.conversations.create_conversation(alice, "instruct", "t")
    values = {"role": "user", "text": "x", **kwargs}
    with pytest.raises(HistoryError, match=message):
        store.conversations.add_message(alice, conversation.id, **values)
    assert store.conversations.get_conversation(alice, conversation.id).messages == ()


def test_an_empty_owner_is_refused(store: HistoryStore) -> None:
    with pytest.raises(HistoryError, match="reload the page"):
        store.conversations.create_conversation("", "instruct", "t")


def test_recover_interrupted_marks_only_unfinished_answers(store: HistoryStore, alice: str) -> None:
    conversation = store.conversations.create_conversation(alice, "instruct", "t")
    store.conversations.add_message(alice, conversation.id, "user", "q")
    store.conversations.add_message(alice, conversation.id, "assistant", "done", finish_reason="stop")
    store.conversations.add_message(alice, conversation.id, "user", "q2")
    recorder = store.conversations.start_answer(alice, conversation.id, model="m")
    recorder.update("half an ans")
    assert store.db.recover_interrupted() == 1
    messages = store.conversations.get_conversation(alice, conversation.id).messages
    assert [m.finish_reason for m in messages] == [None, "stop", None, "interrupted"]
    assert messages[-1].text == "half an ans"
    assert store.db.recover_interrupted() == 0
