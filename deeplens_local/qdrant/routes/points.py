"""Points, payloads and payload indexes: every request goes to the collection's worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response

from deeplens_local.qdrant.routes.common import forward

router = APIRouter()

# (method, path under /collections/{collection_name}, worker operation)
ROUTES = [
    ("PUT", "/points", "upsert"),
    ("POST", "/points", "retrieve"),
    ("POST", "/points/delete", "delete"),
    ("POST", "/points/query", "query"),
    ("POST", "/points/query/batch", "query_batch"),
    ("POST", "/points/search", "search"),
    ("POST", "/points/search/batch", "search_batch"),
    ("POST", "/points/scroll", "scroll"),
    ("POST", "/points/count", "count"),
    ("POST", "/points/payload", "set_payload"),
    ("PUT", "/points/payload", "overwrite_payload"),
    ("POST", "/points/payload/delete", "delete_payload"),
    ("POST", "/points/payload/clear", "clear_payload"),
    ("PUT", "/points/vectors", "update_vectors"),
    ("POST", "/points/vectors/delete", "delete_vectors"),
    ("POST", "/points/batch", "batch_update"),
    ("PUT", "/index", "create_index"),
]


def _endpoint(op: str) -> Callable[[Request, str], Awaitable[Response]]:
    async def endpoint(request: Request, collection_name: str) -> Response:
        return await forward(request, collection_name, op)

    endpoint.__name__ = op
    return endpoint


for method, path, op in ROUTES:
    router.add_api_route(f"/collections/{{collection_name}}{path}", _endpoint(op), methods=[method])


@router.get("/collections/{collection_name}/points/{point_id}")
async def get_point(request: Request, collection_name: str, point_id: str) -> Response:
    return await forward(request, collection_name, "get_point", id=point_id)


@router.delete("/collections/{collection_name}/index/{field_name}")
async def delete_index(request: Request, collection_name: str, field_name: str) -> Response:
    return await forward(request, collection_name, "delete_index", field_name=field_name)
