"""Image bytes in: a cheap header probe for the upload path and a guarded RGB decode for embedding.

Both restrict Pillow to a few formats and refuse images whose header claims more than `max_pixels`
(decompression bombs) before any pixel is decoded.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

from PIL import (  # the plugins register the decoders that `formats=` below may name
    BmpImagePlugin,  # noqa: F401
    GifImagePlugin,  # noqa: F401
    Image,
    ImageFile,
    ImageOps,
    JpegImagePlugin,  # noqa: F401
    PngImagePlugin,  # noqa: F401
    WebPImagePlugin,  # noqa: F401
)

DEFAULT_MAX_PIXELS = 64_000_000
MIME_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # a JPEG with extra pictures (many cameras): Pillow's JPEG opener
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")  # the decoders Pillow may use
_JPEG = ("JPEG", "MPO")
# What a damaged file can make Pillow raise while opening or decoding it.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error)


class ImageError(ValueError):
    """The bytes are not an acceptable image; `code` says why (for API error mapping)."""

    code = "invalid_image"


class EmptyImageError(ImageError):
    code = "empty"


class UnsupportedImageError(ImageError):
    code = "unsupported_format"


class CorruptImageError(ImageError):
    code = "corrupt"


class ImageTooLargeError(ImageError):
    code = "too_many_pixels"


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    mime: str


def probe(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, verify: bool = True) -> ImageInfo:
    """Check that `data` is a whole image of an accepted format and size, without a full decode.

    Reads the header; with `verify`, also checks the stream is complete: for JPEG, an end-of-image
    marker after the start of the scan data (entropy-coded data cannot contain one, so a truncated
    file has none; about 20 us where a 1/8-scale decode of a 1080p photo took 2 ms), PNG chunk
    CRCs up to IEND, a full decode for the other formats. Damage inside a JPEG's scan data is
    found later, by the pipeline's decode, and fails that image with the reason.
    Raises an `ImageError` subclass.
    """
    image = _open(data, max_pixels)
    info = ImageInfo(image.format or "", image.width, image.height, MIME_TYPES[image.format or ""])
    if verify:
        try:
            if info.format in _JPEG:
                scan_start = image.fp.tell() if image.fp is not None else 0
                if data.rfind(b"\xff\xd9", scan_start) < 0:
                    raise EOFError("no end-of-image marker after the scan data")
            elif info.format == "PNG":
                image.verify()
            else:
                image.load()
        except DECODE_ERRORS as exc:
            raise CorruptImageError(f"damaged or truncated {info.format} image: {exc}") from exc
    return info


def decode(
    data: bytes,
    *,
    min_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
    budget: str = "the run worker's budget (DEEPLENS_DECODE_BUDGET_MB)",
) -> Image.Image:
    """Decode to an upright RGB image.

    With `min_side`, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps both
    sides >= `min_side`: much faster on large photos. EXIF orientation is applied; transparency is
    composited onto white. With `max_bytes`, an image whose decode would need more memory (see
    `decode_cost`) is refused with `ImageTooLargeError`, naming `budget`, before any pixel is
    decoded.
    """
    opened = _open(data, max_pixels)
    try:
        if min_side and opened.format in _JPEG:
            opened.draft("RGB", (min_side, min_side))
        if max_bytes is not None and (cost := decode_cost(opened)) > max_bytes:
            raise ImageTooLargeError(
                f"{opened.width}x{opened.height} {opened.format} needs about {cost >> 20} MiB to "
                f"decode, over {budget} of {max_bytes >> 20} MiB; send a smaller image"
            )
        return _to_rgb(ImageOps.exif_transpose(opened))
    except ImageTooLargeError:
        raise
    except DECODE_ERRORS as exc:
        raise CorruptImageError(f"cannot decode {opened.format} image: {exc}") from exc


def decode_cost(image: Image.Image) -> int:
    """Peak bytes to decode `image` (at its draft size) into RGB: the decoded pixels and the RGB
    copy, twice over for transparency (composited onto a white background)."""
    pixels = image.width * image.height
    bands = len(image.getbands())
    alpha = "A" in image.getbands() or "transparency" in image.info
    return pixels * (bands + 3) * (2 if alpha else 1)


def _open(data: bytes, max_pixels: int) -> ImageFile.ImageFile:
    if not data:
        raise EmptyImageError("empty file")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except Image.UnidentifiedImageError as exc:
        accepted = ", ".join(FORMATS)
        raise UnsupportedImageError(f"not a recognised image (accepted: {accepted})") from exc
    except DECODE_ERRORS as exc:
        raise CorruptImageError(f"damaged image header: {exc}") from exc
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise ImageTooLargeError(
            f"{image.width}x{image.height} is {pixels:,} pixels, over the limit of {max_pixels:,}"
        )
    if image.width < 1 or image.height < 1:
        raise CorruptImageError(f"invalid size {image.width}x{image.height}")
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        image.load()
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode.startswith("I"):  # 16/32-bit greyscale: scale to 8 bits rather than clip
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")
