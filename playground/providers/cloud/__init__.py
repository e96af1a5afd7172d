"""Cloud and server providers: OpenAI-compatible endpoints, Azure AI Foundry, NVIDIA NIM, Ollama, GitHub."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ...catalog import CatalogEntry
from ...settings import Settings
from ..base import Provider
from .config_file import load_endpoints
from .endpoint import EndpointSpec, ModelEntry
from .model import CloudModel, RetryPolicy
from .presets import cloud_endpoints
from .provider import CloudProvider, ProviderStatus

__all__ = [
    "CloudModel",
    "CloudProvider",
    "EndpointSpec",
    "ModelEntry",
    "ProviderStatus",
    "RetryPolicy",
    "build_cloud_providers",
    "load_endpoints",
    "provider_statuses",
]


def build_cloud_providers(settings: Settings, catalog: Sequence[CatalogEntry]) -> list[CloudProvider]:
    """One provider per configured endpoint; nothing is fetched until a model list is asked for."""
    return [CloudProvider(e, settings=settings, catalog=catalog) for e in cloud_endpoints(settings)]


def provider_statuses(providers: Iterable[Provider], *, refresh: bool = False) -> list[ProviderStatus]:
    """The Providers panel: every provider, local engines included, with what it serves and why not."""
    statuses = []
    for provider in providers:
        if isinstance(provider, CloudProvider):
            statuses.append(provider.refresh() if refresh else provider.status())
            continue
        statuses.append(
            ProviderStatus(
                name=provider.name,
                label=provider.name,
                kind="local",
                url="",
                key_env=None,
                key_set=False,
                configured=True,
                reachable=None,
                models=tuple(s.id for s in provider.specs()),
            )
        )
    return statuses
