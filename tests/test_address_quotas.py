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
