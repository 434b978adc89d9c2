"""Liveness and readiness.

``/healthz`` says the process answers, and asks nothing else: a dependency that is down must not
get the API restarted. ``/readyz`` reaches every dependency over its real protocol, all at once
and within `CHECK_SECONDS` (a frozen one must not hold the probe). The required ones (Postgres,
Qdrant, the model) decide readiness: 200, or 503 when one is missing. The optional ones (Redis:
the search cache and rate limits; Kafka: the outbox relay catches up once it is back) only make
the answer ``degraded``, since uploads and searches go on without them.

What failed, and how (error text, the model's version, the relay's counters), is shown only to
a caller with the admin key (``X-Admin-Key``): it tells an attacker what runs inside.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal
from weakref import WeakKeyDictionary

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from deeplens.relay import OutboxRelay
from deeplens.settings import Settings
from search_api import audit
from search_api.deps import ADMIN_KEY_HEADER, ModelDep, SettingsDep
from search_api.embedding import QueryModel

router = APIRouter(tags=["health"])

Readiness = Literal["ready", "degraded", "unavailable"]

REQUIRED = ("postgres", "qdrant")
OPTIONAL = ("redis", "kafka")
# How long /readyz waits for all the checks together.
CHECK_SECONDS = 1.5
# The checks' own threads: a dependency that hangs holds one of these, never one of the routes'.
_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readyz")
# Per app: each dependency's check that is running, or ran last.
_running: WeakKeyDictionary[FastAPI, dict[str, Future[dict[str, Any]]]] = WeakKeyDictionary()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _checks(request: Request) -> dict[str, Callable[[], Any]]:
    state = request.app.state

    def postgres() -> None:
        with state.db.connection(timeout=CHECK_SECONDS) as conn:
            conn.execute("SELECT 1")

    def kafka() -> None:
        state.kafka_admin.list_topics(timeout=CHECK_SECONDS)

    return {
        "postgres": postgres,
        "qdrant": state.qdrant.get_collections,
        "redis": state.cache.ping,
        "kafka": kafka,
    }


async def run_checks(
    checks: Mapping[str, Callable[[], Any]],
    running: dict[str, Future[dict[str, Any]]],
    within: float = CHECK_SECONDS,
) -> dict[str, dict[str, Any]]:
    """Each check's outcome, ``reachable`` with its ``latencyMs`` or its ``error``; all run at
    once, and one that has not answered `within` seconds counts as unreachable.

    A check still running from an earlier probe (in `running`) is joined rather than started
    again, so that a dependency that hangs holds one thread, however often the probe asks.
    """
    started = time.perf_counter()
    for name, check in checks.items():
        if name not in running or running[name].done():
            running[name] = _executor.submit(_timed, check)
    futures = {name: asyncio.wrap_future(running[name]) for name in checks}
    await asyncio.wait(futures.values(), timeout=within)
    results: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        if future.done():
            results[name] = future.result()
        else:
            waited = round((time.perf_counter() - started) * 1000, 1)
            error = f"no answer within {within} s"
            results[name] = {"reachable": False, "error": error, "latencyMs": waited}
    return results


def _timed(check: Callable[[], Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
        result: dict[str, Any] = {"reachable": True}
    except Exception as exc:  # a readiness probe reports every failure, it never raises
        result = {"reachable": False, "error": f"{type(exc).__name__}: {exc}"}
    result["latencyMs"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def readiness(reachable: Mapping[str, bool], model_loaded: bool) -> Readiness:
    """``unavailable`` when a required dependency (or the model) is missing, ``degraded`` when
    only optional ones are, else ``ready``."""
    if not model_loaded or not all(reachable[name] for name in REQUIRED):
        return "unavailable"
    if not all(reachable[name] for name in OPTIONAL):
        return "degraded"
    return "ready"


def _dependency_status(name: str, reachable: bool) -> str:
    if reachable:
        return "ok"
    return "unavailable" if name in REQUIRED else "degraded"


def is_admin(request: Request, settings: Settings) -> bool:
    """Whether the request carries the admin key (a wrong one is audited; none is no failure:
    probes send none)."""
    given = request.headers.get(ADMIN_KEY_HEADER)
    if not given:
        return False
    expected = settings.secret("admin_key")
    if expected and hmac.compare_digest(given.encode(), expected.encode()):
        return True
    audit.record("auth.failed", request, scope="admin", reason="wrong admin key")
    return False


@router.get("/readyz")
async def readyz(request: Request, model: ModelDep, settings: SettingsDep) -> JSONResponse:
    """Whether this process can serve (200) or not (503), dependency by dependency; with the
    admin key, also why and how fast."""
    results = await run_checks(_checks(request), _running.setdefault(request.app, {}))
    loaded = model.embedder is not None and model.spec is not None
    status = readiness({name: r["reachable"] for name, r in results.items()}, loaded)
    dependencies = {
        name: {"status": _dependency_status(name, r["reachable"]), "reachable": r["reachable"]}
        for name, r in results.items()
    }
    body: dict[str, Any] = {
        "status": status,
        "dependencies": dependencies,
        "model": {"loaded": loaded},
    }
    if is_admin(request, settings):
        for name, result in results.items():
            dependencies[name].update(result)
        body["model"] = _model(model)
        body["relay"] = _relay(request.app.state.relay)
    return JSONResponse(body, status_code=503 if status == "unavailable" else 200)


def _model(model: QueryModel) -> dict[str, Any]:
    spec = model.spec
    if model.embedder is None or spec is None:
        return {"loaded": False, "name": model.name, "error": model.error}
    return {"loaded": True, "name": spec.name, "version": spec.version, "dimension": spec.dimension}


def _relay(relay: OutboxRelay | None) -> dict[str, Any]:
    return {
        "inThisProcess": relay is not None,
        "running": relay is not None and relay.running,
        "leading": relay is not None and relay.leading,
        "published": relay.published if relay is not None else 0,
    }
