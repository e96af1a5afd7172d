"""Images checked before anything is sent: the type from the bytes, size, pixels, orientation, scale.

Every image a visitor gives (a path, or a data: URL) goes through `prepare_image` once per request: the
format is sniffed from the first bytes (never the file name), the file size and the pixel count are
checked before any pixel is decoded (a decompression bomb is refused from its header), the EXIF
orientation is applied, the picture is scaled down to the model's limit and encoded again as PNG (or
JPEG for photos), and handed on as a data: URL that every engine reads. What cannot be read is refused
with a message that says what to do (InvalidImageError).
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ImagesNotSupportedError, InvalidImageError
from .types import Capability, Message, ModelSpec

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_BYTES = 20 * 1024 * 1024  # a file larger than this is refused before it is read
MAX_PIXELS = 40_000_000  # width x height, from the header, before decoding (a decompression bomb)
MAX_SIDE = 2048  # the longest side sent to an API that states no limit of its own
MAX_IMAGES = 16  # per request
IMAGE_TOKENS_ESTIMATE = 768
"""Tokens one image is counted as where the engine cannot say (a cloud model with a local tokenizer):
about what Phi-3.5-vision makes of one image at 4 crops (757)."""

# The formats an image may have, by their first bytes.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)
MIME = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}


@dataclass(frozen=True)
class ImageLimits:
    """What one model accepts: the longest side it is sent at, the file size, the pixel count."""

    max_side: int = MAX_SIDE
    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS
    max_images: int = MAX_IMAGES


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send: encoded again, oriented and scaled."""

    data: bytes
    mime: str
    width: int
    height: int
    source_format: str
    scaled: bool = False

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def sniff(head: bytes) -> str | None:
    """The image format its first bytes say (PNG, JPEG, GIF, WEBP, BMP), or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    return None


def check_size(ref: str, limits: ImageLimits = ImageLimits()) -> None:
    """InvalidImageError when an image reference (a file path or a data: URL) is larger than the limit,
    judged from the file's size on disk or the URL's length: nothing is read."""
    if ref.startswith("data:"):
        size = len(ref.partition(",")[2]) * 3 // 4
    else:
        path = Path(ref).expanduser()
        if not path.is_file():
            return  # read_bytes says it is missing
        size = path.stat().st_size
    if size > limits.max_bytes:
        raise InvalidImageError(_too_big(describe(ref), size, limits))


def read_bytes(ref: str, limits: ImageLimits = ImageLimits()) -> bytes:
    """The bytes of an image reference (a file path or a data: URL), refused past the size limit."""
    label = describe(ref)
    if ref.startswith("data:"):
        header, _, payload = ref.partition(",")
        if not header.endswith(";base64"):
            raise InvalidImageError(f"{label}: only base64 data: URLs are read; attach the file instead.")
        check_size(ref, limits)
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImageError(
                f"{label}: the data: URL is not valid base64; attach the file instead."
            ) from None
    if ref.startswith(("http://", "https://")):
        raise InvalidImageError(f"{label}: images are sent from files; download it and attach the file.")
    path = Path(ref).expanduser()
    if not path.is_file():
        raise InvalidImageError(f"Image not found: {path.name}. Attach it again.")
    check_size(ref, limits)
    return path.read_bytes()


def prepare_image(ref: str, limits: ImageLimits = ImageLimits()) -> PreparedImage:
    """Check and normalise one image; InvalidImageError (with what to do) when it cannot be used."""
    label = describe(ref)
    raw = read_bytes(ref, limits)
    kind = sniff(raw[:16])
    if kind is None:
        raise InvalidImageError(
            f"{label} is not an image this playground reads (PNG, JPEG, WebP, GIF or BMP, judged from its "
            "content, not its name): convert it to PNG or JPEG and attach it again."
        )
    image = _decode(raw, kind, label, limits)
    scaled = False
    if max(image.size) > limits.max_side:
        image.thumbnail((limits.max_side, limits.max_side))
        scaled = True
    photo = kind == "JPEG" and image.mode == "RGB"
    out = io.BytesIO()
    if photo:
        image.save(out, format="JPEG", quality=90)
    else:
        image.save(out, format="PNG")
    return PreparedImage(
        out.getvalue(), "image/jpeg" if photo else "image/png", image.width, image.height, kind, scaled
    )


def open_image(ref: str, limits: ImageLimits = ImageLimits()) -> Image:
    """A checked image as an RGB PIL image, for the local engines' processors (a data: URL is one
    `prepare_messages` made: only its bytes are read)."""
    from PIL import Image as PILImage

    raw = read_bytes(ref, limits) if ref.startswith("data:") else prepare_image(ref, limits).data
    with PILImage.open(io.BytesIO(raw)) as image:
        return image.convert("RGB")


def _decode(raw: bytes, kind: str, label: str, limits: ImageLimits) -> Image:
    """Open the header, check the pixel count, then decode; orientation applied, RGB or RGBA out."""
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    if PILImage.MAX_IMAGE_PIXELS is None or PILImage.MAX_IMAGE_PIXELS > MAX_PIXELS:
        PILImage.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL's own guard (it refuses twice this at open), behind ours
    try:
        with warnings.catch_warnings():  # PIL warns past MAX_IMAGE_PIXELS: our own check below refuses
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            opened = PILImage.open(io.BytesIO(raw))
        with opened:
            if opened.format != kind and not (kind == "JPEG" and opened.format == "MPO"):
                raise InvalidImageError(f"{label}: its content is not a whole {kind} image; save it again.")
            width, height = opened.size
            if width * height > limits.max_pixels or width <= 0 or height <= 0:
                raise InvalidImageError(
                    f"{label} is {width}x{height} pixels, more than the {limits.max_pixels:,} this playground "
                    "decodes (a guard against decompression bombs): scale it down and attach it again."
                )
            opened.seek(0)  # the first frame of an animation
            image = ImageOps.exif_transpose(opened)
            image.load()
    except InvalidImageError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise InvalidImageError(
            f"{label} has far more than the {limits.max_pixels:,} pixels this playground decodes (a guard "
            "against decompression bombs): scale it down and attach it again."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(
            f"{label} cannot be read: the file is damaged or cut short ({type(exc).__name__}). "
            "Save it again as PNG or JPEG and attach it again."
        ) from None
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    return image


def describe(ref: str) -> str:
    """How an image is named in a message: its file name (never its bytes, never a whole path)."""
    if ref.startswith("data:"):
        return "The pasted image"
    return f"The image {Path(ref).name!r}"


def _mb(size: int) -> str:
    """A size in MB as a limit is said: 10, 0.5, 21 (never 20.9715)."""
    return f"{size / 1e6:.1f}".removesuffix(".0")


def _too_big(label: str, size: int, limits: ImageLimits) -> str:
    return (
        f"{label} is {size / 1e6:.1f} MB, more than the {_mb(limits.max_bytes)} MB an image may be "
        "here: scale it down or save it as JPEG, and attach it again."
    )


# Per model


def image_limits(spec: ModelSpec, max_bytes: int | None = None) -> ImageLimits:
    """The limits of one model: `max_image_side` in its source (catalog or configuration) wins;
    `max_bytes` is the deployment's own limit on one image (PLAYGROUND_IMAGE_MB; None: MAX_BYTES)."""
    limits = ImageLimits() if max_bytes is None else ImageLimits(max_bytes=max_bytes)
    side = spec.extra.get("max_image_side")
    if isinstance(side, int) and side > 0:
        return replace(limits, max_side=side)
    return limits


