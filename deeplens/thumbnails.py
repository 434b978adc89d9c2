"""Thumbnails: JPEGs whose longer side is at most one of `SIZES`, made from the original on
first request and kept beside it in the blob store."""

from __future__ import annotations

import io

from PIL import Image as PILImage

from deeplens.blobs import BlobStore
from deeplens.catalog.images import Image
from deeplens.model import imaging

SIZES = (64, 128, 256, 512, 1024)
QUALITY = 85


class ThumbnailSizeError(ValueError):
    pass


def key(image: Image, size: int) -> str:
    return f"{image.tenant_id}/thumbs/{size}/{image.sha256}.jpg"


def check_size(size: int) -> int:
    if size not in SIZES:
        raise ThumbnailSizeError(
            f"thumbnail size {size} is not offered; use one of {', '.join(map(str, SIZES))}"
        )
    return size


def thumbnail(blobs: BlobStore, image: Image, size: int, max_decode_bytes: int) -> bytes:
    """The image's thumbnail of `size` (made now if it was never asked for). Raises
    `ImageError` if the original can't be decoded within `max_decode_bytes`."""
    check_size(size)
    stored = key(image, size)
    try:
        return blobs.get(stored)
    except FileNotFoundError:
        pass
    picture = imaging.decode(blobs.get(image.blob_key), min_side=size, max_bytes=max_decode_bytes)
    picture.thumbnail((size, size), PILImage.Resampling.BICUBIC)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=QUALITY, optimize=True)
    data = out.getvalue()
    blobs.put_at(stored, data)
    return data


def delete_all(blobs: BlobStore, image: Image) -> None:
    for size in SIZES:
        blobs.delete(key(image, size))
