"""The image filter that search, similar and the listing share: a JSON object mapping a field to
a value (equality), a list (any of), or a range ``{"gte"|"gt"|"lte"|"lt": ...}``, all combined
with *and*.

Fields: ``uploadedBy``, ``contentType``, ``uploadedAt`` (ISO 8601), ``width``, ``height`` and
``metadata.<key>`` (the upload's metadata, flat keys; values compared as given: strings,
numbers, booleans). The listing also takes ``status``. A filter is parsed once into `Condition`s
and rendered as a Qdrant filter (search) or SQL (listing); an unknown field or a malformed value
is a `FilterError` with a message a person can act on, never silently ignored; so is JSON text
that `deeplens.jsontext` refuses (non-finite numbers, NUL, lone surrogates, deep nesting).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from qdrant_client import models as qm

from deeplens import jsontext

MAX_FILTER_BYTES = 64 * 1024
MAX_CONDITIONS = 16
MAX_VALUES = 100
RANGE_OPS = ("gt", "gte", "lt", "lte")
METADATA_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

Kind = Literal["keyword", "integer", "datetime", "any", "status"]
# Filterable field -> (kind, payload key, catalog column).
FIELDS: dict[str, tuple[Kind, str, str]] = {
    "uploadedBy": ("keyword", "uploadedBy", "uploaded_by"),
    "contentType": ("keyword", "contentType", "content_type"),
    "uploadedAt": ("datetime", "uploadedAt", "uploaded_at"),
    "width": ("integer", "width", "width"),
    "height": ("integer", "height", "height"),
    "status": ("status", "", "status"),
}
Scalar = str | int | float | bool


class FilterError(ValueError):
    """The filter can't be used; the message says why and how to fix it."""


@dataclass(frozen=True)
class Condition:
    field: str
    kind: Kind
    payload_key: str
    column: str | None  # None: a metadata key (jsonb), the key is in `payload_key`
    equals: tuple[Scalar, ...] = ()  # one value, or any of several
    bounds: tuple[tuple[str, Scalar], ...] = ()


