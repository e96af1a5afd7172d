from __future__ import annotations

import secrets

import pytest

from playground.errors import InvalidIdentityError
from playground.history.identity import browser_owner, new_browser_id, oauth_owner, resolve_owner


def test_new_ids_are_long_random_and_url_safe() -> None:
    ids = {new_browser_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in ids:
        assert len(value) == 32 and browser_owner(value) == value
        assert value[0].isalnum(), "an id never starts with '-' (an option on a command line) or '_'"


def test_a_token_starting_with_a_dash_or_underscore_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter(["-" + "a" * 31, "_" + "b" * 31, "C" + "-" * 31])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(drawn))
    assert new_browser_id() == "C" + "-" * 31


def test_an_id_made_before_the_rule_still_verifies() -> None:
    old = "-" + "x" * 31  # about one in 64 of the ids already kept in browsers
    assert browser_owner(old) == old


@pytest.mark.parametrize(
    "value",
    [None, "", "short", "x" * 31, "x" * 33, "a/" * 16, "hf:someone", {"id": "x" * 32}, 12345, "é" * 32],
)
def test_anything_but_an_id_we_made_is_refused(value: object) -> None:
    with pytest.raises(InvalidIdentityError, match="reload the page"):
        browser_owner(value)


def test_a_signed_in_user_wins_over_the_browser() -> None:
    browser = new_browser_id()
    assert resolve_owner(browser) == browser
    assert resolve_owner(browser, "ada-lovelace") == "hf:ada-lovelace"
    assert resolve_owner(None, "ada") == oauth_owner("ada") == "hf:ada"
    with pytest.raises(InvalidIdentityError):
        oauth_owner("ada/../bob")
    with pytest.raises(InvalidIdentityError):
        resolve_owner(None)
