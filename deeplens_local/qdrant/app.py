"""The FastAPI application: Qdrant's REST API over the collections of one data directory."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from deeplens_local.qdrant.errors import NotFound, QdrantError, error_body
from deeplens_local.qdrant.routes import aliases, collections, points, service
from deeplens_local.qdrant.store import DEFAULT_OPTIMIZE_DELAY, Store

# Answered without a key, as a Qdrant server with an API key answers them.
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


class RequireApiKey:
    """Qdrant's API-key check: the key in the ``api-key`` header or as a bearer token; 401
    otherwise, with Qdrant's message."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        error = QdrantError("Must provide an API key or an Authorization bearer token")
        body = error_body(error, time.perf_counter())
        response = Response(body, status_code=401, media_type="application/json")
        await response(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"api-key" and hmac.compare_digest(value, self.api_key):
                return True
            if name == b"authorization" and hmac.compare_digest(value, b"Bearer " + self.api_key):
                return True
        return False


def create_app(
    data_dir: Path,
    optimize_delay: float = DEFAULT_OPTIMIZE_DELAY,
    api_key: str | None = None,
) -> FastAPI:
    """The server for ``data_dir``; collections open at startup and close cleanly at shutdown.

    ``optimize_delay``: seconds without writes to a collection before its optimizer (HNSW
    indexing, segment merging) runs. ``api_key``: when set, every request but the health probes
    must carry it, as with a Qdrant server configured with one.
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
    if api_key:
        app.add_middleware(RequireApiKey, api_key=api_key)
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
