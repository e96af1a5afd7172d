"""Who owns a conversation: an unguessable id kept in the visitor's browser, or the signed-in user.

How the UI must use it (the store trusts the owner it is given, so this is the whole defence):
- Keep the browser id in a `gr.BrowserState` with the fixed `storage_key=BROWSER_STATE_KEY` and
  `secret=settings.browser_secret`: Gradio encrypts it with that secret, so a visitor cannot forge or
  copy someone else's value into it. Without a secret set, Gradio makes a random one per process and
  ids do not survive a restart (history then looks empty after a restart; say so on the page).
- On page load, read the BrowserState value through `browser_owner(value)`; when it raises
  InvalidIdentityError (first visit, or a tampered value), store `new_browser_id()` in it instead.
- On a Space with sign-in, `oauth_owner(profile.username)` (from `gr.OAuthProfile`) wins over the
  browser id: `resolve_owner(browser_value, username)` does both.
- The owner only ever comes from the BrowserState or the OAuth profile, read inside the handler;
  never from a textbox, a dropdown, a hidden component or any other input an API call can set.
"""

from __future__ import annotations

import re
import secrets

from ..errors import InvalidIdentityError

BROWSER_STATE_KEY = "slm-playground-owner"
BROWSER_ID_BYTES = 24
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{32}")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def new_browser_id() -> str:
    """A fresh visitor id: 192 random bits, URL-safe (32 characters)."""
    return secrets.token_urlsafe(BROWSER_ID_BYTES)


def browser_owner(value: object) -> str:
    """The owner id in a value that came back from a browser; InvalidIdentityError if it is not one."""
    if isinstance(value, str) and _BROWSER_ID.fullmatch(value):
        return value
    raise InvalidIdentityError("This browser has no valid visitor id yet: reload the page to get one.")


def oauth_owner(username: str) -> str:
    """The owner id of a signed-in Hugging Face user (it cannot collide with a browser id)."""
    if not _USERNAME.fullmatch(username):
        raise InvalidIdentityError(f"Unexpected user name {username!r}: sign out and in again.")
    return f"hf:{username}"


def resolve_owner(browser_value: object, username: str | None = None) -> str:
    """The signed-in user when there is one, else the browser's id."""
    return oauth_owner(username) if username else browser_owner(browser_value)


def check_owner_id(value: object) -> str:
    """An owner id as resolve_owner made it (a browser id or `hf:<user>`); InvalidIdentityError if not."""
    if isinstance(value, str) and value.startswith("hf:"):
        return oauth_owner(value.removeprefix("hf:"))
    return browser_owner(value)
