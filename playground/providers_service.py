"""The providers service: every engine and endpoint, whether it is configured and reachable, what it serves.

The Providers tab reads it (the UI never imports a provider package); it asks the registry's providers.
"""

from __future__ import annotations

from .providers.cloud import ProviderStatus, provider_statuses
from .registry import Registry

__all__ = ["ProviderStatus", "statuses"]


def statuses(registry: Registry, *, refresh: bool = False) -> list[ProviderStatus]:
    """One status per provider, local engines included; `refresh` asks every endpoint for its models again."""
    return provider_statuses(registry.providers.values(), refresh=refresh)
