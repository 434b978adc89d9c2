import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from deeplens.model import (
    CorruptImageError,
    EmptyImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    probe,
)
from deeplens.model.imaging import decode
from deeplens_local import synthetic


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk (valid CRC) for a huge image, plus a tiny IDAT and IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return synthetic.photo_bytes(1, 640, 480, "JPEG")


def test_probe_reads_format_and_size(jpeg: bytes) -> None:
    info = probe(jpeg)
    assert (info.format, info.width, info.height, info.mime) == ("JPEG", 640, 480, "image/jpeg")
    png = probe(synthetic.photo_bytes(2, 300, 200, "PNG"))
    assert (png.format, png.width, png.height, png.mime) == ("PNG", 300, 200, "image/png")


def test_probe_rejects_zero_bytes() -> None:
    with pytest.raises(EmptyImageError):
        probe(b"")


def test_probe_rejects_a_text_file() -> None:
    with pytest.raises(UnsupportedImageError, match="not a recognised image"):
        probe(b"id,name\n1,holiday photo\n" * 20)


def test_probe_rejects_a_format_outside_the_allowed_set() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="TIFF")
    with pytest.raises(UnsupportedImageError):
        probe(buffer.getvalue())


def test_probe_rejects_a_truncated_jpeg(jpeg: bytes) -> None:
    with pytest.raises(CorruptImageError, match="truncated"):
        probe(jpeg[: len(jpeg) // 2])


def test_probe_rejects_a_truncated_png() -> None:
    png = synthetic.photo_bytes(3, 200, 150, "PNG")
    with pytest.raises(CorruptImageError):
        probe(png[: len(png) - 200])


def test_probe_rejects_a_decompression_bomb() -> None:
    bomb = png_header_claiming(100_000, 100_000)
    assert len(bomb) < 200
    with pytest.raises(ImageTooLargeError):
        probe(bomb)
    with pytest.raises(ImageTooLargeError):
        decode(bomb)


def test_pixel_limit_is_configurable(jpeg: bytes) -> None:
    with pytest.raises(ImageTooLargeError, match="over the limit of 100,000"):
        probe(jpeg, max_pixels=100_000)
    # 144 MP: Pillow only warns (it raises from 179 MP), our limit refuses it.
    bomb = png_header_claiming(12_000, 12_000)
    with (
        pytest.raises(ImageTooLargeError, match="144,000,000 pixels"),
        pytest.warns(Image.DecompressionBombWarning),
    ):
        probe(bomb)


def test_decode_applies_exif_orientation_and_flattens_alpha() -> None:
    upright = synthetic.photo(4, 120, 80)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buffer, format="PNG", exif=exif)
    decoded = decode(buffer.getvalue())
    assert decoded.size == (120, 80)
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(upright))

    buffer = io.BytesIO()
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(buffer, format="PNG")
    assert decode(buffer.getvalue()).getpixel((5, 5)) == (255, 255, 255)


def test_decode_uses_a_reduced_jpeg_scale_but_not_below_the_target() -> None:
    big = synthetic.photo_bytes(5, 1920, 1080, "JPEG")
    assert decode(big).size == (1920, 1080)
    assert decode(big, min_side=256).size == (480, 270)  # 1/4 scale: both sides still >= 256
