"""Caps a new page load would reset (a new page load is a new visitor id) also count per address:
imports here; the arena's votes in tests/test_arena.py."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from playground.context import AppContext
from playground.history import new_browser_id
from playground.history.export import export_json
from playground.public.daily import DailyCounter
from playground.ui.history_tab import HistoryTab
from playground.ui.instruct import InstructTab
from tests.support import make_settings


def visitor(address: str) -> gr.Request:
    return gr.Request(headers={}, client=SimpleNamespace(host=address))


def test_fresh_page_loads_from_one_address_import_one_visitors_history_a_day(tmp_path: Path) -> None:
    ctx = AppContext.create(
        make_settings(tmp_path / "data", PLAYGROUND_PUBLIC="1", PLAYGROUND_VISITOR_HISTORY_MB="0.05")
    )
    try:
        author = new_browser_id()
        conversation = ctx.history.conversations.create_conversation(author, "instruct", "notes")
        ctx.history.conversations.add_message(author, conversation.id, "user", "x" * 20_000)
        export = tmp_path / "export.json"
        export.write_text(export_json(ctx.history, author), encoding="utf-8")
        size = export.stat().st_size
        assert 20_000 < size < 25_000
        tab = HistoryTab(ctx)
        tab.imported.today = DailyCounter(today=lambda: date(2026, 12, 4))  # no midnight inside the test
        imported = [
            tab.import_file(str(export), new_browser_id(), "", visitor("203.0.113.9")) for _ in range(2)
        ]
        assert all("Imported 1 conversation" in notice for *_, notice in imported)
        with pytest.raises(
            gr.Error, match=r"Your network address has imported 0\.0\d MB today.*at most 0\.05 MB"
        ):
            tab.import_file(str(export), new_browser_id(), "", visitor("203.0.113.9"))  # a third page load
        assert tab.imported.today.count("203.0.113.9") == 2 * size
        *_, notice = tab.import_file(str(export), new_browser_id(), "", visitor("198.51.100.4"))
        assert "Imported 1 conversation" in notice, "another address still imports"
    finally:
        ctx.close()


def test_fresh_page_loads_from_one_address_write_at_most_its_history_bytes_a_day(tmp_path: Path) -> None:
    """Chats from fresh visitor ids (each with an empty quota of its own) count against their address:
    past PLAYGROUND_ADDRESS_HISTORY_MB the next question is still answered, marked not saved, and
    nothing of it is written; another address still writes (the real Instruct handler and model)."""
    from tests.test_tabs import EMBEDDED, answer, ask

    ctx = AppContext.create(
        make_settings(tmp_path / "data", PLAYGROUND_PUBLIC="1", PLAYGROUND_ADDRESS_HISTORY_MB="0.01")
    )
    try:
        ledger = ctx.history.quota.addresses
        ledger.today = DailyCounter(today=lambda: date(2026, 12, 4))  # no midnight inside the test
        region = InstructTab(ctx)
        question = "Say hello. " + "x" * 3_000

        def chat(owner: str, address: str) -> str:
            updates = answer(region, ask(question), owner, EMBEDDED, address=address)
            return str(updates[-1])

        owners = [new_browser_id() for _ in range(4)]
        shown = [chat(owner, "203.0.113.9") for owner in owners]
        saved = [len(ctx.history.conversations.list_conversations(o)) for o in owners]
        assert saved[:3] == [1, 1, 1] and saved[3] == 0, saved
        assert "Not saved" in shown[3] and "network address has written" in shown[3]
        assert "Not saved" not in shown[0]
        written = ledger.today.count("203.0.113.9")
        assert 9_000 < written <= 10_000, "three questions and their answers, counted"
        other = new_browser_id()
        assert "Not saved" not in chat(other, "198.51.100.4")
        assert len(ctx.history.conversations.list_conversations(other)) == 1, "another address still writes"
    finally:
        ctx.close()
