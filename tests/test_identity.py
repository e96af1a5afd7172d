"""Who a session is: a visitor id the server signed (verified on every load), or the signed-in user."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from playground.errors import ConfigError, InvalidIdentityError
from playground.history import HistoryStore, IdentityKey, check_owner_id, new_browser_id
from playground.history.identity import KEY_FILE
from playground.settings import Settings
from playground.ui.history_tab import HistoryTab, identify

SECRET = "a-long-operator-secret-0123456789"


@pytest.fixture
def key() -> IdentityKey:
    return IdentityKey.from_settings(SECRET, Path("/nonexistent"))


def test_a_first_visit_gets_a_new_signed_id(key: IdentityKey) -> None:
    token, owner, replaced = identify(key, None)
    assert not replaced and len(owner) == 32 and check_owner_id(owner) == owner
    assert token.startswith("v1.") and owner in token and token != owner
    assert identify(key, None)[1] != owner, "every visitor a different id"


def test_a_returning_browser_keeps_its_id(key: IdentityKey) -> None:
    token, owner, _ = identify(key, None)
    assert identify(key, token) == (token, owner, False)


@pytest.mark.parametrize(
    "forged",
    [
        new_browser_id(),  # a well-formed id, unsigned: what the old page kept, or a guess
        "v1." + new_browser_id() + "." + "A" * 43,  # well-formed, with a made-up signature
        "someone-elses-name",
        "v1.../../etc.x",
        {"id": new_browser_id()},
        "",
    ],
)
def test_a_forged_id_is_refused_and_replaced(key: IdentityKey, forged: object) -> None:
    token, owner, replaced = identify(key, forged)
    assert replaced is (forged is not None)
    assert isinstance(forged, dict) or owner not in str(forged)
    assert key.verify(token) == owner


def test_an_id_signed_with_another_key_is_refused(key: IdentityKey) -> None:
    other = IdentityKey.from_settings("another-operator-secret-987654321", Path("/nonexistent"))
    theirs, their_owner, _ = identify(other, None)
    _, owner, replaced = identify(key, theirs)
    assert replaced and owner != their_owner
    with pytest.raises(InvalidIdentityError, match="not signed by this server"):
        key.verify(theirs)
    # Choosing an id means forging its signature: changing one character of a valid token fails.
    mine, _, _ = identify(key, None)
    tampered = mine[:-1] + ("A" if mine[-1] != "A" else "B")
    assert identify(key, tampered)[2]


def test_a_replayed_token_is_the_same_owner_and_no_one_else(key: IdentityKey) -> None:
    """The token is a bearer token: a copy (another browser, a script) is that same visitor."""
    token, owner, _ = identify(key, None)
    _, elsewhere, replaced = identify(key, token)
    assert elsewhere == owner and not replaced
    _, someone_else, _ = identify(key, None)
    assert someone_else != owner


def test_the_signed_in_user_owns_the_session_whatever_the_browser(key: IdentityKey) -> None:
    first = identify(key, None, "alice")
    second = identify(key, identify(key, None)[0], "alice")
    assert first[1] == second[1] == "hf:alice"
    assert first[0] != second[0]


def test_without_a_secret_a_private_key_is_kept_in_the_data_folder(tmp_path: Path) -> None:
    first = IdentityKey.from_settings(None, tmp_path)
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token, owner, _ = identify(first, None)
    restarted = IdentityKey.from_settings(None, tmp_path)  # the next start reads the same key
    assert identify(restarted, token) == (token, owner, False)
    path.chmod(0o644)
    IdentityKey.from_settings(None, tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "a key readable by others is made private"
    path.write_text("not hex")
    with pytest.raises(ConfigError, match="is damaged: delete it"):
        IdentityKey.from_settings(None, tmp_path)


def test_the_secret_must_be_long_and_is_never_printed() -> None:
    with pytest.raises(ConfigError, match="PLAYGROUND_BROWSER_SECRET must be at least 16 characters"):
        Settings.from_env({"PLAYGROUND_BROWSER_SECRET": "short"})
    settings = Settings.from_env({"PLAYGROUND_BROWSER_SECRET": SECRET})
    key = IdentityKey.from_settings(settings.browser_secret, settings.data_dir)
    assert SECRET not in repr(settings) and SECRET not in repr(key)


def test_owner_ids_are_checked_on_use() -> None:
    assert check_owner_id("hf:alice") == "hf:alice"
    with pytest.raises(InvalidIdentityError):
        check_owner_id("../../etc")
    with pytest.raises(InvalidIdentityError):
        check_owner_id(None)


def test_sign_in_only_on_a_space_with_oauth() -> None:
    assert not Settings.from_env({}).oauth
    assert not Settings.from_env({"OAUTH_CLIENT_ID": "x"}).oauth
    assert Settings.from_env({"SPACE_ID": "me/playground", "OAUTH_CLIENT_ID": "x"}).oauth


def tab_over(store: HistoryStore, public: bool = False) -> HistoryTab:
    settings = Settings.from_env({"PLAYGROUND_PUBLIC": "1" if public else "0"})
    return HistoryTab(SimpleNamespace(history=store, settings=settings))  # type: ignore[arg-type]


def test_a_lost_key_gives_a_new_id_and_restores_the_browser_copy_with_a_notice(tmp_path: Path) -> None:
    before_key = IdentityKey.from_settings(None, tmp_path / "before")
    token, owner, _ = identify(before_key, None)
    before = HistoryStore(tmp_path / "before" / "history.db")
    conversation = before.conversations.create_conversation(owner, "instruct", "Capitals")
    before.conversations.add_message(owner, conversation.id, "user", "What is the capital of France?")
    before.conversations.add_message(owner, conversation.id, "assistant", "Paris.", finish_reason="stop")
    copy = tab_over(before).browser_copy(owner)

    # The Space restarts without PLAYGROUND_BROWSER_SECRET: a new key, an empty disk.
    after_key = IdentityKey.from_settings(None, tmp_path / "after")
    after = HistoryStore(tmp_path / "after" / "history.db")
    new_token, new_owner, replaced = identify(after_key, token)
    assert replaced and new_owner != owner and after_key.verify(new_token) == new_owner
    notice = tab_over(after).on_load(new_owner, replaced, copy)
    assert "did not recognise this browser's visitor id" in notice and "1 latest conversation" in notice
    [restored] = after.conversations.list_conversations(new_owner)
    assert restored.title == "Capitals"
    assert [m.text for m in after.conversations.get_conversation(new_owner, restored.id).messages][
        -1
    ] == "Paris."
    assert after.conversations.list_conversations(owner) == [], "nothing is kept under the old id"
    assert owner not in notice and new_owner not in notice and token not in notice

    # Without a copy the visitor is told too; with nothing to say, nothing is shown.
    assert "not shown" in tab_over(after).on_load(identify(after_key, token)[1], True, None)
    assert tab_over(after).on_load(new_owner, False, copy) == ""
