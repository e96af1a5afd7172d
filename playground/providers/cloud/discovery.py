"""Model discovery: what an endpoint serves, fetched once on first use, cached, refreshed on request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import PlaygroundError
from ...text import valid_text

if TYPE_CHECKING:
    import httpx2
    from openai import OpenAI


@dataclass(frozen=True)
class Found:
    """One model an endpoint lists."""

    id: str
    size_bytes: int = 0
    params: str = ""
    family: str = ""


@dataclass(frozen=True)
class Listing:
    """The outcome of one discovery: the models, or why there are none."""

    models: tuple[Found, ...] = ()
    error: str = ""
    checked_at: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.models)

    def has(self, model_id: str) -> bool:
        wanted = model_id.lower()
        return any(m.id.lower() == wanted for m in self.models)


class Discovery:
    """Runs `fetch` lazily, once, and keeps its outcome; failures become a Listing with the reason."""

    def __init__(self, fetch: Callable[[], list[Found]]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._listing: Listing | None = None

    def get(self) -> Listing:
        with self._lock:
            if self._listing is None:
                self._listing = self._run()
            return self._listing

    def refresh(self) -> Listing:
        with self._lock:
            self._listing = self._run()
            return self._listing

    def _run(self) -> Listing:
        try:
            found = self._fetch()
        except PlaygroundError as exc:
            return Listing(error=str(exc), checked_at=time.time())
        return Listing(models=tuple(found), checked_at=time.time())


def openai_models(client: OpenAI, pattern: Callable[[str], bool]) -> list[Found]:
    """GET /models through the openai SDK, filtered."""
    ids = (valid_text(str(m.id)) for m in client.models.list().data)
    return [Found(i) for i in ids if pattern(i)]


def ollama_tags(http: httpx2.Client, pattern: Callable[[str], bool]) -> list[Found]:
    """GET /api/tags, Ollama's own list, with sizes and parameter counts."""
    response = http.get("/api/tags")
    response.raise_for_status()
    found = []
    for item in response.json().get("models", []):
        name = valid_text(str(item.get("name") or item.get("model") or ""))
        details = item.get("details") or {}
        if name and pattern(name):
            size = int(item.get("size") or 0)
            params, family = (valid_text(str(details.get(k, ""))) for k in ("parameter_size", "family"))
            found.append(Found(name, size, params, family))
    return found
