"""JSON in and out: ``orjson`` when it is installed (several times faster on the big float
arrays of upserts and queries), the standard library otherwise; and small files written
atomically (collection meta, aliases)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None


def loads(data: bytes) -> Any:
    return orjson.loads(data) if orjson is not None else json.loads(data)


def dumps(value: Any) -> bytes:
    if orjson is not None:
        return bytes(orjson.dumps(value))
    return json.dumps(value, separators=(",", ":")).encode()


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON so that a reader, or a restart after a crash, sees the old file
    or the new one, never a torn one: write a temporary file, fsync it, ``os.replace`` it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
