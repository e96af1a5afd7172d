"""Imports of hostile files: nesting deep enough to exhaust the parser, lone surrogates, bytes not UTF-8."""

from __future__ import annotations

import json

import pytest

from playground.errors import ImportFormatError
from playground.history import HistoryStore
from playground.history.export import import_json


def export_with(text: str, parameters: str = "{}") -> str:
    return (
        '{"format": "slm-playground-history", "version": 1, "exported_utc": "2026-11-01T10:00:00Z", '
        '"conversations": [{"title": "Hostile \\ud800 title", "messages": ['
        f'{{"role": "user", "text": {text}, "parameters": {parameters}}},'
        '{"role": "assistant", "text": "Fine.", "finish_reason": "stop"}]}]}'
    )


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deep_nesting_is_refused_with_a_message(store: HistoryStore, alice: str, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    with pytest.raises(ImportFormatError, match="nests arrays or objects more than 32 levels deep"):
        import_json(store, alice, export_with('"hi"', '{"x": ' + nested + "}"))
    assert store.conversations.list_conversations(alice) == [], "nothing was written"


def test_lone_surrogates_become_replacement_characters_and_the_rest_is_kept(
    store: HistoryStore, alice: str
) -> None:
    result = import_json(store, alice, export_with('"before \\udc80 after \\ud83d\\ude00"'))
    conversation = store.conversations.get_conversation(alice, result.conversation_ids[0])
    assert conversation.summary.title == "Hostile \ufffd title"
    assert [m.text for m in conversation.messages] == ["before \ufffd after \U0001f600", "Fine."]
    json.dumps([m.text for m in conversation.messages], ensure_ascii=False).encode("utf-8")


def test_bytes_that_are_not_utf8_are_replaced_not_refused(store: HistoryStore, alice: str) -> None:
    data = export_with('"caf\\u00e9 XX"').encode("utf-8").replace(b"XX", b"\xff\xfe")
    result = import_json(store, alice, b"\xef\xbb\xbf" + data)
    [message, _] = store.conversations.get_conversation(alice, result.conversation_ids[0]).messages
    assert message.text == "café \ufffd\ufffd"
