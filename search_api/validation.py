"""Checks on what a client sends, done before anything is written.

An upload is read in chunks up to the size limit, identified by its magic bytes (the declared
content type and the file name never decide), then probed by `deeplens.model.imaging.probe`:
header decode, decompression-bomb guard, and a cheap check that the stream is complete (a
truncated JPEG fails it). Metadata must be JSON that the stores keep as sent (`deeplens.jsontext`);
a file name and short text fields are kept only as they can be shown safely (`shown_safely`).
Every rejection is an `HTTPException` with a detail a person can act on.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from fastapi import HTTPException, status

from deeplens import jsontext
from deeplens.model import imaging

MAX_METADATA_BYTES = 16 * 1024
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
# Bidirectional classes of the embedding, override and isolate controls (U+202A-U+202E,
# U+2066-U+2069), and the marks whose class is that of a letter (ALM, LRM, RLM).
_BIDI_FORMATTING = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}
_BIDI_MARKS = {"\u061c", "\u200e", "\u200f"}


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


def parse_metadata(raw: str | bytes | None) -> dict[str, Any]:
    """The `metadata` form field: a JSON object (or nothing); 400 for anything else.

    It must be UTF-8, at most `MAX_METADATA_BYTES`, and JSON that PostgreSQL and Qdrant store
    as sent (`deeplens.jsontext`: finite numbers, no NUL or lone surrogate, at most
    `jsontext.MAX_DEPTH` levels deep, no key twice).
    """
    if raw is None or not raw.strip():
        return {}
    try:
        value = jsontext.loads(raw, "metadata", MAX_METADATA_BYTES)
    except jsontext.JSONTextError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    if not isinstance(value, dict):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f'metadata must be a JSON object such as {{"sku": "A-1"}}, not {_json_kind(value)}',
        )
    return value


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


def clean_text(raw: str | bytes | None, field: str, limit: int) -> str | None:
    """A short free-text form field (UTF-8): shown safely (`shown_safely`), at most `limit`
    characters; 400 otherwise."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"{field} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
                f"{exc.start}); send it as UTF-8 text",
            ) from exc
    cleaned = shown_safely(raw).strip()
    if len(cleaned) > limit:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"{field} is {len(cleaned)} characters; the limit is {limit}",
        )
    return cleaned or None


def file_name(declared: str | None, content_type: str) -> str:
    """The client's file name, kept and shown as the image's name: its last path segment,
    shown safely (`shown_safely`), at most `MAX_FILE_NAME_CHARS` (its end, so the extension
    stays); ``upload.<ext>`` when nothing is left."""
    name = shown_safely((declared or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if not name or name in (".", ".."):
        name = "upload" + _EXTENSIONS.get(content_type, "")
    return name[-MAX_FILE_NAME_CHARS:]


def shown_safely(text: str) -> str:
    """`text` in NFC without what would change how it or the text around it is shown: control
    characters (NUL, line breaks, escapes), the line and paragraph separators U+2028 and U+2029,
    and bidirectional formatting (U+202E, which shows "gpj.exe" as "exe.jpg", and the rest)."""
    text = unicodedata.normalize("NFC", text)
    if text.isprintable():  # the common case: nothing to remove
        return text
    return "".join(char for char in text if not _hidden(char))


def _hidden(char: str) -> bool:
    category = unicodedata.category(char)
    if category in ("Cc", "Cs", "Zl", "Zp"):
        return True
    return category == "Cf" and (
        unicodedata.bidirectional(char) in _BIDI_FORMATTING or char in _BIDI_MARKS
    )
