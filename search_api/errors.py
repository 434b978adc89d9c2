"""Errors that map to HTTP answers across routes: a dependency that is down or not configured,
and a request that FastAPI finds invalid."""

from __future__ import annotations

import logging
import math
from typing import Any

import psycopg
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

log = logging.getLogger(__name__)


class ServiceUnavailable(RuntimeError):
    """A dependency the request needs is missing or down; the message says which and why."""


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse(
        {"detail": detail},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


async def _service_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return _unavailable(str(exc))


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: catalog database unavailable: %s", request.method, request.url.path, exc)
    return _unavailable("the catalog database is unavailable; try again shortly")


async def _database_too_slow(request: Request, exc: Exception) -> JSONResponse:
    # The pool's statement timeout cancelled a query (`deeplens.clients.postgres_pool`).
    log.warning("%s %s: catalog query cancelled: %s", request.method, request.url.path, exc)
    return _unavailable("the catalog database is too slow to answer right now; try again shortly")


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, whatever the input it quotes: a JSON body may hold NaN or 1e400 (which
    `json.loads` takes) or a lone surrogate, and FastAPI's own answer failed to encode them (a
    500)."""
    assert isinstance(exc, RequestValidationError)
    detail = _json_safe(jsonable_encoder(exc.errors()))
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _json_safe(value: Any) -> Any:
    """`value` with non-finite numbers as text and lone surrogates replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {_json_safe(key): _json_safe(item) for key, item in value.items()}
    return value


async def _qdrant_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: Qdrant unavailable: %s", request.method, request.url.path, exc)
    return _unavailable("the vector store (Qdrant) is unavailable; try again shortly")


async def _qdrant_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnexpectedResponse)
    log.warning("%s %s: Qdrant answered %s", request.method, request.url.path, exc.status_code)
    content = exc.content.decode(errors="replace")[:300] if exc.content else ""
    return JSONResponse(
        {"detail": f"the vector store (Qdrant) refused the request: {exc.status_code} {content}"},
        status_code=status.HTTP_502_BAD_GATEWAY,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ServiceUnavailable, _service_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(psycopg.errors.QueryCanceled, _database_too_slow)
    app.add_exception_handler(ResponseHandlingException, _qdrant_unavailable)
    app.add_exception_handler(UnexpectedResponse, _qdrant_refused)
