"""Point ids: unsigned integers or UUIDs (any of Python's UUID spellings in, hyphenated out)."""

from __future__ import annotations

import uuid
from typing import Any

from deeplens_local.qdrant.errors import FormatError


def point_id(value: Any) -> int | str:
    """An id from a request, as edge takes it; a bad one is Qdrant's format error."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise FormatError(
        f"value {value} is not a valid point ID, "
        "valid values are either an unsigned integer or a UUID"
    )


def point_ids(values: Any) -> list[int | uuid.UUID | str]:
    if not isinstance(values, list):
        raise FormatError(f"expected a list of point ids, got {values!r}")
    return [point_id(v) for v in values]


def id_json(value: Any) -> int | str:
    """An id from edge (int or ``uuid.UUID``) as it appears in Qdrant's JSON."""
    return value if isinstance(value, int) else str(value)
