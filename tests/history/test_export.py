from __future__ import annotations

import json

import pytest

from playground.errors import HistoryError, ImportFormatError
from playground.history import HistoryStore
from playground.history.export import export_json, export_markdown, import_json
from playground.history.records import ConversationDraft, MessageDraft
from playground.types import Metrics

PNG = b"\x89PNG\r\n\x1a\n exported image"
METRICS = Metrics(prompt_tokens=12, completion_tokens=8, ttft_s=0.072, tokens_per_s=64.5, total_s=0.2)


def full_conversation(store: HistoryStore, owner: str) -> str:
    conversation = store.conversations.create_conversation(owner, "vision", "Paris, with a picture", "m@onnx")
    ref = store.images.store_image(PNG)
    store.conversations.add_message(owner, conversation.id, "system", "Answer in one sentence.")
    store.conversations.add_message(
        owner, conversation.id, "user", "What is the capital of France?", images=[ref]
    )
    store.conversations.add_message(
        owner, conversation.id, "assistant", "The capital of France is Paris.", model="m@onnx", engine="onnx",
        parameters={"temperature": 0.0, "max_new_tokens": 64, "api_key": "sk-never"}, metrics=METRICS,
        finish_reason="stop",
    )  # fmt: skip
    store.conversations.add_message(owner, conversation.id, "user", "And Italy?")
    recorder = store.conversations.start_answer(owner, conversation.id, model="m@onnx", engine="onnx")
    recorder.update("Rome")
    recorder.cancel()
    return conversation.id


def same(a: object, b: object) -> None:
    """Two conversations hold the same messages (ids aside)."""
    fields = (
        "role",
        "text",
        "images",
        "model",
        "engine",
        "parameters",
        "metrics",
        "finish_reason",
        "created_utc",
    )
    assert [[getattr(m, f) for f in fields] for m in a.messages] == [  # type: ignore[attr-defined]
        [getattr(m, f) for f in fields]
        for m in b.messages  # type: ignore[attr-defined]
    ]
    keys = ("tab", "title", "model", "created_utc", "updated_utc", "message_count")
    assert [getattr(a.summary, k) for k in keys] == [getattr(b.summary, k) for k in keys]  # type: ignore[attr-defined]


def test_json_export_then_import_reproduces_the_conversation(
    store: HistoryStore, alice: str, bob: str
) -> None:
    original = store.conversations.get_conversation(alice, full_conversation(store, alice))
    exported = export_json(store, alice)
    assert "sk-never" not in exported and "api_key" not in exported and alice not in exported
    result = import_json(store, bob, exported)
    assert result.images_missing == 0
    (new_id,) = result.conversation_ids
    assert new_id != original.id
    imported = store.conversations.get_conversation(bob, new_id)
    same(imported, original)
    assert imported.summary.owner == bob


