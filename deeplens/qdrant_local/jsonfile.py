"""Small JSON files (collection meta, aliases) written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON so that a reader, or a restart after a crash, sees the old file
    or the new one, never a torn one: write a temporary file, fsync it, ``os.replace`` it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
