"""Read operations of one collection (run inside its worker): each takes the collection, the
query-string parameters and the parsed JSON body, and answers Qdrant's ``result``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import qdrant_edge as qe

from deeplens_local.qdrant import convert
from deeplens_local.qdrant.errors import BadRequest, FormatError, point_not_found
from deeplens_local.qdrant.filters import to_filter
from deeplens_local.qdrant.ids import id_json, point_id, point_ids

if TYPE_CHECKING:
    from deeplens_local.qdrant.shard import Shard

Body = dict[str, Any]
Params = dict[str, str]

_UNSUPPORTED_QUERY = ("prefetch", "lookup_from")


def retrieve(c: Shard, params: Params, body: Body) -> list[dict[str, Any]]:
    selector = convert.with_payload(body.get("with_payload"), default=True)
    vectors = convert.with_vector(body.get("with_vector"), default=False)
    records = c.shard.retrieve(point_ids(body.get("ids")), selector, vectors)
    return [convert.record_json(r, selector) for r in records]


def get_point(c: Shard, params: Params, body: Body) -> dict[str, Any]:
    raw = params["id"]
    pid = point_id(int(raw) if raw.isdigit() else raw)
    records = c.shard.retrieve([pid], True, True)
    if not records:
        raise point_not_found(raw)
    return convert.record_json(records[0], True)


def scroll(c: Shard, params: Params, body: Body) -> dict[str, Any]:
    if body.get("order_by") is not None:
        raise BadRequest("scroll with order_by is not supported by the local Qdrant server")
    selector = convert.with_payload(body.get("with_payload"), default=True)
    start = body.get("offset")
    records, next_offset = c.shard.scroll(
        qe.ScrollRequest(
            offset=point_id(start) if start is not None else None,
            limit=convert.limit(body.get("limit"), 10),
            filter=to_filter(body.get("filter")),
            with_payload=selector,
            with_vector=convert.with_vector(body.get("with_vector"), default=False),
        )
    )
    return {
        "points": [convert.record_json(r, selector) for r in records],
        "next_page_offset": id_json(next_offset) if next_offset is not None else None,
    }


def count(c: Shard, params: Params, body: Body) -> dict[str, int]:
    exact = bool(body.get("exact", True))
    request = qe.CountRequest(exact=exact, filter=to_filter(body.get("filter")))
    return {"count": c.shard.count(request)}


def _query_request(c: Shard, body: Body) -> tuple[qe.QueryRequest, Any]:
    """A universal-query body (``POST .../points/query``) as an edge request."""
    for key in _UNSUPPORTED_QUERY:
        if body.get(key):
            raise BadRequest(f"`{key}` is not supported by the local Qdrant server")
    using = body.get("using")
    query_filter = to_filter(body.get("filter"))
    query = body.get("query")
    if isinstance(query, dict):
        if set(query) != {"nearest"}:
            raise BadRequest(f"query {sorted(query)} is not supported by the local Qdrant server")
        query = query["nearest"]
    edge_query = None
    if query is not None:
        if isinstance(query, (int, str)):
            # By a stored point: its vector, and the point itself left out, as Qdrant does.
            pid = point_id(query)
            query = c.vector_of(pid, using)
            exclude = qe.HasIdCondition({pid})
            must: list[Any] | None = [query_filter] if query_filter is not None else None
            query_filter = qe.Filter(must=must, must_not=[exclude])
        edge_query = qe.Query.Nearest(convert.dense(query), using=using)
    selector = convert.with_payload(body.get("with_payload"), default=False)
    request = qe.QueryRequest(
        limit=convert.limit(body.get("limit"), 10),
        offset=convert.offset(body.get("offset")),
        query=edge_query,
        filter=query_filter,
        score_threshold=body.get("score_threshold"),
        params=convert.search_params(body.get("params")),
        with_vector=convert.with_vector(body.get("with_vector"), default=False),
        with_payload=selector,
    )
    return request, selector


def query(c: Shard, params: Params, body: Body) -> dict[str, Any]:
    request, selector = _query_request(c, body)
    return {"points": [convert.scored_json(p, selector) for p in c.shard.query(request)]}


def query_batch(c: Shard, params: Params, body: Body) -> list[dict[str, Any]]:
    searches = body.get("searches")
    if not isinstance(searches, list):
        raise FormatError("missing field `searches`")
    requests = [_query_request(c, search) for search in searches]
    results = c.shard.query_batch(qe.QueryBatchRequest([r for r, _ in requests]))
    return [
        {"points": [convert.scored_json(p, selector) for p in points]}
        for (_, selector), points in zip(requests, results, strict=True)
    ]


def _search(c: Shard, body: Body) -> list[dict[str, Any]]:
    vector = body.get("vector")
    using = None
    if isinstance(vector, dict):
        using, vector = vector.get("name"), vector.get("vector")
    selector = convert.with_payload(body.get("with_payload"), default=False)
    request = qe.SearchRequest(
        query=qe.Query.Nearest(convert.dense(vector), using=using),
        limit=convert.limit(body.get("limit"), 10),
        offset=convert.offset(body.get("offset")),
        filter=to_filter(body.get("filter")),
        params=convert.search_params(body.get("params")),
        with_vector=convert.with_vector(body.get("with_vector"), default=False),
        with_payload=selector,
        score_threshold=body.get("score_threshold"),
    )
    return [convert.scored_json(p, selector) for p in c.shard.search(request)]


def search(c: Shard, params: Params, body: Body) -> list[dict[str, Any]]:
    return _search(c, body)


def search_batch(c: Shard, params: Params, body: Body) -> list[list[dict[str, Any]]]:
    searches = body.get("searches")
    if not isinstance(searches, list):
        raise FormatError("missing field `searches`")
    return [_search(c, search) for search in searches]


def info(c: Shard, params: Params, body: Body) -> dict[str, Any]:
    return c.info()
