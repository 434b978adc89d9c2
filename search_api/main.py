"""The DeepLens search API: uploads, status, search, tenant administration."""

from __future__ import annotations

from fastapi import FastAPI

from deeplens.settings import Settings
from search_api import docs, errors, gate, limits
from search_api.lifespan import lifespan
from search_api.routes import (
    duplicates,
    health,
    images,
    library,
    processing,
    search,
    tenants,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="DeepLens",
        version="0.1.0",
        summary="Multi-tenant image similarity search.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from `search_api.docs`, with their assets
        redoc_url=None,
    )
    app.state.settings = settings  # None: `lifespan` reads the environment when the app starts
    app.add_middleware(limits.BodySizeLimit)
    app.add_middleware(gate.Gate)  # outermost: keys and rates before anything reads the body
    errors.install(app)
    docs.install(app)
    app.include_router(health.router)
    app.include_router(tenants.router)
    app.include_router(images.router)
    app.include_router(library.router)
    app.include_router(search.router)
    app.include_router(duplicates.router)
    app.include_router(processing.router)
    return app


app = create_app()
