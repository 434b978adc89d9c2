"""Liveness and readiness: ``/readyz`` reaches every dependency over its real protocol."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from deeplens.relay import OutboxRelay
from search_api.deps import ModelDep
from search_api.embedding import QueryModel

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _checks(request: Request) -> dict[str, Callable[[], Any]]:
    state = request.app.state

    def postgres() -> None:
        with state.db.connection(timeout=3) as conn:
            conn.execute("SELECT 1")

    def kafka() -> None:
        state.kafka_admin.list_topics(timeout=3)

    return {
        "postgres": postgres,
        "kafka": kafka,
        "qdrant": state.qdrant.get_collections,
        "redis": state.cache.ping,
    }


@router.get("/readyz")
def readyz(request: Request, model: ModelDep) -> JSONResponse:
    """Each dependency, reachable or not, with how long it took to answer."""
    results: dict[str, dict[str, Any]] = {}
    for name, check in _checks(request).items():
        started = time.perf_counter()
        try:
            check()
            results[name] = {"reachable": True}
        except Exception as exc:  # a readiness probe reports every failure, it never raises
            results[name] = {"reachable": False, "error": f"{type(exc).__name__}: {exc}"}
        results[name]["latencyMs"] = round((time.perf_counter() - started) * 1000, 1)
    loaded = _model(model)
    ready = all(r["reachable"] for r in results.values()) and loaded["loaded"]
    relay: OutboxRelay | None = request.app.state.relay
    return JSONResponse(
        {
            "status": "ready" if ready else "unavailable",
            "dependencies": results,
            "model": loaded,
            "relay": {
                "inThisProcess": relay is not None,
                "running": relay is not None and relay.running,
                "leading": relay is not None and relay.leading,
                "published": relay.published if relay is not None else 0,
            },
        },
        status_code=200 if ready else 503,
    )


def _model(model: QueryModel) -> dict[str, Any]:
    spec = model.spec
    if model.embedder is None or spec is None:
        return {"loaded": False, "name": model.name, "error": model.error}
    return {"loaded": True, "name": spec.name, "version": spec.version, "dimension": spec.dimension}
