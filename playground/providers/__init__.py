"""Providers: one adapter per engine or API family, all behind the protocol in base.py."""

from __future__ import annotations

from ..catalog import CatalogEntry
from ..settings import Settings
from .base import Provider
from .cloud import build_cloud_providers
from .local import OnnxProvider, TransformersProvider


def build_providers(settings: Settings, catalog: list[CatalogEntry]) -> list[Provider]:
    """Every provider this configuration enables, local engines first; no network call is made here."""
    return [
        OnnxProvider(catalog, settings.models_dir),
        TransformersProvider(catalog, settings.models_dir),
        *build_cloud_providers(settings, catalog),
    ]