def require_vision(spec: ModelSpec, messages: Sequence[Message]) -> None:
    """ImagesNotSupportedError when a message carries images and the model cannot take them."""
    count = sum(len(m.images) for m in messages)
    if count and Capability.VISION not in spec.capabilities:
        raise ImagesNotSupportedError(
            f"{spec.name} on {spec.engine_label} does not take images, and {count} image(s) are attached: "
            "pick a vision model (the Vision tab lists them), or remove the images."
        )


def prepare_messages(
    spec: ModelSpec, messages: Sequence[Message], *, max_bytes: int | None = None
) -> tuple[Message, ...]:
    """The messages with every image checked and normalised for this model (data: URLs), or an error.

    `max_bytes`: the most one image may weigh (PLAYGROUND_IMAGE_MB); None: MAX_BYTES."""
    require_vision(spec, messages)
    limits = image_limits(spec, max_bytes)
    total = sum(len(m.images) for m in messages)
    if total > limits.max_images:
        raise InvalidImageError(
            f"{total} images are attached; {spec.name} takes at most {limits.max_images} in one "
            "conversation here: start a new conversation or remove some."
        )
    return tuple(
        replace(m, images=tuple(prepare_image(ref, limits).data_url for ref in m.images)) if m.images else m
        for m in messages
    )
