"""Models on disk: hub downloads (only when a user asks), conversions, their sizes, and deletion."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import DownloadError, PlaygroundError
from ...types import ModelSpec

Progress = Callable[[float, str], None]
COMPLETE = ".complete"


@dataclass(frozen=True)
class LocalModel:
    name: str
    kind: str
    path: Path
    size_bytes: int


def hub_dir(models_dir: Path, repo: str) -> Path:
    return models_dir / "hub" / repo.replace("/", "--")


def is_downloaded(models_dir: Path, repo: str) -> bool:
    return (hub_dir(models_dir, repo) / COMPLETE).is_file()


def download(
    models_dir: Path,
    repo: str,
    *,
    subfolder: str | None = None,
    token: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Download a hub repo (or one subfolder of it) into the models folder, with progress."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    from tqdm.auto import tqdm

    target = hub_dir(models_dir, repo)

    class _Reporting(tqdm):  # type: ignore[misc]
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if progress is not None and self.total:
                progress(min(self.n / self.total, 1.0), f"Downloading {repo}")
            return shown

    patterns = [f"{subfolder}/*"] if subfolder else None
    try:
        snapshot_download(repo, local_dir=target, allow_patterns=patterns, token=token, tqdm_class=_Reporting)
    except LocalEntryNotFoundError:
        raise DownloadError(
            f"Cannot reach the Hugging Face Hub to download {repo}: check the network "
            "(HF_HUB_OFFLINE must not be set)."
        ) from None
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        if status in (401, 403):
            raise DownloadError(
                f"{repo} is gated or private: accept its licence on the Hub and set HF_TOKEN."
            ) from None
        raise DownloadError(f"Downloading {repo} failed: {exc}") from None
    (target / COMPLETE).touch()
    return target / subfolder if subfolder else target


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def list_local(models_dir: Path) -> list[LocalModel]:
    """The downloaded, embedded-derived and converted models, with their size on disk."""
    found: list[LocalModel] = []
    for kind in ("hub", "embedded", "converted"):
        base = models_dir / kind
        if not base.is_dir():
            continue
        for path in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found.append(LocalModel(path.name, kind, path, folder_size(path)))
    return found


def delete_local(models_dir: Path, name: str) -> LocalModel:
    """Delete one model folder by the name list_local gives it; nothing outside the models folder."""
    for model in list_local(models_dir):
        if model.name == name:
            shutil.rmtree(model.path)
            return model
    raise PlaygroundError(f"No local model named {name!r}; see the list of local models.")


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def source_str(source: dict[str, Any] | None, key: str) -> str | None:
    value = (source or {}).get(key)
    return str(value) if value else None


def reads_from(spec: ModelSpec, removed: LocalModel, models_dir: Path) -> bool:
    """Whether a local model's files are those of a local model on disk (one about to be deleted)."""
    path, repo = spec.extra.get("path"), spec.extra.get("repo")
    if path:
        return Path(str(path)).is_relative_to(removed.path)
    if repo:
        return hub_dir(models_dir, str(repo)) == removed.path
    return bool(spec.extra.get("embedded")) and removed.kind == "embedded"
