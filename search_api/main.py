"""The DeepLens search API: uploads, status, search, tenant administration."""

from __future__ import annotations

from fastapi import FastAPI

from deeplens.settings import Settings
from search_api import docs, errors, gate, limits, metrics, page
from search_api.lifespan import lifespan
from search_api.routes import (
    duplicates,
    health,
    images,
    library,
    models,
    processing,
    search,
    tenants,
)
from search_api.routes import metrics as metrics_route

# Probes and scrapes: no spans.
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="DeepLens",
        version="0.1.0",
        summary="Multi-tenant image similarity search.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from `search_api.docs`, with their assets
        redoc_url=None,
        # FastAPI's own OpenTelemetry spans, one per request, named by route template and
        # continuing the caller's traceparent; it makes them once `deeplens.tracing` installed
        # a tracer provider, and costs nothing otherwise. Metrics are Prometheus's (/metrics).
        telemetry={
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "exclude": lambda scope: scope.get("path") in UNTRACED,
        },
    )
    app.state.settings = settings  # None: `lifespan` reads the environment when the app starts
    app.add_middleware(limits.BodySizeLimit)
    app.add_middleware(gate.Gate)  # keys and rates before anything reads the body
    app.add_middleware(metrics.HttpMetrics)  # outermost: counts every answer, refusals too
    errors.install(app)
    docs.install(app)
    page.install(app)  # the search page at /app/
    app.include_router(health.router)
    app.include_router(tenants.router)
    app.include_router(models.router)
    app.include_router(images.router)
    app.include_router(library.router)
    app.include_router(search.router)
    app.include_router(duplicates.router)
    app.include_router(processing.router)
    app.include_router(metrics_route.router)
    return app


app = create_app()
