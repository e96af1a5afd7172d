"""Credentials inside a URL (`http://user:PASS@host/v1?api-key=KEY`, a common way to reach a proxy) are
secrets like keys: a URL is shown only redacted, the credentials in a configured one are handed to the
error choke point to scrub, and every log record is redacted as it is made (libraries such as httpx log
each request's URL)."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote, urlsplit

HIDDEN = "***"
# Query parameters that carry a credential: api-key, api_key, access_token, sig (Azure SAS), code (Azure
# Functions), password, ... (matched anywhere in the name, case-insensitively).
_SECRET_NAME = r"[^=&\s#\"'<>]*?(?:key|token|secret|passw|pwd|auth|credential|sig|code)[^=&\s#\"'<>]*"
_USER_INFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@\"'<>?#]+@")
_SECRET_PARAMETER = re.compile(rf"([?&]{_SECRET_NAME}=)[^&\s#\"'<>]+", re.IGNORECASE)
_SECRET_PARAMETER_NAME = re.compile(_SECRET_NAME, re.IGNORECASE)


def redact_url(text: str) -> str:
    """The URL (or any text holding URLs) as it may be shown: user info and the values of credential-
    looking query parameters replaced by ***."""
    if "://" not in text and "=" not in text:
        return text
    return _SECRET_PARAMETER.sub(rf"\g<1>{HIDDEN}", _USER_INFO.sub(rf"\g<1>{HIDDEN}@", text))


def url_secrets(url: str) -> list[str]:
    """The credentials inside a URL, as written and decoded: its user info (the whole and the password)
    and each credential-looking query parameter's value; longest first. Empty for a URL without any."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url] if url else []
    found: list[str] = []
    if "@" in parts.netloc:
        info = parts.netloc.rsplit("@", 1)[0]
        found += [info, info.split(":", 1)[-1]]
    for raw in parts.query.split("&"):
        name, _, value = raw.partition("=")
        if value and _SECRET_PARAMETER_NAME.fullmatch(name):
            found.append(value)
    found += [v for n, v in parse_qsl(parts.query) if _SECRET_PARAMETER_NAME.fullmatch(n)]
    found += [unquote(value) for value in found]
    return sorted({value for value in found if len(value) >= 3}, key=len, reverse=True)


def install_log_redaction() -> None:
    """Redact URL credentials in every log record as it is made (once per process)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts_urls", False):
        return

    def redacting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format: left for logging's own error report
            return record
        cleaned = redact_url(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    redacting.redacts_urls = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting)
