"""``/``, ``/healthz``, ``/livez``, ``/readyz``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

router = APIRouter()

# qdrant-client checks on connect that the server's major version equals its own and the minor
# differs by at most one; this server follows the REST API of Qdrant 1.x as qdrant-client 1.20
# speaks it.
QDRANT_VERSION = "1.20.0"


@router.get("/")
async def root() -> JSONResponse:
    return JSONResponse(
        {"title": "qdrant - vector search engine", "version": QDRANT_VERSION, "commit": None}
    )


@router.get("/healthz")
@router.get("/livez")
async def healthz() -> PlainTextResponse:
    return PlainTextResponse("healthz check passed")


@router.get("/readyz")
async def readyz() -> PlainTextResponse:
    return PlainTextResponse("all shards are ready")
