"""The one choke point where the SDKs' and transports' errors become ours, in words a user can act on.

Messages name the variable that holds a key, never the key: every text taken from a server passes
through `redact` first, which also makes it valid Unicode (a lone surrogate becomes U+FFFD).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from ...errors import (
    AuthError,
    ContextOverflowError,
    ModelNotFoundError,
    PlaygroundError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    RetiredError,
    ServerError,
    UnreachableError,
)
from ...text import valid_text

_CONTEXT_WORDS = (
    "context length",
    "context_length",
    "maximum context",
    "too many tokens",
    "context window",
    "prompt is too long",
    "tokens exceeds",
    "reduce the length",
)
_DETAIL_LIMIT = 300


@dataclass(frozen=True)
class ErrorContext:
    """What a message needs to say who failed and what to do about it."""

    provider: str
    label: str
    url: str
    model: str = ""
    key_env: str | None = None
    visitor_key: bool = False
    url_env: str | None = None
    timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    timeout_env: str = "PLAYGROUND_TIMEOUT_S"
    retired: str | None = None
    unreachable_hint: str = "is the server running?"
    secrets: tuple[str, ...] = field(default=(), repr=False)
    available: Callable[[], Sequence[str]] | None = field(default=None, repr=False, compare=False)

    def redact(self, text: str) -> str:
        """A server's text as a message may carry it: no secret in it, and valid Unicode."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return valid_text(text)


@contextlib.contextmanager
def cloud_errors(ctx: ErrorContext) -> Iterator[None]:
    """Translate whatever the SDK or the transport raises into one of our errors."""
    try:
        yield
    except PlaygroundError:
        raise
    except Exception as exc:
        raise translate(exc, ctx) from None


def translate(exc: BaseException, ctx: ErrorContext) -> PlaygroundError:
    """Our error for a foreign one (openai, httpx2, azure-core), its text redacted."""
    if isinstance(exc, PlaygroundError):
        return exc
    for handler in (_openai, _httpx, _azure):
        mapped = handler(exc, ctx)
        if mapped is not None:
            return mapped
    return ProviderError(
        f"{ctx.label} failed: {type(exc).__name__}: {ctx.redact(str(exc))[:_DETAIL_LIMIT]}",
        provider=ctx.provider,
    )


def from_status(status: int, body: str, headers: Mapping[str, str], ctx: ErrorContext) -> PlaygroundError:
    """Our error for an HTTP status, with the server's own words where they help."""
    detail = ctx.redact(_detail(body))
    said = f": {detail}" if detail else ""
    where = f"{ctx.label} ({ctx.url})"
    if status in (401, 403):
        return AuthError(_auth_message(status, ctx, said), provider=ctx.provider, status=status)
    if status == 404:
        return ModelNotFoundError(_not_found(ctx), provider=ctx.provider, status=status)
    if status == 410:
        if ctx.retired:
            message = (
                f"{ctx.label} was retired on {ctx.retired} (410): it no longer answers. "
                "Pick another provider; this one is kept for reference only."
            )
        else:
            message = f"{where} says {ctx.model!r} is gone (410){said}. Pick another model."
        return RetiredError(message, provider=ctx.provider, status=status)
    if status == 413 or (status in (400, 422) and _is_context(detail)):
        return ContextOverflowError(
            f"The request is too long for {ctx.model!r} on {ctx.label} ({status}){said}. "
            "Start a new conversation, shorten the prompt or the images, or lower max new tokens.",
            provider=ctx.provider,
            status=status,
        )
    if status == 429:
        wait = retry_after_s(headers)
        again = f" Try again in {wait:.0f} s." if wait is not None else " Wait a minute and try again."
        return RateLimitError(
            f"{ctx.label}: quota or rate limit reached for {ctx.model!r} (429){said}.{again}",
            provider=ctx.provider,
            retry_after=wait,
        )
    if status >= 500:
        return ServerError(
            f"{where} failed with {status}{said}. Try again later, or pick another provider.",
            provider=ctx.provider,
            status=status,
        )
    return ProviderError(
        f"{where} rejected the request ({status}){said}.", provider=ctx.provider, status=status
    )


def _auth_message(status: int, ctx: ErrorContext, said: str) -> str:
    if ctx.retired:
        return (
            f"{ctx.label} refused {ctx.key_env or 'the request'} ({status}){said}. "
            f"{ctx.label} was retired on {ctx.retired}; pick another provider."
        )
    if ctx.key_env is None:
        return (
            f"{ctx.label} wants a key ({status}){said}. Add api_key_env (the variable that holds it) "
            "to this endpoint in the PLAYGROUND_ENDPOINTS file."
        )
    refused = "refused" if status == 401 else "does not allow this model for"
    if ctx.visitor_key:
        return (
            f"{ctx.label} {refused} the key you entered ({status}){said}. "
            f"Check it, or leave the key field empty to use {ctx.key_env}."
        )
    verb = f"{refused} the key in"
    return (
        f"{ctx.label} {verb} {ctx.key_env} ({status}){said}. "
        f"Check {ctx.key_env} (in the environment or .env)."
    )


def missing_key(ctx: ErrorContext) -> AuthError:
    message = (
        f"{ctx.label} needs a key: set {ctx.key_env} (in the environment or .env), "
        "or enter your own key for this session."
    )
    return AuthError(message, provider=ctx.provider)


def _not_found(ctx: ErrorContext) -> str:
    head = f"{ctx.label} has no model or deployment {ctx.model!r} (404)."
    if ctx.available is None:
        return head
    try:
        names = list(ctx.available())
    except PlaygroundError as exc:
        return f"{head} Listing its models failed too: {exc}"
    if not names:
        return f"{head} It lists no models."
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return f"{head} It has: {', '.join(names[:10])}{more}."


