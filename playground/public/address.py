"""A client's address, for the per-address limits.

Every API client opens a new session, so the session alone does not hold back a script: the address
does. Behind a reverse proxy (a Hugging Face Space) the peer is the proxy itself, and the client's
address is in `X-Forwarded-For`, which is `client, proxy1, proxy2, ...`: each proxy *appends* the
address it received the request from. Only the right-most entry was written by the proxy we trust
(the one in front of us); everything to its left came from the client and can be forged (a client
that sends `X-Forwarded-For: 1.2.3.4` on each request would otherwise get a fresh address each time).
So with `trust_forwarded` the address is the right-most entry, and without it the peer's address;
the header is never read when it is not trusted (a client reaching us directly could set it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

UNKNOWN = "unknown"


def _clean(value: str) -> str | None:
    """An IP address as text (`[::1]:80`, `1.2.3.4:5` and `"1.2.3.4"` reduced to the address), or None."""
    value = value.strip().strip('"')
    if not value:
        return None
    if value.startswith("[") and "]" in value:  # [IPv6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # IPv4:port
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def forwarded_for(headers: Iterable[tuple[str, str]]) -> str | None:
    """The right-most address of the last `X-Forwarded-For` header (the one our proxy appended)."""
    last: str | None = None
    for name, value in headers:
        if name.lower() == "x-forwarded-for":
            last = value
    if last is None:
        return None
    entries = [part for part in last.split(",") if part.strip()]
    return _clean(entries[-1]) if entries else None


def client_address(headers: Iterable[tuple[str, str]], peer: str | None, *, trust_forwarded: bool) -> str:
    """The address the per-address limits count: the proxy's right-most X-Forwarded-For entry when
    trusted and present, else the peer's address (UNKNOWN when neither is known)."""
    if trust_forwarded:
        found = forwarded_for(headers)
        if found is not None:
            return found
    return (_clean(peer) if peer else None) or UNKNOWN


def scope_address(scope: dict[str, object], *, trust_forwarded: bool) -> str:
    """`client_address` of an ASGI scope (raw byte headers, `client` as (host, port))."""
    raw = scope.get("headers") or []
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]  # type: ignore[attr-defined]
    client = scope.get("client")
    peer = str(client[0]) if isinstance(client, list | tuple) and client else None
    return client_address(headers, peer, trust_forwarded=trust_forwarded)


def request_address(request: object, *, trust_forwarded: bool) -> str:
    """`client_address` of a handler's `gr.Request` (its headers and its client)."""
    headers = getattr(request, "headers", None) or {}
    client = getattr(request, "client", None)
    peer = getattr(client, "host", None)
    return client_address(
        list(dict(headers).items()), str(peer) if peer else None, trust_forwarded=trust_forwarded
    )
