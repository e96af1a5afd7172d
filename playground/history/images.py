"""Images stored once, by content hash, in the data folder: `<sha256><suffix>`."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import HistoryError

_REF = re.compile(r"[0-9a-f]{64}\.(png|jpg|jpeg|gif|webp|bmp)")
_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
# A file younger than this is never pruned: it may be stored for a message not yet written.
PRUNE_GRACE_S = 60.0


def is_image_ref(ref: object) -> bool:
    """True for a reference this folder makes: a SHA-256 file name with an image suffix."""
    return isinstance(ref, str) and bool(_REF.fullmatch(ref))


def check_image_ref(ref: object) -> str:
    """The reference itself; HistoryError for anything else (a path, a URL, another file)."""
    if not is_image_ref(ref):
        raise HistoryError(f"{ref!r} is not an image reference of this history.")
    return str(ref)


class ImageFolder:
    """Content-addressed image files; a reference is the file name, never a path."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, data: bytes, suffix: str = ".png") -> str:
        """Store the bytes once (the same bytes give the same reference) and return the reference."""
        suffix = suffix.lower() if suffix.lower() in _SUFFIXES else ".png"
        ref = hashlib.sha256(data).hexdigest() + suffix
        target = self.root / ref
        if target.is_file():
            os.utime(target)  # a fresh mtime protects it from a concurrent prune
            return ref
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".part")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
        return ref

    def put_file(self, path: Path) -> str:
        """Store an image file (an upload) and return its reference."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise HistoryError(f"Could not read the image {path.name}: {exc.strerror}.") from None
        return self.put(data, path.suffix)

    def path(self, ref: str) -> Path:
        """The file of a reference; HistoryError for anything that is not a reference."""
        return self.root / check_image_ref(ref)

    def read(self, ref: str) -> bytes | None:
        target = self.path(ref)
        return target.read_bytes() if target.is_file() else None

    def remove_unreferenced(self, candidates: Iterable[str], referenced: set[str]) -> int:
        """Delete the candidate files nothing references any more (older than the grace period)."""
        removed = 0
        now = time.time()
        for ref in set(candidates) - referenced:
            target = self.path(ref)
            try:
                if now - target.stat().st_mtime >= PRUNE_GRACE_S:
                    target.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
