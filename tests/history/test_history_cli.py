from __future__ import annotations

import json
from pathlib import Path

import pytest

from playground.cli import build_parser
from playground.errors import HistoryError
from playground.history import HistoryStore
from playground.settings import Settings


def run(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(["history", *argv])
    return int(args.handler(args, settings))


# Fixed visitor ids that look like options, so that every run is the same: ids made before new_browser_id
# drew again those starting with '-' are still kept in browsers and in the history.
@pytest.fixture
def alice() -> str:
    return "-hAlice" + "a" * 25  # reads like `-h` with an argument


@pytest.fixture
def bob() -> str:
    return "--Bob" + "b" * 27  # reads like a long option


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"PLAYGROUND_DATA_DIR": str(tmp_path)})


@pytest.fixture
def filled(settings: Settings, alice: str, bob: str) -> dict[str, str]:
    with HistoryStore(settings.history_path) as store:
        ids = {}
        for owner, title in ((alice, "Alice asks"), (bob, "Bob asks")):
            conversation = store.conversations.create_conversation(owner, "instruct", title, "m@onnx")
            store.conversations.add_message(owner, conversation.id, "user", f"{title} a question")
            store.conversations.add_message(
                owner, conversation.id, "assistant", "An answer.", finish_reason="stop"
            )
            ids[owner] = conversation.id
    return ids


def test_list_shows_every_owner(
    settings: Settings, filled: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "list") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["ID", "UPDATED", "(UTC)", "TAB", "MSGS", "OWNER", "TITLE"]
    for owner, conversation_id in filled.items():
        assert any(conversation_id in line and owner in line for line in out.splitlines())
    alice = next(iter(filled))
    assert run(settings, "list", "--owner", alice) == 0
    assert "Bob asks" not in capsys.readouterr().out


def test_show_and_export(
    settings: Settings, filled: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = filled
    assert run(settings, "show", filled[alice]) == 0
    out = capsys.readouterr().out
    assert "# Alice asks" in out and "An answer." in out and "Bob" not in out
    assert run(settings, "export", "--format", "json") == 0
    document = json.loads(capsys.readouterr().out)
    assert sorted(c["owner"] for c in document["conversations"]) == sorted([alice, bob])
    assert run(settings, "export", "--owner", bob) == 0
    out = capsys.readouterr().out
    assert "# Bob asks" in out and "Alice" not in out
    with pytest.raises(HistoryError, match="does not belong"):
        run(settings, "export", filled[alice], "--owner", bob)


@pytest.mark.parametrize("form", ["--owner ID", "--owner=ID"])
def test_owner_ids_that_start_with_a_dash(
    settings: Settings, filled: dict[str, str], form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = filled
    for owner, other in ((alice, "Bob asks"), (bob, "Alice asks")):
        owner_args = form.replace("ID", owner).split(" ")
        assert run(settings, "list", *owner_args) == 0
        out = capsys.readouterr().out
        assert filled[owner] in out and other not in out
        assert run(settings, "export", "--format", "json", *owner_args) == 0
        document = json.loads(capsys.readouterr().out)
        assert [c["owner"] for c in document["conversations"]] == [owner]


def test_an_option_after_owner_is_still_an_option(settings: Settings, filled: dict[str, str]) -> None:
    with pytest.raises(SystemExit):  # "expected one argument", as before: --search is not an id
        run(settings, "list", "--owner", "--search", "x")


def test_no_history_yet_says_where_it_looked(settings: Settings) -> None:
    with pytest.raises(HistoryError, match=r"No history yet at .*history\.db"):
        run(settings, "list")
