"""On a Space: the models its build preloaded (`preload_from_hub`) become ready without a download.

The build saves them in huggingface_hub's cache; the playground looks for a model under its own models
folder (`hub/<org>--<name>`, marked complete). For each catalog source whose files are in the cache, that
folder is made of links to the cached snapshot, so nothing is copied and nothing is fetched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from ..catalog import CatalogEntry
from ..providers.local.store import COMPLETE, hub_dir, is_downloaded

log = logging.getLogger(__name__)

MARKERS = {"onnx": "genai_config.json", "transformers": "config.json"}  # a usable folder has this file


def cached_snapshot(repo: str, marker: str) -> Path | None:
    """The cache's snapshot folder of `repo` if it holds `marker` (a path inside the repository)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, marker)
    if not isinstance(found, str):
        return None
    root = Path(found)
    for _ in Path(marker).parts:
        root = root.parent
    return root


def adopt(models_dir: Path, catalog: Iterable[CatalogEntry]) -> list[str]:
    """Link every cached catalog model into the models folder; the repositories adopted."""
    adopted: list[str] = []
    for entry in catalog:
        for engine, marker in MARKERS.items():
            source = entry.source(engine) or {}
            repo = str(source.get("repo", ""))
            if not repo or is_downloaded(models_dir, repo):
                continue
            subfolder = str(source.get("subfolder", ""))
            snapshot = cached_snapshot(repo, f"{subfolder}/{marker}" if subfolder else marker)
            if snapshot is None:
                continue
            target = hub_dir(models_dir, repo)
            target.mkdir(parents=True, exist_ok=True)
            for item in snapshot.iterdir():
                link = target / item.name
                if not link.exists() and not link.is_symlink():
                    link.symlink_to(item)
            (target / COMPLETE).touch()
            adopted.append(repo)
            log.info("%s: preloaded at build time, ready (linked from %s)", repo, snapshot)
    return adopted
