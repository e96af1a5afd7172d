"""The history's part that keeps the visitors' images: stored once by content (images.py's folder), and
removed once no message uses them, which it asks the database."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from ..errors import HistoryError, map_errors
from .database import Database
from .images import ImageFolder, is_image_ref
from .sql import referenced


class ImageStore:
    """The visitors' images: stored once by content hash, deleted when no message uses them any more."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.folder = ImageFolder(root)
        # Storing and pruning take turns: a file stored again (its mtime refreshed) between a prune's
        # look at the messages and its unlink would otherwise be deleted under the message that uses it.
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        return self.folder.root

    def store_image(self, data: bytes, suffix: str = ".png") -> str:
        """Store image bytes once, by content hash; the reference to pass to add_message."""
        with self._lock, map_errors({OSError: HistoryError}, "Storing the image failed"):
            return self.folder.put(data, suffix)

    def store_image_file(self, path: Path | str) -> str:
        """Store an uploaded image file once, by content hash; its reference."""
        with self._lock:
            return self.folder.put_file(Path(path))

    def image_path(self, ref: str) -> Path:
        """The file of a reference; HistoryError for anything that is not one."""
        return self.folder.path(ref)

    def read(self, ref: str) -> bytes | None:
        """The bytes of a reference, None when its file is gone (an export embeds them)."""
        return self.folder.read(ref)

    def size(self, ref: str) -> int:
        """The file's size in bytes (what a quota counts); 0 when it is gone."""
        try:
            return self.folder.path(ref).stat().st_size
        except (OSError, HistoryError):
            return 0

    def prune(self, candidates: Iterable[str]) -> int:
        """Delete the candidates no message uses any more (older than the grace period); how many."""
        refs = set(candidates)
        if not refs:
            return 0
        with self._lock:
            with self.db.read() as conn:
                used = referenced(conn, refs)
            return self.folder.remove_unreferenced(refs, used)

    def prune_images(self) -> int:
        """Delete every image file no message references (older than a minute)."""
        if not self.root.is_dir():
            return 0
        return self.prune(p.name for p in self.root.iterdir() if p.is_file() and is_image_ref(p.name))
