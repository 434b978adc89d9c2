"""Collections: list, create, get info, exists, delete."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from deeplens_local.qdrant import jsonio
from deeplens_local.qdrant.routes.common import forward, json_body, ok, store_of

router = APIRouter()


@router.get("/collections")
async def list_collections(request: Request) -> Response:
    started = time.perf_counter()
    names = store_of(request).names()
    return ok({"collections": [{"name": name} for name in names]}, started)


@router.put("/collections/{collection_name}")
async def create_collection(request: Request, collection_name: str) -> Response:
    started = time.perf_counter()
    body = await json_body(request)
    return ok(await store_of(request).create(collection_name, body), started)


@router.get("/collections/{collection_name}")
async def get_collection(request: Request, collection_name: str) -> Response:
    """Collection info; while the worker builds an index, the last info, marked yellow (as
    Qdrant reports a collection whose optimizers are running), instead of waiting for it."""
    started = time.perf_counter()
    target = await store_of(request).resolve(collection_name)
    if target.optimizing and target.last_info is not None:
        return ok({**target.last_info, "status": "yellow"}, started)
    response = await forward(request, collection_name, "info")
    if response.status_code == 200:
        target.last_info = jsonio.loads(bytes(response.body))["result"]
    return response


@router.patch("/collections/{collection_name}")
async def update_collection(request: Request, collection_name: str) -> Response:
    """Optimizer and HNSW settings (and metadata); applied by the collection's worker."""
    return await forward(request, collection_name, "update_collection")


@router.get("/collections/{collection_name}/exists")
async def collection_exists(request: Request, collection_name: str) -> Response:
    started = time.perf_counter()
    return ok({"exists": store_of(request).exists(collection_name)}, started)


@router.delete("/collections/{collection_name}")
async def delete_collection(request: Request, collection_name: str) -> Response:
    started = time.perf_counter()
    return ok(await store_of(request).delete(collection_name), started)
