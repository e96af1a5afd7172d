"""Fixtures of the history tests: a real SQLite file in a temporary folder, two visitors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from playground.history import HistoryStore, new_browser_id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(tmp_path / "data" / "history.db") as opened:
        yield opened


@pytest.fixture
def alice() -> str:
    return new_browser_id()


@pytest.fixture
def bob() -> str:
    return new_browser_id()
