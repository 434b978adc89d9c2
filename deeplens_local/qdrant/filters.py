"""Qdrant's JSON filters (``must`` / ``should`` / ``must_not`` / ``min_should``) as edge objects.

The filter is evaluated by the edge engine (with its payload indexes), never in Python.
"""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe

from deeplens_local.qdrant.errors import FormatError
from deeplens_local.qdrant.ids import point_id


def to_filter(body: Any) -> qe.Filter | None:
    """``{"must": ..., "should": ..., "must_not": ..., "min_should": ...}`` or ``None``."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise FormatError(f"filter must be an object, got {body!r}")
    unknown = set(body) - {"must", "should", "must_not", "min_should"}
    if unknown:
        raise FormatError(f"unknown filter field(s): {sorted(unknown)}")
    min_should = None
    if (spec := body.get("min_should")) is not None:
        min_should = qe.MinShould(_conditions(spec["conditions"]) or [], int(spec["min_count"]))
    return qe.Filter(
        must=_conditions(body.get("must")),
        should=_conditions(body.get("should")),
        must_not=_conditions(body.get("must_not")),
        min_should=min_should,
    )


def _conditions(value: Any) -> list[Any] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [_condition(item) for item in items]


def _condition(cond: Any) -> Any:
    if not isinstance(cond, dict):
        raise FormatError(f"condition must be an object, got {cond!r}")
    if "key" in cond:
        return _field_condition(cond)
    if "has_id" in cond:
        return qe.HasIdCondition({point_id(v) for v in cond["has_id"]})
    if "is_empty" in cond:
        return qe.IsEmptyCondition(cond["is_empty"]["key"])
    if "is_null" in cond:
        return qe.IsNullCondition(cond["is_null"]["key"])
    if "has_vector" in cond:
        return qe.HasVectorCondition(cond["has_vector"])
    if "nested" in cond:
        nested = cond["nested"]
        return qe.NestedCondition(nested["key"], to_filter(nested["filter"]) or qe.Filter())
    if set(cond) <= {"must", "should", "must_not", "min_should"}:
        return to_filter(cond)
    raise FormatError(f"unsupported condition {cond!r}")


def _field_condition(cond: dict[str, Any]) -> qe.FieldCondition:
    key = cond["key"]
    geo = _geo(cond)
    values_count = None
    if (count := cond.get("values_count")) is not None:
        values_count = qe.ValuesCount(**_bounds(count))
    return qe.FieldCondition(
        key=key,
        match=_match(cond.get("match")),
        range=_range(cond.get("range")),
        values_count=values_count,
        is_empty=cond.get("is_empty"),
        is_null=cond.get("is_null"),
        **geo,
    )


_MATCHES: dict[str, Any] = {
    "value": qe.MatchValue,
    "any": qe.MatchAny,
    "except": qe.MatchExcept,
    "text": qe.MatchText,
    "text_any": qe.MatchTextAny,
    "phrase": qe.MatchPhrase,
    "prefix": qe.MatchPrefix,
    "substring": qe.MatchSubstring,
}


def _match(match: Any) -> Any:
    if match is None:
        return None
    if not isinstance(match, dict) or len(match) != 1 or next(iter(match)) not in _MATCHES:
        raise FormatError(f"unsupported match {match!r}")
    kind, value = next(iter(match.items()))
    return _MATCHES[kind](value)


def _bounds(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in ("gt", "gte", "lt", "lte") if spec.get(k) is not None}


def _range(spec: Any) -> qe.RangeFloat | qe.RangeDateTime | None:
    if spec is None:
        return None
    bounds = _bounds(spec)
    if any(isinstance(v, str) for v in bounds.values()):
        return qe.RangeDateTime(**bounds)
    return qe.RangeFloat(**{k: float(v) for k, v in bounds.items()})


def _geo_point(spec: dict[str, Any]) -> qe.GeoPoint:
    return qe.GeoPoint(lon=float(spec["lon"]), lat=float(spec["lat"]))


def _geo(cond: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if (box := cond.get("geo_bounding_box")) is not None:
        out["geo_bounding_box"] = qe.GeoBoundingBox(
            _geo_point(box["top_left"]), _geo_point(box["bottom_right"])
        )
    if (radius := cond.get("geo_radius")) is not None:
        out["geo_radius"] = qe.GeoRadius(_geo_point(radius["center"]), float(radius["radius"]))
    if (polygon := cond.get("geo_polygon")) is not None:
        rings = polygon.get("interiors") or []
        interiors = [[_geo_point(p) for p in ring["points"]] for ring in rings]
        out["geo_polygon"] = qe.GeoPolygon(
            [_geo_point(p) for p in polygon["exterior"]["points"]], interiors or None
        )
    return out
