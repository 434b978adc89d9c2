"""Checks on what a client sends, done before anything is written.

An upload is read in chunks up to the size limit, identified by its magic bytes (the declared
content type and the file name never decide), then probed by `deeplens.model.imaging.probe`:
header decode, decompression-bomb guard, and a cheap check that the stream is complete (a
truncated JPEG fails it). Every rejection is an `HTTPException` with a detail a person can act on.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import HTTPException, status

from deeplens.model import imaging

MAX_METADATA_CHARS = 16 * 1024
MAX_UPLOADED_BY_CHARS = 256
MAX_FILE_NAME_CHARS = 255

ACCEPTED = "JPEG, PNG, WebP, GIF or BMP"
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sniff(head: bytes) -> str | None:
    """The MIME type named by the first bytes of a file, or None if they are no image's."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:2] == b"BM" and len(head) >= 14:
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    return None


def megabytes(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


def check_size(size: int, limit: int) -> None:
    """413 for a file of `size` bytes over `limit`."""
    if size > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, _too_large(limit))


def _too_large(limit: int) -> str:
    return (
        f"the file is larger than the {megabytes(limit)} limit; "
        "send a smaller or more compressed image"
    )


def inspect_image(data: bytes, max_pixels: int = imaging.DEFAULT_MAX_PIXELS) -> imaging.ImageInfo:
    """Identify and probe an image; raises 400, 413 or 415 with the reason."""
    if not data:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the file is empty (0 bytes)")
    sniffed = sniff(data[:16])
    if sniffed is None:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"the file is not an image: its content is not {ACCEPTED} "
            "(the file name and declared content type are not trusted)",
        )
    try:
        return imaging.probe(data, max_pixels=max_pixels)
    except imaging.EmptyImageError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"the file is empty: {exc}") from exc
    except imaging.UnsupportedImageError as exc:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"{sniffed} files are not accepted here; send {ACCEPTED} ({exc})",
        ) from exc
    except imaging.ImageTooLargeError as exc:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the image has too many pixels (a possible decompression bomb): {exc}; "
            "downscale it before uploading",
        ) from exc
    except imaging.ImageError as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"the image cannot be read, it is damaged or truncated: {exc}; upload the whole file",
        ) from exc


def parse_metadata(raw: str | None) -> dict[str, Any]:
    """The `metadata` form field: a JSON object (or nothing); 400 for anything else."""
    if raw is None or not raw.strip():
        return {}
    if len(raw) > MAX_METADATA_CHARS:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"metadata is {len(raw):,} characters; the limit is {MAX_METADATA_CHARS:,}",
        )
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f'metadata is not valid JSON ({exc}); send an object such as {{"sku": "A-1"}}',
        ) from exc
    if not isinstance(value, dict):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f'metadata must be a JSON object such as {{"sku": "A-1"}}, not {type(value).__name__}',
        )
    if "\\u0000" in json.dumps(value):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "metadata must not contain NUL characters")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def clean_text(value: str | None, field: str, limit: int) -> str | None:
    """A short free-text form field: control characters removed, at most `limit` characters."""
    if value is None:
        return None
    cleaned = _CONTROL.sub("", value).strip()
    if len(cleaned) > limit:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"{field} is {len(cleaned)} characters; the limit is {limit}",
        )
    return cleaned or None


def file_name(declared: str | None, content_type: str) -> str:
    """The client's file name without any path or control characters (a default if none)."""
    name = _CONTROL.sub("", (declared or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if not name or name in (".", ".."):
        name = "upload" + _EXTENSIONS.get(content_type, "")
    return name[-MAX_FILE_NAME_CHARS:]
