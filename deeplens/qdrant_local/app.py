"""The FastAPI application: Qdrant's REST API over the collections of one data directory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException

from deeplens.qdrant_local.errors import NotFound, QdrantError, error_body
from deeplens.qdrant_local.routes import aliases, collections, points, service
from deeplens.qdrant_local.store import DEFAULT_OPTIMIZE_DELAY, Store


def create_app(data_dir: Path, optimize_delay: float = DEFAULT_OPTIMIZE_DELAY) -> FastAPI:
    """The server for ``data_dir``; collections open at startup and close cleanly at shutdown.

    ``optimize_delay``: seconds without writes to a collection before its optimizer (HNSW
    indexing, segment merging) runs.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(data_dir, optimize_delay)
        await store.start()
        app.state.store = store
        try:
            yield
        finally:
            await store.close()

    app = FastAPI(
        title="DeepLens local Qdrant",
        description="The subset of Qdrant's REST API that DeepLens uses, over qdrant-edge.",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(service.router)
    app.include_router(aliases.router)
    app.include_router(collections.router)
    app.include_router(points.router)

    @app.exception_handler(QdrantError)
    async def qdrant_error(request: Request, exc: QdrantError) -> Response:
        body = error_body(exc, time.perf_counter())
        return Response(body, status_code=exc.status, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        error = NotFound(request.url.path) if exc.status_code == 404 else QdrantError(exc.detail)
        error.status = exc.status_code
        body = error_body(error, time.perf_counter())
        return Response(body, status_code=exc.status_code, media_type="application/json")

    return app
