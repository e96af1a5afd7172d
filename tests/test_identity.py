"""Who a session is: the browser's id, or the signed-in Hugging Face user on a Space with sign-in."""

from __future__ import annotations

import gradio as gr
import pytest

from playground.errors import InvalidIdentityError
from playground.history import check_owner_id, new_browser_id
from playground.settings import Settings
from playground.ui.history_tab import identify


def test_a_first_visit_gets_a_new_unguessable_id() -> None:
    browser_id, owner = identify(None, None)
    assert owner == browser_id and len(browser_id) == 32
    assert identify(None, None)[0] != browser_id


def test_a_returning_browser_keeps_its_id_and_a_forged_one_is_replaced() -> None:
    known = new_browser_id()
    assert identify(known, None) == (known, known)
    forged, _ = identify("someone-elses-name", None)
    assert forged != "someone-elses-name" and len(forged) == 32


def test_the_signed_in_user_owns_the_session_whatever_the_browser() -> None:
    profile = gr.OAuthProfile({"name": "Alice", "preferred_username": "alice", "profile": "", "picture": ""})
    first = identify(new_browser_id(), profile)
    second = identify(new_browser_id(), profile)
    assert first[1] == second[1] == "hf:alice"
    assert first[0] != second[0]


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