def test_import_into_another_store_carries_the_images(store: HistoryStore, alice: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    original = store.conversations.get_conversation(alice, full_conversation(store, alice))
    with HistoryStore(tmp_path / "elsewhere" / "history.db") as other:
        (new_id,) = import_json(other, alice, export_json(store, alice)).conversation_ids
        imported = other.conversations.get_conversation(alice, new_id)
        same(imported, original)
        assert other.images.image_path(imported.messages[1].images[0]).read_bytes() == PNG


def test_an_export_without_images_imports_elsewhere_without_them(
    store: HistoryStore, alice: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    full_conversation(store, alice)
    exported = export_json(store, alice, include_images=False)
    with HistoryStore(tmp_path / "elsewhere" / "history.db") as other:
        result = import_json(other, alice, exported)
        assert result.images_missing == 1
        assert (
            other.conversations.get_conversation(alice, result.conversation_ids[0]).messages[1].images == ()
        )


def test_export_one_or_all(store: HistoryStore, alice: str) -> None:
    first = full_conversation(store, alice)
    second = store.conversations.create_conversation(alice, "instruct", "Second").id
    assert len(json.loads(export_json(store, alice))["conversations"]) == 2
    document = json.loads(export_json(store, alice, [first]))
    assert (document["format"], document["version"]) == ("slm-playground-history", 1)
    assert [c["title"] for c in document["conversations"]] == ["Paris, with a picture"]
    assert "# Second" in export_markdown(store, alice, [second])


def test_markdown_is_readable(store: HistoryStore, alice: str) -> None:
    conversation_id = full_conversation(store, alice)
    ref = store.conversations.get_conversation(alice, conversation_id).messages[1].images[0]
    text = export_markdown(store, alice, [conversation_id])
    for expected in (
        "# Paris, with a picture",
        "Tab: vision · Model: `m@onnx`",
        "## System\n\nAnswer in one sentence.",
        "## User\n\nWhat is the capital of France?",
        f"![image 1](images/{ref})",
        "## Assistant · `m@onnx` on ONNX Runtime GenAI\n\nThe capital of France is Paris.",
        "*max_new_tokens 64, temperature 0.0 · 8 tokens · first token 72.0 ms · 64.5 tok/s · total 0.2 s"
        " · finish: stop*",
        "Rome\n\n*finish: cancelled*",
    ):
        assert expected in text
    assert "sk-never" not in text


def test_an_answer_exported_mid_stream_imports_as_interrupted(
    store: HistoryStore, alice: str, bob: str
) -> None:
    conversation = store.conversations.create_conversation(alice, "instruct", "t")
    store.conversations.add_message(alice, conversation.id, "user", "q")
    store.conversations.start_answer(alice, conversation.id).update("parti")
    (new_id,) = import_json(store, bob, export_json(store, alice)).conversation_ids
    assert store.conversations.get_conversation(bob, new_id).messages[-1].finish_reason == "interrupted"


def test_foreign_image_references_are_dropped(store: HistoryStore, alice: str, bob: str) -> None:
    full_conversation(store, alice)
    document = json.loads(export_json(store, alice, include_images=False))
    document["conversations"][0]["messages"][1]["images"] = [{"ref": "../../etc/passwd"}, {"ref": "x.png"}]
    result = import_json(store, bob, json.dumps(document))
    assert result.images_missing == 2  # a reference that is not ours is dropped, never followed
    assert store.conversations.get_conversation(bob, result.conversation_ids[0]).messages[1].images == ()


def test_import_is_all_or_nothing(store: HistoryStore, alice: str) -> None:
    good = ConversationDraft("instruct", "good", "", (MessageDraft("user", "hi"),))
    bad = ConversationDraft("instruct", "bad", "", (MessageDraft("tool", "x"),))  # type: ignore[arg-type]
    with pytest.raises(HistoryError, match="Unknown role"):
        store.conversations.import_conversations(alice, [good, bad])
    assert store.conversations.list_conversations(alice) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all", "not JSON"),
        ("[1, 2]", "not a playground history export"),
        ('{"format": "something-else", "version": 1}', "not a playground history export"),
        ('{"format": "slm-playground-history", "version": 2}', "version 2"),
        (
            '{"format": "slm-playground-history", "version": 1, "exported_utc": "2026-01-01T00:00:00Z",'
            ' "conversations": [{"title": "t", "messages": [{"role": "tool", "text": "x"}]}]}',
            "conversations.0.messages.0.role",
        ),
        (
            '{"format": "slm-playground-history", "version": 1, "exported_utc": "2026-01-01T00:00:00Z",'
            ' "conversations": [], "api_key": "x"}',
            "api_key",
        ),
    ],
)
def test_bad_files_get_a_clear_error(store: HistoryStore, alice: str, content: str, message: str) -> None:
    with pytest.raises(ImportFormatError, match=message):
        import_json(store, alice, content)
    assert store.conversations.list_conversations(alice) == []
