"""Example tasks of the Vision tab, with sample images the project draws itself (PIL, no downloads).

The tasks are data (prompts/vision.toml); the images lie in prompts/images/ and are drawn again by
`python -m playground.vision_examples` (the same pixels every time: no randomness, PIL's own font).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .prompts import PROMPTS_DIR

if TYPE_CHECKING:
    from PIL.Image import Image

IMAGES_DIR = PROMPTS_DIR / "images"
TASKS_FILE = PROMPTS_DIR / "vision.toml"


@dataclass(frozen=True)
class VisionExample:
    """One task: a title, the prompt, and the images it asks about (paths, in order)."""

    title: str
    prompt: str
    images: tuple[Path, ...]
    num_crops: int | None = None  # Phi-3/3.5-vision: 4 for several frames, 16 for one detailed image


def load_vision_examples(path: Path = TASKS_FILE, images_dir: Path = IMAGES_DIR) -> list[VisionExample]:
    """The example tasks, with their images drawn first where they are missing."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    examples = []
    for raw in data.get("examples", []):
        names = list(raw.get("images", []))
        missing = [n for n in names if not (images_dir / n).is_file()]
        if missing:
            draw_samples(images_dir, only=missing)
        crops = raw.get("num_crops")
        examples.append(
            VisionExample(
                title=str(raw["title"]),
                prompt=str(raw["prompt"]),
                images=tuple(images_dir / n for n in names),
                num_crops=int(crops) if crops is not None else None,
            )
        )
    return examples


# Drawing


def _font(size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def sign() -> Image:
    """A notice with text to read (OCR)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (480, 260), (250, 246, 232))
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, 471, 251), outline=(40, 40, 40), width=4)
    draw.text((30, 24), "SMALL MODELS MUSEUM", fill=(20, 20, 120), font=_font(30))
    lines = [
        "Open daily 09:00 - 17:30",
        "Closed on 1 January",
        "Adults 8.50 EUR, children free",
        "Room 3: Phi",
    ]
    for i, line in enumerate(lines):
        draw.text((30, 84 + i * 40), line, fill=(30, 30, 30), font=_font(24))
    return image


def chart() -> Image:
    """A bar chart with a title, labelled bars and values."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (560, 360), "white")
    draw = ImageDraw.Draw(image)
    draw.text((30, 14), "Parameters per model (billions)", fill="black", font=_font(22))
    bars = [("Phi-3-mini", 3.8, (66, 133, 244)), ("Phi-3.5-MoE", 42.0, (219, 68, 55)),
            ("Phi-4", 14.0, (15, 157, 88)), ("Phi-4-mini", 3.8, (244, 180, 0))]  # fmt: skip
    base, top, scale = 320, 60, (320 - 60) / 42.0
    draw.line((60, base, 540, base), fill="black", width=2)
    draw.line((60, top - 10, 60, base), fill="black", width=2)
    for i, (name, value, colour) in enumerate(bars):
        left = 90 + i * 115
        draw.rectangle((left, base - value * scale, left + 70, base), fill=colour)
        draw.text((left + 8, base - value * scale - 24), f"{value:g}", fill="black", font=_font(18))
        draw.text((left - 6, base + 8), name, fill="black", font=_font(15))
    return image


def scene(variant: int) -> Image:
    """Two nearly identical scenes for 'what changed?': the second moves, recolours and adds a shape."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 240), (235, 242, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 190, 319, 239), fill=(120, 180, 90))  # grass
    draw.ellipse((240, 20, 290, 70), fill=(255, 200, 0))  # sun
    house = (40, 110, 140, 190) if variant == 0 else (170, 110, 270, 190)
    draw.rectangle(house, fill=(200, 60, 50))
    draw.polygon([(house[0] - 10, house[1]), (house[2] + 10, house[1]), ((house[0] + house[2]) // 2, 70)],
                 fill=(90, 60, 40))  # fmt: skip
    door = (0, 90, 200) if variant == 0 else (30, 140, 60)
    draw.rectangle((house[0] + 40, 150, house[0] + 60, 190), fill=door)
    if variant == 1:
        draw.ellipse((40, 120, 90, 190), fill=(30, 110, 40))  # a tree appears
    return image


def frame(index: int, count: int = 4) -> Image:
    """Frame `index` of a ball rolling left to right and falling off a table."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 200), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 120, 200, 130), fill=(130, 90, 50))  # the table
    x = 30 + index * 60
    y = 90 if x < 200 else 90 + (x - 190) * 1.5
    draw.ellipse((x, y, x + 30, y + 30), fill=(220, 40, 40))
    draw.text((8, 8), f"frame {index + 1}/{count}", fill=(80, 80, 80), font=_font(16))
    return image


SAMPLES: dict[str, Callable[[], Image]] = {
    "sign.png": sign,
    "chart.png": chart,
    "scene-before.png": lambda: scene(0),
    "scene-after.png": lambda: scene(1),
    **{f"frame-{i + 1}.png": (lambda i=i: frame(i)) for i in range(4)},  # type: ignore[misc]
}


def draw_samples(folder: Path = IMAGES_DIR, only: list[str] | None = None) -> list[Path]:
    """Draw the sample images into `folder` (all, or the names in `only`); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in SAMPLES.items():
        if only is None or name in only:
            make().save(folder / name, format="PNG", optimize=True)
            written.append(folder / name)
    return written


if __name__ == "__main__":
    for path in draw_samples():
        print(path, path.stat().st_size, "bytes")
