"""Images are checked before anything is sent: type from the bytes, size, pixels (bombs), orientation,
scale; a text-only model refuses them with a message. Real PIL files, real errors."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from playground.errors import ImagesNotSupportedError, InvalidImageError, InvalidOptionsError
from playground.images import (
    ImageLimits,
    image_limits,
    open_image,
    prepare_image,
    prepare_messages,
    require_vision,
    sniff,
)
from playground.types import Capability, Message, ModelSpec

VISION = ModelSpec("v@x", "Vision model", "transformers", capabilities=frozenset(Capability))
TEXT = ModelSpec("t@x", "Text model", "onnx")


def png(path: Path, size: tuple[int, int] = (40, 20), colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    Image.new("RGB", size, colour).save(path, format="PNG")
    return path


def test_the_type_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    disguised = png(tmp_path / "photo.jpg")  # PNG bytes under a JPEG name
    prepared = prepare_image(str(disguised))
    assert prepared.source_format == "PNG" and prepared.mime == "image/png"
    assert prepared.data_url.startswith("data:image/png;base64,")
    assert (prepared.width, prepared.height) == (40, 20)
    assert sniff(disguised.read_bytes()[:16]) == "PNG"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.png", b"just some text, named like a picture\n"),
        ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
        ("scan.png", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"),
        ("empty.png", b""),
    ],
)
def test_files_that_are_not_images_are_refused_with_a_message(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidImageError, match=r"not an image this playground reads .*convert it to PNG"):
        prepare_image(str(path))


def test_a_damaged_image_is_refused(tmp_path: Path) -> None:
    whole = png(tmp_path / "whole.png", (64, 64)).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole[: len(whole) // 2])  # a PNG cut short: the header is fine, the pixels are not
    with pytest.raises(InvalidImageError, match=r"cannot be read: the file is damaged or cut short"):
        prepare_image(str(cut))
    garbled = tmp_path / "garbled.jpg"
    garbled.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)  # JPEG magic, then noise
    with pytest.raises(InvalidImageError, match="damaged"):
        prepare_image(str(garbled))


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header that claims width x height pixels, with one tiny compressed row of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_from_its_header_before_any_pixel_is_decoded(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_bomb_png(100_000, 100_000))  # 10 gigapixels in a file of a few dozen bytes
    assert bomb.stat().st_size < 200
    with pytest.raises(InvalidImageError, match=r"more than the 40,000,000 pixels .*decompression bombs"):
        prepare_image(str(bomb))  # PIL's own guard (twice our limit) stops it at the header
    limits = ImageLimits(max_pixels=1000)
    with pytest.raises(
        InvalidImageError, match=r"is 40x40 pixels, more than the 1,000 .*decompression bombs"
    ):
        prepare_image(str(png(tmp_path / "over.png", (40, 40))), limits)  # ours, between 1x and 2x
    with pytest.raises(InvalidImageError, match="decompression bombs"):
        prepare_image(str(png(tmp_path / "big.png", (50, 50))), limits)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    noisy = Image.frombytes("RGB", (200, 200), bytes((i * 7919) % 251 for i in range(200 * 200 * 3)))
    path = tmp_path / "huge.png"
    noisy.save(path)
    size = path.stat().st_size
    with pytest.raises(InvalidImageError, match=r"MB, more than the .* MB an image may be"):
        prepare_image(str(path), ImageLimits(max_bytes=size - 1))
    assert prepare_image(str(path), ImageLimits(max_bytes=size)).width == 200
    data_url = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    with pytest.raises(InvalidImageError, match="The pasted image is"):
        prepare_image(data_url, ImageLimits(max_bytes=size // 2))


def test_large_images_are_scaled_down_to_the_models_limit(tmp_path: Path) -> None:
    wide = png(tmp_path / "wide.png", (3000, 1000))
    prepared = prepare_image(str(wide))
    assert (prepared.width, prepared.height) == (2048, 683) and prepared.scaled
    spec = ModelSpec(
        "d@x", "Demo", "transformers", capabilities=frozenset(Capability), extra={"max_image_side": 512}
    )
    assert image_limits(spec).max_side == 512
    (message,) = prepare_messages(spec, [Message("user", "Look", images=(str(wide),))])
    (url,) = message.images
    small = open_image(url)
    assert small.size == (512, 171)
    unchanged = prepare_image(str(png(tmp_path / "small.png", (300, 200))))
    assert (unchanged.width, unchanged.height, unchanged.scaled) == (300, 200, False)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A phone photo stored 60x20 with 'rotate 90' in its EXIF is a 20x60 picture."""
    photo = Image.new("RGB", (60, 20), (10, 200, 10))
    photo.paste((250, 0, 0), (0, 0, 10, 20))  # a red band on the stored image's left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 clockwise to display
    path = tmp_path / "phone.jpg"
    photo.save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    prepared = prepare_image(str(path))
    assert (prepared.width, prepared.height) == (20, 60)
    assert prepared.mime == "image/jpeg"
    shown = Image.open(io.BytesIO(prepared.data))
    assert "exif" not in shown.info or Image.open(io.BytesIO(prepared.data)).getexif().get(0x0112, 1) == 1
    top = shown.convert("RGB").getpixel((10, 2))
    assert isinstance(top, tuple) and top[0] > 200 and top[1] < 60, "the red band is at the top once turned"