def parse(raw: str | dict[str, Any] | None, allow_status: bool = False) -> list[Condition]:
    """The conditions of a filter given as JSON text or an object (None or empty: none)."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        try:
            raw = jsontext.loads(raw, "filter", MAX_FILTER_BYTES)
        except jsontext.JSONTextError as exc:
            raise FilterError(str(exc)) from exc
    if not isinstance(raw, dict):
        raise FilterError('filter must be a JSON object, e.g. {"uploadedBy": "alice"}')
    if len(raw) > MAX_CONDITIONS:
        raise FilterError(f"filter has {len(raw)} fields; at most {MAX_CONDITIONS}")
    return [_condition(name, value, allow_status) for name, value in raw.items()]


def _condition(name: str, value: Any, allow_status: bool) -> Condition:
    if name.startswith("metadata."):
        key = name[len("metadata.") :]
        if not METADATA_KEY.fullmatch(key):
            raise FilterError(
                f"filter field {name!r}: metadata keys are 1-64 letters, digits, '_' or '-'"
            )
        kind: Kind = "any"
        payload_key, column = f"metadata.{key}", None
    elif name in FIELDS and (name != "status" or allow_status):
        kind, payload_key, col = FIELDS[name]
        column = col
    else:
        known = [f for f in FIELDS if f != "status" or allow_status]
        raise FilterError(
            f"unknown filter field {name!r}; use one of {', '.join(known)} or metadata.<key>"
        )
    if isinstance(value, dict):
        return Condition(name, kind, payload_key, column, bounds=_bounds(name, kind, value))
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > MAX_VALUES:
        raise FilterError(f"filter field {name!r}: give 1 to {MAX_VALUES} values")
    if kind == "datetime":
        raise FilterError(
            f"filter field {name!r}: compare upload times with a range, "
            '{"gte": "2026-01-01T00:00:00Z", "lt": ...}'
        )
    equals = tuple(_scalar(name, kind, v) for v in values)
    for v in equals:
        if isinstance(v, float):
            raise FilterError(
                f"filter field {name!r}: {v} is not a whole number; match decimals with a range"
            )
    if (len(equals) > 1 and len({type(v) for v in equals}) > 1) or any(
        isinstance(v, bool) for v in equals[1:]
    ):
        raise FilterError(f"filter field {name!r}: a list holds strings only or whole numbers only")
    return Condition(name, kind, payload_key, column, equals=equals)


def _bounds(name: str, kind: Kind, spec: dict[str, Any]) -> tuple[tuple[str, Scalar], ...]:
    unknown = set(spec) - set(RANGE_OPS)
    if unknown or not spec:
        raise FilterError(
            f"filter field {name!r}: a range takes gt, gte, lt and/or lte, not {sorted(unknown)}"
        )
    if kind in ("keyword", "status"):
        raise FilterError(f"filter field {name!r} takes a value or a list, not a range")
    out = []
    for op in RANGE_OPS:
        if op in spec:
            value = _scalar(name, kind, spec[op])
            if kind != "datetime" and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise FilterError(f"filter field {name!r}: {op} must be a number")
            out.append((op, value))
    return tuple(out)


def _scalar(name: str, kind: Kind, value: Any) -> Scalar:
    if kind == "datetime":
        if not isinstance(value, str):
            raise FilterError(f"filter field {name!r}: give an ISO 8601 date-time string")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise FilterError(f"filter field {name!r}: {value!r} is not ISO 8601") from exc
        if parsed.tzinfo is None:
            raise FilterError(f"filter field {name!r}: {value!r} needs a time zone (e.g. Z)")
        return parsed.isoformat()
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FilterError(f"filter field {name!r}: give a number, not {value!r}")
        return value
    if kind in ("keyword", "status"):
        if not isinstance(value, str):
            raise FilterError(f"filter field {name!r}: give a string, not {value!r}")
        return value
    if not isinstance(value, str | int | float | bool):
        raise FilterError(f"filter field {name!r}: give a string, number or boolean")
    return value


def to_qdrant(conditions: list[Condition]) -> list[qm.FieldCondition]:
    """The conditions as Qdrant field conditions (for a filter's `must`)."""
    out = []
    for c in conditions:
        if c.bounds:
            bounds = dict(c.bounds)
            if c.kind == "datetime":
                out.append(qm.FieldCondition(key=c.payload_key, range=qm.DatetimeRange(**bounds)))
            else:
                out.append(qm.FieldCondition(key=c.payload_key, range=qm.Range(**bounds)))
            continue
        values = list(c.equals)
        if len(values) == 1:
            out.append(qm.FieldCondition(key=c.payload_key, match=qm.MatchValue(value=values[0])))
        else:
            out.append(qm.FieldCondition(key=c.payload_key, match=qm.MatchAny(any=values)))
    return out


def to_sql(conditions: list[Condition]) -> tuple[str, list[Any]]:
    """The conditions as an SQL boolean over ``deeplens.images`` (with its parameters)."""
    parts: list[str] = []
    params: list[Any] = []
    for c in conditions:
        if c.column is None:  # metadata.<key>: compare the jsonb value
            key = c.payload_key[len("metadata.") :]
            if c.bounds:
                for op, value in c.bounds:
                    number = "jsonb_typeof(metadata -> %s) = 'number'"
                    parts.append(f"({number} AND (metadata ->> %s)::numeric {_SQL_OPS[op]} %s)")
                    params += [key, key, value]
            else:
                parts.append("metadata -> %s = ANY(%s::jsonb[])")
                params += [key, [json.dumps(v) for v in c.equals]]
            continue
        if c.bounds:
            for op, value in c.bounds:
                parts.append(f"{c.column} {_SQL_OPS[op]} %s")
                params.append(value)
        else:
            parts.append(f"{c.column} = ANY(%s)")
            params.append(list(c.equals))
    return (" AND ".join(parts) or "true"), params


_SQL_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
