"""On a Space the disk does not survive a restart: a visitor's history comes back from their browser."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from playground.history import HistoryStore, new_browser_id
from playground.settings import Settings
from playground.ui.history_tab import HistoryTab


def tab_over(store: HistoryStore) -> HistoryTab:
    return HistoryTab(SimpleNamespace(history=store, settings=Settings.from_env({})))  # type: ignore[arg-type]


def test_history_survives_a_restart_through_the_browser_copy(tmp_path: Path) -> None:
    owner = new_browser_id()
    before = HistoryStore(tmp_path / "before.db")
    conversation = before.conversations.create_conversation(
        owner, "instruct", "Capitals", "smollm2-135m-instruct@onnx"
    )
    before.conversations.add_message(owner, conversation.id, "user", "What is the capital of France?")
    before.conversations.add_message(owner, conversation.id, "assistant", "Paris.", finish_reason="stop",
                       metrics={"completion_tokens": 2, "ttft_s": 0.07})  # fmt: skip
    copy = tab_over(before).browser_copy(owner)
    assert copy is not None and "Paris." in copy

    after = HistoryStore(tmp_path / "after.db")  # the restarted Space: an empty disk
    tab_over(after).restore(owner, copy)
    [restored] = after.conversations.list_conversations(owner)
    messages = after.conversations.get_conversation(owner, restored.id).messages
    assert restored.title == "Capitals"
    assert [(m.role, m.text) for m in messages] == [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris."),
    ]

    tab_over(after).restore(owner, copy)  # a second page load does not duplicate it
    assert len(after.conversations.list_conversations(owner)) == 1
    assert tab_over(after).browser_copy(new_browser_id()) is None, "another visitor has nothing to copy"


def test_the_browser_copy_is_on_for_a_space() -> None:
    assert Settings.from_env({"SPACE_ID": "me/playground"}).browser_history
    assert not Settings.from_env({}).browser_history
