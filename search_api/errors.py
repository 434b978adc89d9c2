"""Errors that map to HTTP answers across routes: a dependency that is down or not configured."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request, status
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
    app.add_exception_handler(ServiceUnavailable, _service_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(ResponseHandlingException, _qdrant_unavailable)
    app.add_exception_handler(UnexpectedResponse, _qdrant_refused)
