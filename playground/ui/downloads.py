"""Files the page offers for download (history and arena exports), kept a while and then deleted.

Each app writes them into one folder of its own under the system's temp folder (where Gradio may serve
files from); every write first deletes what is older than the maximum age (PLAYGROUND_FILES_MAX_AGE_MIN,
or a day when that is off), including the folders earlier runs of the app left behind. Gradio copies a
returned file into its own cache, which `delete_cache` clears (see ui/app.py).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 86_400.0  # when PLAYGROUND_FILES_MAX_AGE_MIN is off


class DownloadFolder:
    """One app's folder of download files, pruned by age on every write."""

    def __init__(self, name: str, max_age_s: float | None = None, *, parent: Path | None = None) -> None:
        self.parent = Path(parent or tempfile.gettempdir())
        self.prefix = f"slm-playground-{name}-"
        self.max_age_s = DEFAULT_MAX_AGE_S if max_age_s is None else max_age_s
        self._root: Path | None = None
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """This app's folder, made on first use."""
        with self._lock:
            if self._root is None or not self._root.is_dir():
                self.parent.mkdir(parents=True, exist_ok=True)
                self._root = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.parent))
            return self._root

    def write(self, filename: str, text: str) -> Path:
        """A new file (in a folder of its own, so two visitors' exports never clash) after pruning."""
        self.prune()
        folder = Path(tempfile.mkdtemp(dir=self.root))
        path = folder / filename
        path.write_text(text, encoding="utf-8")
        return path

    def prune(self, now: float | None = None) -> int:
        """Delete this app's files older than the maximum age, and other runs' folders as old; how many."""
        cutoff = (time.time() if now is None else now) - self.max_age_s
        root = self.root
        doomed = [p for p in root.iterdir() if _mtime(p) < cutoff]
        doomed += [
            p for p in self.parent.glob(self.prefix + "*") if p != root and p.is_dir() and _newest(p) < cutoff
        ]
        for path in doomed:
            try:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            except OSError as exc:  # another app pruning at once, or a file in use: next time
                log.debug("could not delete the old download %s: %s", path, exc)
        return len(doomed)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("inf")


def _newest(folder: Path) -> float:
    """The latest modification in a folder (the folder itself, or anything under it)."""
    times = [_mtime(folder), *(_mtime(p) for p in folder.rglob("*"))]
    return max(times)
