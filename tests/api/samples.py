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
