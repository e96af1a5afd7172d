"""The providers service: every engine and endpoint, whether it is configured and reachable, what it serves.

The Providers tab reads it (the UI never imports a provider package); it asks the registry's providers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .providers.cloud import ProviderStatus, provider_statuses
from .registry import Registry

__all__ = ["BUILT_IN", "ProviderStatus", "Refreshed", "SharedRefresh", "statuses"]


# Every built-in provider: (name, label, kind, its key's variable, what enables it). A provider this
# configuration does not enable is listed all the same, with what would enable it.
BUILT_IN = (
    ("openai-compatible", "OpenAI-compatible server", "openai", "OPENAI_API_KEY",
     "Set OPENAI_BASE_URL (a vLLM, llama.cpp, LM Studio or transformers serve address; key optional)."),
    ("nvidia", "NVIDIA NIM", "openai", "NVIDIA_API_KEY", "Set NVIDIA_API_KEY (build.nvidia.com)."),
    ("azure-openai", "Azure OpenAI", "openai", "AZURE_OPENAI_API_KEY",
     "Set AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY and PLAYGROUND_AZURE_OPENAI_DEPLOYMENTS."),
    ("ollama", "Ollama", "openai", None, "Start Ollama (OLLAMA_HOST, default localhost:11434)."),
    ("github", "GitHub Models", "openai", "GITHUB_TOKEN",
     "Set PLAYGROUND_GITHUB_MODELS=1 and GITHUB_TOKEN (a legacy endpoint, retired on 2026-07-30)."),
    ("azure-ai", "Azure AI Foundry", "azure-ai", "AZURE_AI_CHAT_KEY",
     "Set AZURE_AI_CHAT_ENDPOINT, AZURE_AI_CHAT_KEY and PLAYGROUND_AZURE_AI_DEPLOYMENTS."),
)  # fmt: skip


def statuses(registry: Registry, *, refresh: bool = False) -> list[ProviderStatus]:
    """One status per provider, local engines included, then each built-in provider this configuration
    does not enable, with what enables it; `refresh` asks every endpoint for its models again."""
    found = provider_statuses(registry.providers.values(), refresh=refresh)
    present = {s.name for s in found}
    for name, label, kind, key_env, enable in BUILT_IN:
        if name not in present:
            found.append(ProviderStatus(name, label, kind, "", key_env, False, False, None, (), note=enable))
    return found


@dataclass(frozen=True)
class Refreshed:
    """The statuses a Refresh shows, when they were checked, and whether this click asked the endpoints."""

    statuses: list[ProviderStatus]
    checked: float  # time.monotonic() of the round that produced them
    asked: bool

    def note(self, interval_s: float | None, now: float | None = None) -> str:
        """One line for the page: when the statuses were checked, and when they may be checked again."""
        if self.asked or interval_s is None:
            return "Checked just now."
        age = max(0.0, (time.monotonic() if now is None else now) - self.checked)
        wait = max(0.0, interval_s - age)
        return (
            f"Checked {age:.0f} s ago (shared by every visitor); endpoints are asked again at most once "
            f"every {interval_s:g} s: try again in {wait:.0f} s."
        )


class SharedRefresh:
    """One Refresh for every visitor of a public deployment: a click within `interval_s` of the last round
    returns that round's statuses and asks nothing; clicks at the same time wait for one round.

    `interval_s` None (private mode): each click asks every endpoint again.
    """

    def __init__(
        self,
        registry: Registry,
        interval_s: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.interval_s = interval_s
        self.rounds = 0  # rounds of requests made
        self._clock = clock
        self._lock = threading.Lock()
        self._last: Refreshed | None = None

    def refresh(self) -> Refreshed:
        with self._lock:  # a click during a round waits for it, then finds it fresh
            last = self._last
            if (
                last is not None
                and self.interval_s is not None
                and self._clock() - last.checked < self.interval_s
            ):
                return Refreshed(last.statuses, last.checked, asked=False)
            found = statuses(self.registry, refresh=True)
            self.rounds += 1
            self._last = Refreshed(found, self._clock(), asked=True)
            return self._last
