"""One visitor can never see, change or delete another's history (store level)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from playground.errors import ConversationNotFoundError
from playground.history import HistoryStore
from playground.history.export import export_json, export_markdown

PNG = b"\x89PNG shared bytes"


def alices_conversation(store: HistoryStore, alice: str) -> tuple[str, str]:
    conversation = store.conversations.create_conversation(alice, "instruct", "Alice's secret plans")
    store.conversations.add_message(alice, conversation.id, "user", "my secret")
    answer = store.conversations.add_message(
        alice, conversation.id, "assistant", "noted", finish_reason="stop"
    )
    return conversation.id, answer


ATTEMPTS: dict[str, Callable[[HistoryStore, str, str, str], object]] = {
    "get": lambda s, bob, c, m: s.conversations.get_conversation(bob, c),
    "chat_messages": lambda s, bob, c, m: s.conversations.chat_messages(bob, c),
    "rename": lambda s, bob, c, m: s.conversations.rename_conversation(bob, c, "mine now"),
    "delete": lambda s, bob, c, m: s.conversations.delete_conversation(bob, c),
    "add_message": lambda s, bob, c, m: s.conversations.add_message(bob, c, "user", "injected"),
    "start_answer": lambda s, bob, c, m: s.conversations.start_answer(bob, c),
    "update_message_text": lambda s, bob, c, m: s.conversations.update_message_text(bob, m, "changed"),
    "finish_message": lambda s, bob, c, m: s.conversations.finish_message(
        bob, m, finish_reason="error", text="x"
    ),
    "edit_last_question": lambda s, bob, c, m: s.conversations.edit_last_question(bob, c, "changed"),
    "export_json": lambda s, bob, c, m: export_json(s, bob, [c]),
    "export_markdown": lambda s, bob, c, m: export_markdown(s, bob, [c]),
}


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_another_owner_cannot_touch_a_conversation(
    store: HistoryStore, alice: str, bob: str, attempt: str
) -> None:
    conversation_id, answer_id = alices_conversation(store, alice)
    before = store.conversations.get_conversation(alice, conversation_id)
    with pytest.raises(ConversationNotFoundError) as theirs:
        ATTEMPTS[attempt](store, bob, conversation_id, answer_id)
    with pytest.raises(ConversationNotFoundError) as missing:
        ATTEMPTS[attempt](store, bob, "0" * 32, "0" * 32)
    assert str(theirs.value) == str(missing.value)  # nothing tells "exists, not yours" from "no such id"
    assert store.conversations.get_conversation(alice, conversation_id) == before


def test_lists_and_searches_show_only_ones_own(store: HistoryStore, alice: str, bob: str) -> None:
    alices_conversation(store, alice)
    own = store.conversations.create_conversation(bob, "instruct", "Bob's")
    assert [c.id for c in store.conversations.list_conversations(bob)] == [own.id]
    assert store.conversations.list_conversations(bob, search="secret") == []
    assert export_json(store, bob).count('"title"') == 1


def test_battles_and_votes_are_private(store: HistoryStore, alice: str, bob: str) -> None:
    battle = store.battles.create_battle(alice, "p", "a", "b")
    with pytest.raises(ConversationNotFoundError):
        store.battles.get_battle(bob, battle.id)
    with pytest.raises(ConversationNotFoundError):
        store.battles.record_vote(bob, battle.id, "a")
    assert store.battles.list_battles(bob) == []
    assert store.battles.get_battle(alice, battle.id).vote is None


def test_delete_my_data_removes_only_mine(store: HistoryStore, alice: str, bob: str) -> None:
    conversation_id, _ = alices_conversation(store, alice)
    store.battles.create_battle(alice, "p", "a", "b")
    bobs = store.conversations.create_conversation(bob, "instruct", "Bob's")
    store.battles.create_battle(bob, "q", "a", "b")
    assert store.delete_owner_data(alice) == 3  # one conversation and the two sides of a battle
    assert store.conversations.list_conversations(alice) == [] and store.battles.list_battles(alice) == []
    assert [c.id for c in store.conversations.list_conversations(bob, tab="instruct")] == [bobs.id]
    assert len(store.battles.list_battles(bob)) == 1
    with pytest.raises(ConversationNotFoundError):
        store.conversations.get_conversation(alice, conversation_id)


def test_deleting_keeps_an_image_another_owner_still_uses(store: HistoryStore, alice: str, bob: str) -> None:
    ref = store.images.store_image(PNG)
    for owner in (alice, bob):
        conversation = store.conversations.create_conversation(owner, "vision", "img")
        store.conversations.add_message(owner, conversation.id, "user", "look", images=[ref])
    store.delete_owner_data(alice)
    assert store.images.image_path(ref).is_file()
    assert store.conversations.get_conversation(
        bob, store.conversations.list_conversations(bob)[0].id
    ).messages[0].images == (ref,)
