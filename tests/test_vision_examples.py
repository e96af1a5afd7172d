"""The Vision tab's example tasks: each names images the project draws itself, and each image passes the
same checks a visitor's image does."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageChops

from playground.images import prepare_image
from playground.vision_examples import SAMPLES, draw_samples, load_vision_examples


def test_every_task_has_its_images_and_they_pass_validation() -> None:
    examples = load_vision_examples()
    titles = [e.title for e in examples]
    assert titles == [
        "Read text from an image",
        "Read a chart",
        "Compare two images",
        "Describe a series of frames",
    ]
    assert [len(e.images) for e in examples] == [1, 1, 2, 4]
    for example in examples:
        assert example.prompt.strip()
        for image in example.images:
            assert image.is_file() and image.stat().st_size < 64_000, "small files"
            assert prepare_image(str(image)).source_format == "PNG"


def test_the_committed_images_are_what_the_drawing_code_makes(tmp_path: Path) -> None:
    drawn = draw_samples(tmp_path)
    assert sorted(p.name for p in drawn) == sorted(SAMPLES)
    committed = {e.name: e for ex in load_vision_examples() for e in ex.images}
    for path in drawn:
        with Image.open(path) as fresh, Image.open(committed[path.name]) as kept:
            assert fresh.size == kept.size
            assert ImageChops.difference(fresh.convert("RGB"), kept.convert("RGB")).getbbox() is None


def test_missing_images_are_drawn_on_first_use(tmp_path: Path) -> None:
    examples = load_vision_examples(images_dir=tmp_path / "images")
    assert all(p.is_file() for e in examples for p in e.images)
    frames = examples[-1].images
    with Image.open(frames[0]) as first, Image.open(frames[-1]) as last:
        assert ImageChops.difference(first.convert("RGB"), last.convert("RGB")).getbbox() is not None
