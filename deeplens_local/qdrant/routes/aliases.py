"""``POST /collections/aliases``, ``GET /aliases``, ``GET /collections/{name}/aliases``."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from deeplens_local.qdrant.routes.common import json_body, ok, store_of

router = APIRouter()


@router.post("/collections/aliases")
async def update_aliases(request: Request) -> Response:
    started = time.perf_counter()
    body = await json_body(request)
    result = await store_of(request).update_aliases(body.get("actions"))
    return ok(result, started)


@router.get("/aliases")
async def list_aliases(request: Request) -> Response:
    started = time.perf_counter()
    aliases = store_of(request).aliases.items()
    described = [{"alias_name": a, "collection_name": c} for a, c in aliases]
    return ok({"aliases": described}, started)


@router.get("/collections/{collection_name}/aliases")
async def collection_aliases(request: Request, collection_name: str) -> Response:
    """Like Qdrant: the aliases pointing at exactly this name (no resolution, no 404)."""
    started = time.perf_counter()
    names = store_of(request).aliases.of(collection_name)
    described = [{"alias_name": a, "collection_name": collection_name} for a in names]
    return ok({"aliases": described}, started)
