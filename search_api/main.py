"""The DeepLens search API: uploads, status, search, tenant administration."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from deeplens.settings import Settings
from search_api import errors, limits
from search_api.routes import health, images, processing, search, tenants
from search_api.services import Services


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not logging.getLogger().handlers:  # uvicorn configures only its own loggers
            logging.basicConfig(
                level=os.environ.get("DEEPLENS_LOG_LEVEL", "INFO"),
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            )
        services = Services.create(settings or Settings())
        limits.keep_parts_in_memory(services.settings.max_upload_bytes + limits.FORM_SLACK)
        app.state.services = services
        services.start()
        try:
            yield
        finally:
            services.close()

    app = FastAPI(
        title="DeepLens",
        version="0.1.0",
        summary="Multi-tenant image similarity search.",
        lifespan=lifespan,
    )
    app.add_middleware(limits.BodySizeLimit)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(tenants.router)
    app.include_router(images.router)
    app.include_router(search.router)
    app.include_router(processing.router)
    return app


app = create_app()