def unreachable(ctx: ErrorContext, cause: BaseException | None) -> UnreachableError:
    if _unknown_host(cause):
        where = f" (check {ctx.url_env})" if ctx.url_env else ""
        message = f"{ctx.label}: cannot find the host of {ctx.url}{where}."
    else:
        message = f"{ctx.label} not reachable at {ctx.url}: {ctx.unreachable_hint}"
    return UnreachableError(message, provider=ctx.provider)


def timed_out(ctx: ErrorContext, *, connect: bool) -> ProviderTimeoutError:
    if connect:
        message = (
            f"{ctx.label} at {ctx.url} did not accept a connection within {ctx.connect_timeout_s:g} s "
            f"({ctx.timeout_env}): check the address and the network."
        )
    else:
        message = (
            f"{ctx.label} did not answer within {ctx.timeout_s:g} s ({ctx.timeout_env}): the model may "
            f"still be loading or the server is busy. Try again, or raise {ctx.timeout_env}."
        )
    return ProviderTimeoutError(message, provider=ctx.provider)


def dropped(ctx: ErrorContext) -> ProviderError:
    return ProviderError(
        f"{ctx.label} closed the connection before answering. Try again.", provider=ctx.provider
    )


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from Retry-After (seconds or an HTTP date) or retry-after-ms; None if absent."""
    lower = {k.lower(): v for k, v in headers.items()}
    with contextlib.suppress(ValueError):
        if "retry-after-ms" in lower:
            return max(0.0, float(lower["retry-after-ms"]) / 1000)
    raw = lower.get("retry-after", "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(raw)
        return max(0.0, when.timestamp() - time.time())
    return None


def _openai(exc: BaseException, ctx: ErrorContext) -> PlaygroundError | None:
    import openai

    if isinstance(exc, openai.APIStatusError):
        return from_status(exc.status_code, _text(exc.response), exc.response.headers, ctx)
    if isinstance(exc, openai.APITimeoutError):
        return timed_out(ctx, connect=_is_connect(exc.__cause__))
    if isinstance(exc, openai.APIConnectionError):
        return _connection(exc.__cause__, ctx)
    if isinstance(exc, openai.APIError):
        return ProviderError(
            f"{ctx.label} reported an error: {ctx.redact(exc.message)}", provider=ctx.provider
        )
    return None


def _httpx(exc: BaseException, ctx: ErrorContext) -> PlaygroundError | None:
    import httpx2

    if isinstance(exc, httpx2.HTTPStatusError):
        return from_status(exc.response.status_code, _text(exc.response), exc.response.headers, ctx)
    if isinstance(exc, httpx2.TimeoutException):
        return timed_out(ctx, connect=isinstance(exc, httpx2.ConnectTimeout))
    if isinstance(exc, httpx2.TransportError):
        return _connection(exc, ctx)
    return None


def _azure(exc: BaseException, ctx: ErrorContext) -> PlaygroundError | None:
    from azure.core import exceptions as az

    if isinstance(exc, az.HttpResponseError) and exc.status_code is not None and exc.response is not None:
        body = ""
        with contextlib.suppress(Exception):
            body = exc.response.text()
        headers = getattr(exc.response, "headers", {})
        return from_status(exc.status_code, body, dict(headers), ctx)
    if isinstance(exc, az.ServiceRequestTimeoutError | az.ServiceResponseTimeoutError):
        return timed_out(ctx, connect=isinstance(exc, az.ServiceRequestTimeoutError))
    if isinstance(exc, az.ServiceRequestError):
        return unreachable(ctx, exc.inner_exception or exc.__cause__)
    if isinstance(exc, az.ServiceResponseError | az.HttpResponseError):
        if _chain_has(exc, (TimeoutError, socket.timeout)) or "timed out" in str(exc).lower():
            return timed_out(ctx, connect=False)
        return dropped(ctx)
    return None


def _connection(cause: BaseException | None, ctx: ErrorContext) -> PlaygroundError:
    import httpx2

    if isinstance(cause, httpx2.ConnectError):
        return unreachable(ctx, cause)
    if isinstance(cause, httpx2.TimeoutException):
        return timed_out(ctx, connect=isinstance(cause, httpx2.ConnectTimeout))
    return dropped(ctx)


def _is_connect(cause: BaseException | None) -> bool:
    import httpx2

    return isinstance(cause, httpx2.ConnectTimeout)


def _unknown_host(cause: BaseException | None) -> bool:
    return _chain_has(cause, (socket.gaierror,)) or any(
        w in str(cause).lower() for w in ("name or service not known", "nodename nor servname", "getaddrinfo")
    )


def _chain_has(exc: BaseException | None, kinds: tuple[type[BaseException], ...]) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kinds):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _text(response: object) -> str:
    try:
        return str(getattr(response, "text", ""))
    except Exception:  # a streamed body that was not read
        return ""


def _detail(body: str) -> str:
    """The server's message from OpenAI, FastAPI, Ollama or Azure error shapes, or the raw text."""
    body = body.strip()
    if not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:_DETAIL_LIMIT]
    for path in (("error", "message"), ("detail",), ("error",), ("message",)):
        value: object = data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            return value[:_DETAIL_LIMIT]
        if path == ("detail",) and value is not None:
            return json.dumps(value)[:_DETAIL_LIMIT]
    return body[:_DETAIL_LIMIT]


def _is_context(detail: str) -> bool:
    lower = detail.lower()
    return any(word in lower for word in _CONTEXT_WORDS)
