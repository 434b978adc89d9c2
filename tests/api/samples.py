"""Crafted request bodies: valid images and each kind of bad input an upload must refuse."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from deeplens_local import synthetic


def jpeg(seed: int = 1, width: int = 320, height: int = 240) -> bytes:
    return synthetic.photo_bytes(seed, width, height)


def png(seed: int = 1, width: int = 64, height: int = 48) -> bytes:
    return synthetic.photo_bytes(seed, width, height, fmt="PNG")


def webp(width: int = 40, height: int = 30) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, format="WEBP")
    return out.getvalue()


def truncated_jpeg(seed: int = 2) -> bytes:
    """A JPEG cut off in the middle of its scan data: its header alone still looks fine."""
    data = jpeg(seed)
    return data[: len(data) * 2 // 3]


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def bomb_png(side: int = 100_000) -> bytes:
    """A valid PNG header claiming side x side pixels, whose pixels were never sent."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")


def tiff(width: int = 20, height: int = 10) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, format="TIFF")
    return out.getvalue()


TEXT = b"this is plain text, not a picture\n" * 20


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# Metadata an upload must refuse with 400, writing nothing: case -> (the field's bytes, words
# the detail must hold).
BAD_METADATA: dict[str, tuple[bytes, str]] = {
    "number-beyond-double": (b'{"a": 1e400}', "beyond what a double holds"),
    "nan": (b'{"a": NaN}', "NaN, which is not JSON"),
    "infinity": (b'{"a": -Infinity}', "-Infinity, which is not JSON"),
    "integer-beyond-64-bits": (b'{"a": 123456789012345678901234567890}', "outside 64 bits"),
    "lone-surrogate": (b'{"a": "x\\ud800y"}', "lone surrogate (\\ud800)"),
    "lone-surrogate-key": (b'{"\\udfff": 1}', "lone surrogate (\\udfff)"),
    "nul": (b'{"a": "x\\u0000y"}', "NUL character"),
    "nul-in-key": (b'{"a\\u0000": 1}', "NUL character"),
    # Deep, yet within the size limit: json.loads alone would raise RecursionError.
    "deep-nesting": (b'{"a": ' + nested_arrays(5_000) + b"}", "more than 32 levels deep"),
    "very-deep-nesting": (nested_arrays(100_000), "the limit is 16,384"),
    "too-large": (b'{"a": "' + b"y" * 20_000 + b'"}', "the limit is 16,384"),
    "invalid-utf8": (b'{"a": "caf\xe9"}', "not valid UTF-8 (byte 0xe9"),
    "duplicate-key": (b'{"a": 1, "a": 2}', "key 'a' twice"),
    "not-json": (b"{sku: A-1}", "not valid JSON"),
    "array": (b"[1, 2]", "must be a JSON object"),
    "string": (b'"sku"', "must be a JSON object"),
    "null": (b"null", "must be a JSON object"),
}
