"""Providers: one adapter per engine or API family, all behind the protocol in base.py."""

from __future__ import annotations

from ..catalog import CatalogEntry
from ..settings import Settings
from .base import Provider
from .cloud import build_cloud_providers
from .local import EngineMode, OnnxProvider, TransformersProvider


def build_providers(settings: Settings, catalog: list[CatalogEntry]) -> list[Provider]:
    """Every provider this configuration enables, local engines first; no network call is made here."""
    mode = EngineMode(processes=settings.engine_processes, workers=settings.engine_workers)
    return [
        OnnxProvider(catalog, settings.models_dir, mode, downloads=not settings.public),
        TransformersProvider(catalog, settings.models_dir, mode, downloads=not settings.public),
        *build_cloud_providers(settings, catalog),
    ]
