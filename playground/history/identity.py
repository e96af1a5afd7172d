"""Who owns a conversation: a visitor id the server signed, kept in the browser, or the signed-in user.

The id is a bearer token, like a session cookie: whoever presents a valid one is that visitor.
- The server signs each id it makes with HMAC-SHA256 under its key (`PLAYGROUND_BROWSER_SECRET`, or
  a key generated once into the data folder, mode 0600). The key never leaves the server.
- The browser keeps `v1.<id>.<signature>` in a `gr.BrowserState` (`storage_key=BROWSER_STATE_KEY`).
  Gradio's BrowserState "encryption" uses a key that is sent to the page, so it protects nothing:
  the signature does. `BROWSER_STORAGE_SECRET` is public on purpose (it only has to stay the same
  across restarts, so that the browser can still read its values).
- On every page load the server verifies the token (`IdentityKey.verify`). A missing, malformed,
  unsigned or wrongly signed value is refused and replaced by a new signed id: no visitor can choose
  an id. A copied valid token is accepted as the same visitor (a replay), as a copied cookie would be.
- On a Space with sign-in, `oauth_owner(profile.username)` wins over the browser id.
- The owner only ever comes from the verified token or the OAuth profile, read in the load handler
  into server-side state; never from a textbox, a hidden component or any input an API call can set.
  An id is never shown on the page or written to a log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
from pathlib import Path

from ..errors import ConfigError, InvalidIdentityError

log = logging.getLogger(__name__)

BROWSER_STATE_KEY = "slm-playground-owner"
# Not a secret (Gradio sends it to the page): a constant so values stay readable across restarts.
BROWSER_STORAGE_SECRET = "slm-playground-browser-storage-is-not-secret-v1"
BROWSER_ID_BYTES = 24
KEY_FILE = "browser-id.key"
KEY_BYTES = 32
TOKEN_VERSION = "v1"
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{32}")
_TOKEN = re.compile(r"v1\.([A-Za-z0-9_-]{32})\.([A-Za-z0-9_-]{43})")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


class IdentityKey:
    """The server's key that signs visitor ids, and the checks of what a browser sends back."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError("The visitor-id signing key is too short: use at least 16 bytes.")
        self._key = key

    def __repr__(self) -> str:
        return "IdentityKey(<hidden>)"

    @classmethod
    def from_settings(cls, secret: str | None, data_dir: Path) -> IdentityKey:
        """The key from PLAYGROUND_BROWSER_SECRET, or else the one kept in the data folder (made once)."""
        if secret:
            return cls(secret.encode("utf-8"))
        return cls(load_or_create_key(data_dir / KEY_FILE))

    def sign(self, browser_id: str) -> str:
        """The token a browser keeps: version, id and the id's signature."""
        return f"{TOKEN_VERSION}.{browser_owner(browser_id)}.{self._mac(browser_id)}"

    def new_token(self) -> tuple[str, str]:
        """A fresh visitor: (token for the browser, owner id for the server)."""
        browser_id = new_browser_id()
        return self.sign(browser_id), browser_id

    def verify(self, token: object) -> str:
        """The owner id in a token this server signed; InvalidIdentityError for anything else."""
        found = _TOKEN.fullmatch(token) if isinstance(token, str) else None
        if found is None:
            raise InvalidIdentityError("This browser has no valid visitor id: reload the page to get one.")
        browser_id, mac = found.groups()
        if not hmac.compare_digest(mac, self._mac(browser_id)):
            raise InvalidIdentityError(
                "This browser's visitor id was not signed by this server: reload the page to get a new one."
            )
        return browser_id

    def _mac(self, browser_id: str) -> str:
        digest = hmac.new(self._key, f"slm-playground owner {browser_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def load_or_create_key(path: Path) -> bytes:
    """The key kept in `path` (mode 0600), made at the first start; ConfigError says what to fix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return _read_key(path)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(KEY_BYTES) + "\n")
        log.info("made a new key for visitor ids in %s (set PLAYGROUND_BROWSER_SECRET to choose it)", path)
        return _read_key(path)
    except OSError as exc:
        raise ConfigError(
            f"The visitor-id key {path} cannot be read or written ({exc.strerror}): fix the data "
            "folder's permissions, or set PLAYGROUND_BROWSER_SECRET."
        ) from None


def _read_key(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
        log.warning("%s was readable by other users; it is now private (mode 0600)", path)
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ConfigError(
            f"The visitor-id key {path} is damaged: delete it (visitors then get new ids) or set "
            "PLAYGROUND_BROWSER_SECRET."
        )
    return key


def new_browser_id() -> str:
    """A fresh visitor id: URL-safe, 32 characters, the first a letter or digit.

    About one token in 32 starts with '-' or '_'; such an id reads as an option on a command line
    (`history list --owner -x...`), so it is drawn again (191.9 random bits remain). Ids made before
    this rule still verify: `browser_owner` accepts them."""
    while True:
        browser_id = secrets.token_urlsafe(BROWSER_ID_BYTES)
        if browser_id[0].isalnum():
            return browser_id


def browser_owner(value: object) -> str:
    """A visitor id as the server keeps it (after verify); InvalidIdentityError if it is not one."""
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
