"""Text from outside (the page, the API, the CLI, an upstream stream, an import) made valid Unicode.

Python strings may hold lone surrogates (a JSON escape such as "\\ud800" decodes to one), which no
encoder accepts: SQLite, the page's JSON and the terminal all fail on them. Each boundary calls
`valid_text`, which keeps everything else as it is.
"""

from __future__ import annotations


def valid_text(text: str) -> str:
    """The text with each lone surrogate replaced by U+FFFD; a surrogate pair becomes its character."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def valid_bytes(data: bytes) -> str:
    """Bytes from outside (a file, argv, a socket) as text; invalid UTF-8 becomes U+FFFD."""
    return data.decode("utf-8", "replace")
