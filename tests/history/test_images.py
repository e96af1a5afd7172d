from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from playground.errors import HistoryError
from playground.history import HistoryStore

PNG = b"\x89PNG\r\n\x1a\n image bytes"


def test_images_are_stored_once_by_content_hash(store: HistoryStore, tmp_path: Path) -> None:
    digest = hashlib.sha256(PNG).hexdigest()
    upload = tmp_path / "upload.JPG"
    upload.write_bytes(PNG)
    assert store.images.store_image(PNG, ".png") == f"{digest}.png"
    assert store.images.store_image(PNG, ".png") == f"{digest}.png"
    assert store.images.store_image_file(upload) == f"{digest}.jpg"
    assert sorted(p.name for p in store.images.root.iterdir()) == [f"{digest}.jpg", f"{digest}.png"]
    assert store.images.image_path(f"{digest}.png").read_bytes() == PNG
    assert store.images.store_image(b"other bytes", ".svg").endswith(".png")  # only known image suffixes


@pytest.mark.parametrize("bad", ["../history.db", "/etc/passwd", "a" * 64 + ".exe", "A" * 64 + ".png", ""])
def test_image_references_cannot_escape_the_folder(store: HistoryStore, bad: str) -> None:
    with pytest.raises(HistoryError, match="not an image reference"):
        store.images.image_path(bad)
