"""Our messages and options in the OpenAI chat wire format, images in the form each model needs."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import ImagesNotSupportedError
from ...images import MIME, read_bytes, sniff
from ...options import GenerationOptions
from ...types import Message
from .endpoint import VisionFormat

# NVIDIA's inline form takes at most this much base64 text; larger images are re-encoded smaller.
INLINE_LIMIT = 180_000
MAX_STOPS = 4  # OpenAI's limit: the rest are applied by the playground (CloudModel)

ImageURL = Callable[[str, int | None], str]
"""How an image reference becomes the URL sent: (image, base64 size limit or None) -> URL."""


def wire_messages(
    messages: Sequence[Message], vision: VisionFormat, *, image_url: ImageURL | None = None
) -> list[dict[str, Any]]:
    """Chat messages as JSON-ready dicts; images as `vision` says the model takes them.

    `image_url` replaces reading the image files (Get code writes a call that reads them when run).
    """
    to_url = image_url or _inline
    return [_message(m, vision, to_url) for m in messages]


def _inline(image: str, limit: int | None) -> str:
    return data_url(image, limit=limit)


def _message(message: Message, vision: VisionFormat, to_url: ImageURL) -> dict[str, Any]:
    if not message.images:
        return {"role": message.role, "content": message.content}
    if vision == "none":
        raise ImagesNotSupportedError(
            "This model does not take images on this endpoint: remove them, or pick a vision model."
        )
    limit = INLINE_LIMIT if vision == "img-tag" else None
    urls = [to_url(image, limit) for image in message.images]
    if vision == "img-tag":
        tags = " ".join(f'<img src="{url}" />' for url in urls)
        return {"role": message.role, "content": f"{message.content} {tags}".strip()}
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    for url in urls:
        image_url: object = url if vision == "bare-string" else {"url": url}
        parts.append({"type": "image_url", "image_url": image_url})
    return {"role": message.role, "content": parts}


def data_url(image: str, *, limit: int | None = None) -> str:
    """An image reference (a path, a data: URL, an http(s) URL) as the URL to send; the type is read
    from the bytes (never the name); past `limit` (base64 characters) it is re-encoded smaller."""
    if image.startswith(("http://", "https://")):
        return image
    if image.startswith("data:") and (limit is None or len(image) <= limit):
        return image
    raw = read_bytes(image)
    prefix = f"data:{MIME.get(sniff(raw[:16]) or '', 'image/png')};base64,"
    encoded = base64.b64encode(raw).decode("ascii")
    if limit is not None and len(prefix) + len(encoded) > limit:
        prefix = "data:image/jpeg;base64,"
        encoded = base64.b64encode(_shrink(raw, limit - len(prefix))).decode("ascii")
    return prefix + encoded


def _shrink(raw: bytes, limit: int) -> bytes:
    """Re-encode an image as JPEG, halving its size until its base64 form fits `limit`."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(raw)).convert("RGB")
    while True:
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=85)
        if len(out.getvalue()) * 4 // 3 + 4 <= limit or min(image.size) < 32:
            return out.getvalue()
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)))


def wire_params(options: GenerationOptions, *, extras: bool = False) -> dict[str, Any]:
    """The OpenAI request parameters for our options; top_k and repetition_penalty only where allowed.

    At most MAX_STOPS stop sequences are sent; the model applies all of them to the stream it reads.
    """
    params: dict[str, Any] = {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "max_tokens": options.max_new_tokens,
    }
    if options.seed is not None:
        params["seed"] = options.seed
    if options.stop:
        params["stop"] = list(options.stop[:MAX_STOPS])
    if extras:
        if options.top_k:
            params["top_k"] = options.top_k
        if options.repetition_penalty != 1.0:
            params["repetition_penalty"] = options.repetition_penalty
    return params


STANDARD = ("temperature", "top_p", "max_tokens", "seed", "stop")
"""The parameters both SDKs take as arguments; the others travel as extra body fields."""


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the SDKs' own arguments, the extra body fields such as top_k and repetition_penalty)."""
    standard = {k: v for k, v in params.items() if k in STANDARD}
    return standard, {k: v for k, v in params.items() if k not in STANDARD}
