"""Write operations of one collection (run inside its worker, so one at a time): each body
becomes one ``qdrant_edge.UpdateOperation`` (a batch, several), applied in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import qdrant_edge as qe

from deeplens_local.qdrant import convert
from deeplens_local.qdrant.errors import BadRequest, FormatError
from deeplens_local.qdrant.filters import to_filter
from deeplens_local.qdrant.ids import point_id, point_ids

if TYPE_CHECKING:
    from deeplens_local.qdrant.shard import Shard

Body = dict[str, Any]
Params = dict[str, str]

_UPDATE_MODES = {
    "upsert": qe.UpdateMode.Upsert,
    "insert_only": qe.UpdateMode.InsertOnly,
    "update_only": qe.UpdateMode.UpdateOnly,
}
_INDEX_PARAMS: dict[str, Any] = {
    "keyword": qe.KeywordIndexParams,
    "integer": qe.IntegerIndexParams,
    "float": qe.FloatIndexParams,
    "datetime": qe.DatetimeIndexParams,
    "uuid": qe.UuidIndexParams,
    "bool": qe.BoolIndexParams,
}
_INDEX_FLAGS = ("is_tenant", "on_disk", "lookup", "range", "is_principal", "enable_hnsw")


def _points(body: Body) -> list[qe.Point]:
    if (batch := body.get("batch")) is not None:
        ids = point_ids(batch.get("ids"))
        vectors = batch.get("vectors")
        if isinstance(vectors, dict):  # named: {name: [vector per point]}
            vectors = [{name: vs[i] for name, vs in vectors.items()} for i in range(len(ids))]
        payloads = batch.get("payloads") or [None] * len(ids)
        if not (len(ids) == len(vectors) == len(payloads)):
            raise BadRequest("batch: ids, vectors and payloads must have the same length")
        rows = zip(ids, vectors, payloads, strict=True)
        return [qe.Point(pid, convert.vector_struct(v), p) for pid, v, p in rows]
    points = body.get("points")
    if not isinstance(points, list):
        raise FormatError("expected `points` (a list) or `batch`")
    return [
        qe.Point(point_id(p["id"]), convert.vector_struct(p["vector"]), p.get("payload"))
        for p in points
    ]


def _upsert(body: Body) -> list[qe.UpdateOperation]:
    mode = body.get("update_mode")
    if mode is not None and mode not in _UPDATE_MODES:
        raise FormatError(f"unknown update_mode {mode!r}")
    return [
        qe.UpdateOperation.upsert_points(
            _points(body),
            condition=to_filter(body.get("update_filter")),
            update_mode=_UPDATE_MODES[mode] if mode else None,
        )
    ]


def _selected(
    body: Body,
    by_ids: Callable[..., qe.UpdateOperation],
    by_filter: Callable[..., qe.UpdateOperation],
    *args: Any,
) -> list[qe.UpdateOperation]:
    """Qdrant's points selector: ``{"points": [ids]}`` or ``{"filter": {...}}``."""
    if body.get("points") is not None:
        return [by_ids(point_ids(body["points"]), *args)]
    if body.get("filter") is not None:
        return [by_filter(to_filter(body["filter"]), *args)]
    raise FormatError("expected `points` or `filter`")


def _delete(body: Body) -> list[qe.UpdateOperation]:
    op = qe.UpdateOperation
    return _selected(body, op.delete_points, op.delete_points_by_filter)


def _set_payload(body: Body) -> list[qe.UpdateOperation]:
    op = qe.UpdateOperation
    args = (body["payload"], body.get("key"))
    return _selected(body, op.set_payload, op.set_payload_by_filter, *args)


def _overwrite_payload(body: Body) -> list[qe.UpdateOperation]:
    op = qe.UpdateOperation
    args = (body["payload"], body.get("key"))
    return _selected(body, op.overwrite_payload, op.overwrite_payload_by_filter, *args)


def _delete_payload(body: Body) -> list[qe.UpdateOperation]:
    op = qe.UpdateOperation
    return _selected(body, op.delete_payload, op.delete_payload_by_filter, list(body["keys"]))


def _clear_payload(body: Body) -> list[qe.UpdateOperation]:
    op = qe.UpdateOperation
    return _selected(body, op.clear_payload, op.clear_payload_by_filter)


def _update_vectors(body: Body) -> list[qe.UpdateOperation]:
    vectors = [
        qe.PointVectors(point_id(p["id"]), convert.vector_struct(p["vector"]))
        for p in body["points"]
    ]
    condition = to_filter(body.get("update_filter"))
    return [qe.UpdateOperation.update_vectors(vectors, condition=condition)]


def _delete_vectors(body: Body) -> list[qe.UpdateOperation]:
    op = qe.UpdateOperation
    names = list(body["vector"])
    return _selected(body, op.delete_vectors, op.delete_vectors_by_filter, names)


_BATCHABLE: dict[str, Callable[[Body], list[qe.UpdateOperation]]] = {
    "upsert": _upsert,
    "delete": _delete,
    "set_payload": _set_payload,
    "overwrite_payload": _overwrite_payload,
    "delete_payload": _delete_payload,
    "clear_payload": _clear_payload,
    "update_vectors": _update_vectors,
    "delete_vectors": _delete_vectors,
}


def _batch(body: Body) -> list[qe.UpdateOperation]:
    operations: list[qe.UpdateOperation] = []
    for item in body.get("operations") or []:
        if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in _BATCHABLE:
            raise FormatError(f"unsupported batch operation {item!r}")
        kind, spec = next(iter(item.items()))
        operations += _BATCHABLE[kind](spec)
    return operations


def _create_index(body: Body) -> list[qe.UpdateOperation]:
    schema = body.get("field_schema")
    kind = schema.get("type") if isinstance(schema, dict) else schema
    if kind not in convert.SCHEMAS:
        raise FormatError(f"unknown or missing field_schema {schema!r}")
    edge_schema: Any = convert.SCHEMAS[kind]
    if isinstance(schema, dict) and kind in _INDEX_PARAMS:
        flags = {k: schema[k] for k in _INDEX_FLAGS if schema.get(k) is not None}
        edge_schema = _INDEX_PARAMS[kind](**flags)
    return [qe.UpdateOperation.create_field_index(str(body["field_name"]), edge_schema)]


def _update(build: Callable[[Body], list[qe.UpdateOperation]]) -> Callable[..., Any]:
    def run(c: Shard, params: Params, body: Body) -> dict[str, Any]:
        return c.apply(build(body))

    return run


def _batch_results(c: Shard, params: Params, body: Body) -> list[dict[str, Any]]:
    operations = _batch(body)
    return [c.apply([operation]) for operation in operations]


def _delete_index(c: Shard, params: Params, body: Body) -> dict[str, Any]:
    return c.apply([qe.UpdateOperation.delete_field_index(params["field_name"])])


OPS: dict[str, Callable[..., Any]] = {name: _update(build) for name, build in _BATCHABLE.items()}
OPS |= {
    "batch_update": _batch_results,
    "create_index": _update(_create_index),
    "delete_index": _delete_index,
}
