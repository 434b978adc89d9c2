"""Liveness and readiness: ``/readyz`` reaches every dependency over its real protocol."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from search_api.deps import ServicesDep
from search_api.services import Services

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _checks(services: Services) -> dict[str, Callable[[], Any]]:
    def postgres() -> None:
        with services.db.connection(timeout=3) as conn:
            conn.execute("SELECT 1")

    def kafka() -> None:
        services.kafka_admin.list_topics(timeout=3)

    return {
        "postgres": postgres,
        "kafka": kafka,
        "qdrant": services.qdrant.get_collections,
        "redis": services.redis.ping,
    }


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
    """Each dependency, reachable or not, with how long it took to answer."""
    results: dict[str, dict[str, Any]] = {}
    for name, check in _checks(services).items():
        started = time.perf_counter()
        try:
            check()
            results[name] = {"reachable": True}
        except Exception as exc:  # a readiness probe reports every failure, it never raises
            results[name] = {"reachable": False, "error": f"{type(exc).__name__}: {exc}"}
        results[name]["latencyMs"] = round((time.perf_counter() - started) * 1000, 1)
    model = _model(services)
    ready = all(r["reachable"] for r in results.values()) and model["loaded"]
    return JSONResponse(
        {
            "status": "ready" if ready else "unavailable",
            "dependencies": results,
            "model": model,
            "relay": {
                "running": services.relay.running,
                "leading": services.relay.leading,
                "published": services.relay.published,
            },
        },
        status_code=200 if ready else 503,
    )


def _model(services: Services) -> dict[str, Any]:
    spec = services.model_spec
    if services.embedder is None or spec is None:
        return {"loaded": False, "name": services.settings.model, "error": services.model_error}
    return {"loaded": True, "name": spec.name, "version": spec.version, "dimension": spec.dimension}
