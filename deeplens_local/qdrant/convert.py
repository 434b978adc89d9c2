"""Request fields to edge objects, and edge results to Qdrant's JSON shapes."""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe

from deeplens_local.qdrant.errors import BadRequest, FormatError, ValidationError
from deeplens_local.qdrant.ids import id_json

Selector = bool | list[str] | qe.PayloadSelector

# Payload index types by their name in Qdrant's JSON (edge enums are not Python enums).
SCHEMAS = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "geo": qe.PayloadSchemaType.Geo,
    "text": qe.PayloadSchemaType.Text,
    "bool": qe.PayloadSchemaType.Bool,
    "datetime": qe.PayloadSchemaType.Datetime,
    "uuid": qe.PayloadSchemaType.Uuid,
}


def schema_name(schema: qe.PayloadSchemaType) -> str:
    return next(name for name, value in SCHEMAS.items() if value == schema)


def with_payload(value: Any, default: bool) -> Selector:
    """``true`` / ``false`` / ``["a"]`` / ``{"include": [...]}`` / ``{"exclude": [...]}``."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, list):
        return [str(key) for key in value]
    if isinstance(value, dict) and len(value) == 1:
        kind, keys = next(iter(value.items()))
        keys = keys if isinstance(keys, list) else [keys]
        if kind == "include":
            return qe.PayloadSelector.Include(keys)
        if kind == "exclude":
            return qe.PayloadSelector.Exclude(keys)
    raise FormatError(f"invalid with_payload {value!r}")


def with_vector(value: Any, default: bool) -> bool | list[str]:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return value
    raise FormatError(f"invalid with_vector {value!r}")


def search_params(value: Any) -> qe.SearchParams | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FormatError(f"invalid params {value!r}")
    quantization = None
    if (q := value.get("quantization")) is not None:
        quantization = qe.QuantizationSearchParams(
            ignore=bool(q.get("ignore", False)),
            rescore=q.get("rescore"),
            oversampling=q.get("oversampling"),
        )
    acorn = None
    if (a := value.get("acorn")) is not None:
        acorn = qe.AcornSearchParams(
            enable=bool(a.get("enable", False)), max_selectivity=a.get("max_selectivity")
        )
    return qe.SearchParams(
        hnsw_ef=value.get("hnsw_ef"),
        exact=bool(value.get("exact", False)),
        quantization=quantization,
        indexed_only=bool(value.get("indexed_only", False)),
        acorn=acorn,
    )


def limit(value: Any, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"invalid limit {value!r}")
    if value < 1:
        raise ValidationError(f"limit: value {value} invalid, must be 1 or larger")
    return value


def offset(value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(f"invalid offset {value!r}")
    return value


def dense(value: Any) -> list[float]:
    """A dense vector; anything else (sparse, multi) is not supported by this server."""
    if isinstance(value, list) and all(isinstance(x, (int, float)) for x in value):
        return value
    raise BadRequest("only dense vectors (lists of numbers) are supported by the local server")


def vector_struct(value: Any) -> Any:
    """A point's vector: a list (the default vector) or ``{name: list}`` (named vectors)."""
    if isinstance(value, dict):
        return {str(name): dense(v) for name, v in value.items()}
    return dense(value)


def _payload(payload: Any, selector: Any) -> Any:
    if selector is False:
        return None
    return payload if payload is not None else {}


def record_json(record: Any, payload_selector: Any) -> dict[str, Any]:
    return {
        "id": id_json(record.id),
        "payload": _payload(record.payload, payload_selector),
        "vector": record.vector or None,
    }


def scored_json(point: Any, payload_selector: Any) -> dict[str, Any]:
    return {
        "id": id_json(point.id),
        "version": point.version,
        "score": point.score,
        "payload": _payload(point.payload, payload_selector),
        "vector": point.vector or None,
    }