def test_transparent_and_palette_images_are_kept_readable(tmp_path: Path) -> None:
    Image.new("RGBA", (30, 30), (0, 0, 255, 128)).save(tmp_path / "alpha.png")
    Image.new("P", (30, 30), 3).save(tmp_path / "palette.gif")
    assert prepare_image(str(tmp_path / "alpha.png")).mime == "image/png"
    gif = prepare_image(str(tmp_path / "palette.gif"))
    assert gif.source_format == "GIF" and gif.mime == "image/png"
    assert open_image(gif.data_url).mode == "RGB"


def test_missing_files_urls_and_bad_data_urls_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"Image not found: gone.png"):
        prepare_image(str(tmp_path / "gone.png"))
    with pytest.raises(InvalidImageError, match="download it and attach the file"):
        prepare_image("https://example.com/cat.png")
    with pytest.raises(InvalidImageError, match="not valid base64"):
        prepare_image("data:image/png;base64,@@@not-base64@@@")


def test_a_text_only_model_refuses_images_and_never_drops_them(tmp_path: Path) -> None:
    image = str(png(tmp_path / "chart.png"))
    ask = [Message("user", "Read the chart", images=(image,))]
    with pytest.raises(
        ImagesNotSupportedError, match=r"Text model on ONNX Runtime GenAI does not take images"
    ):
        require_vision(TEXT, ask)
    with pytest.raises(ImagesNotSupportedError, match="pick a vision model"):
        prepare_messages(TEXT, ask)
    assert isinstance(ImagesNotSupportedError("x"), InvalidOptionsError), "shown as a user error"
    with pytest.raises(ImagesNotSupportedError, match="text-only"):
        ask[0].to_dict()  # the text-only form refuses rather than lose the image
    assert Message("user", "plain").to_dict() == {"role": "user", "content": "plain"}
    assert ask[0].to_record() == {"role": "user", "content": "Read the chart", "images": 1}
    require_vision(TEXT, [Message("user", "no images")])  # text is fine


def test_too_many_images_are_refused(tmp_path: Path) -> None:
    image = str(png(tmp_path / "dot.png", (8, 8)))
    many = [Message("user", "frames", images=(image,) * 17)]
    with pytest.raises(InvalidImageError, match=r"17 images are attached; Vision model takes at most 16"):
        prepare_messages(VISION, many)


def test_prepared_messages_carry_checked_data_urls_in_order(tmp_path: Path) -> None:
    red = str(png(tmp_path / "red.png", colour=(255, 0, 0)))
    blue = str(png(tmp_path / "blue.png", colour=(0, 0, 255)))
    messages = [Message("system", "Be brief."), Message("user", "Compare", images=(red, blue))]
    system, user = prepare_messages(VISION, messages)
    assert system == messages[0]
    assert [open_image(u).getpixel((1, 1)) for u in user.images] == [(255, 0, 0), (0, 0, 255)]
    assert all(u.startswith("data:image/png;base64,") for u in user.images)
