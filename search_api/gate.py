"""The front door of ``/api/``: who is asking, may they, and are they within their rate, decided
from the headers alone, before any body is read.

- An admin route wants ``X-Admin-Key``; every other ``/api/`` route wants a tenant's
  ``X-API-Key``. A missing or wrong key is answered 401 at once.
- A key not in this process's cache is looked up in the catalog. One client address may send
  only ``DEEPLENS_KEY_FAILURES_PER_SECOND`` unknown keys a second; past that its requests get 429
  without a lookup, so random keys can't make the catalog work for them (known keys never
  count).
- A read-only key may search and read, not upload, delete or retry (403).
- The tenant's rate for the kind of request (upload, search, read) is counted in Redis
  (`search_api.ratelimit`); over it, 429 with ``Retry-After`` and ``RateLimit-*`` headers.

A refusal of a request that has a body closes the connection, so that the client stops sending
it. A 429 is sent after a pause of up to ``DEEPLENS_RATE_LIMIT_PAUSE_SECONDS`` (at most until the
client's window resets): a client that honours ``Retry-After`` loses nothing, and one that
floods in a loop is paced by its own connections instead of making the API answer it as fast
as it can ask. Admitted requests carry their `Identity` in ``request.state.identity`` for the
routes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Literal

import psycopg
from fastapi import status
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from deeplens.catalog.keys import Identity
from deeplens.settings import Settings
from search_api import audit
from search_api.auth import TenantKeys
from search_api.metrics import GATE_REFUSALS
from search_api.ratelimit import RateLimiter, Verdict

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
ADMIN_PREFIX = "/api/v1/admin/"
API_KEY_HEADER = "X-API-Key"
ADMIN_KEY_HEADER = "X-Admin-Key"

Kind = Literal["upload", "search", "read"]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOUNS: dict[Kind, str] = {"upload": "uploads", "search": "searches", "read": "requests"}
REASONS = {401: "unauthorized", 403: "forbidden", 503: "unavailable"}


def kind_of(method: str, path: str) -> Kind:
    """Which of the tenant's rates a request counts against."""
    if method == "POST" and path.rstrip("/") == "/api/v1/images":
        return "upload"
    if path.rstrip("/") == "/api/v1/search" or (
        path.startswith("/api/v1/images/") and path.rstrip("/").endswith("/similar")
    ):
        return "search"
    return "read"


def rate_for(identity: Identity, kind: Kind) -> int | None:
    limits = identity.limits
    return {
        "upload": limits.uploads_per_second,
        "search": limits.searches_per_second,
        "read": limits.reads_per_second,
    }[kind]


class Refused(Exception):
    def __init__(
        self,
        status_code: int,
        detail: str,
        headers: dict[str, str] | None = None,
        reason: str | None = None,
    ):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers or {}
        # For /metrics: why, in a word (by default, the status's).
        self.reason = reason or REASONS.get(status_code, str(status_code))


class Gate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        try:
            if scope["path"].startswith(ADMIN_PREFIX):
                _admit_admin(connection)
            else:
                identity = await _admit_tenant(connection)
                scope.setdefault("state", {})["identity"] = identity
        except Refused as refused:
            GATE_REFUSALS.labels(refused.reason, str(refused.status_code)).inc()
            if refused.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
                settings: Settings = scope["app"].state.settings
                pause = min(settings.rate_limit_pause_seconds, _reset_seconds(refused))
                if pause > 0:
                    await asyncio.sleep(pause)
            headers = dict(refused.headers)
            if _has_body(connection):
                headers["Connection"] = "close"
            response = JSONResponse(
                {"detail": refused.detail}, status_code=refused.status_code, headers=headers
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _admit_admin(connection: HTTPConnection) -> None:
    try:
        check_admin_key(connection.app.state.settings, connection.headers.get(ADMIN_KEY_HEADER))
    except Refused as refused:
        if refused.status_code == status.HTTP_401_UNAUTHORIZED:
            audit.record("auth.failed", connection, scope="admin", reason=refused.detail)
        raise


def check_admin_key(settings: Settings, given: str | None) -> None:
    """Raise `Refused` unless `given` is the admin key (503 when the admin API is off)."""
    expected = settings.secret("admin_key")
    if not expected:
        raise Refused(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the admin API is disabled: set DEEPLENS_ADMIN_KEY for the API",
        )
    if not given:
        raise Refused(
            status.HTTP_401_UNAUTHORIZED,
            f"missing admin key: send it in the {ADMIN_KEY_HEADER} header",
        )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused(status.HTTP_401_UNAUTHORIZED, "wrong admin key")


async def identify(connection: HTTPConnection, api_key: str, scope: str) -> Identity:
    """Who `api_key` speaks for (the HTTP gate and the status WebSocket): from the cache, or
    looked up unless the client's address sent too many unknown keys this second. Raises
    `Refused` (401, 429, 503); an unknown key is audited under `scope`."""
    state = connection.app.state
    settings: Settings = state.settings
    keys: TenantKeys = state.keys
    limiter: RateLimiter = state.rate_limiter
    identity = keys.cached(api_key)
    if identity is not None:
        return identity
    failures = f"key-failures:{audit.client_address(connection) or 'unknown'}"
    if (refused := limiter.refused(failures)) is not None:
        raise _too_many_unknown_keys(refused)
    identity = await _lookup(keys, api_key)
    if identity is None:
        audit.record("auth.failed", connection, scope=scope, reason="unknown API key")
        verdict = await limiter.check(failures, settings.key_failures_per_second)
        if not verdict.allowed:
            raise _too_many_unknown_keys(verdict)
        raise Refused(
            status.HTTP_401_UNAUTHORIZED,
            "unknown API key: use the apiKey returned when the tenant or the key was created",
        )
    return identity


async def _admit_tenant(connection: HTTPConnection) -> Identity:
    limiter: RateLimiter = connection.app.state.rate_limiter
    api_key = connection.headers.get(API_KEY_HEADER)
    if not api_key:
        raise Refused(
            status.HTTP_401_UNAUTHORIZED,
            f"missing API key: send the tenant's key in the {API_KEY_HEADER} header",
        )
    identity = await identify(connection, api_key, "tenant")
    method, path = connection.scope["method"], connection.url.path
    kind = kind_of(method, path)
    if identity.read_only and method in WRITES and kind != "search":
        raise Refused(
            status.HTTP_403_FORBIDDEN,
            f"API key {identity.key_id} is read-only: it can search and read, not "
            f"{method} {path}; use a key made without readOnly",
        )
    if (rate := rate_for(identity, kind)) is not None:
        verdict = await limiter.check(f"{identity.tenant.tenant_id}:{kind}", rate)
        if not verdict.allowed:
            raise Refused(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"tenant {identity.tenant.tenant_id!r} is over its rate of {rate} "
                f"{NOUNS[kind]} per second; retry after {verdict.reset_seconds}s",
                verdict.headers(),
                reason=f"{kind}_rate",
            )
    return identity


def _too_many_unknown_keys(verdict: Verdict) -> Refused:
    return Refused(
        status.HTTP_429_TOO_MANY_REQUESTS,
        "too many unknown API keys from this address; use the key returned when the tenant or "
        f"the key was created, and retry after {verdict.reset_seconds}s",
        verdict.headers(),
        reason="unknown_keys",
    )


async def _lookup(keys: TenantKeys, api_key: str) -> Identity | None:
    try:
        return await run_in_threadpool(keys.lookup, api_key)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        log.warning("API key lookup failed: catalog database unavailable: %s", exc)
        raise Refused(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the catalog database is unavailable; try again shortly",
            {"Retry-After": "5"},
        ) from exc


def _reset_seconds(refused: Refused) -> float:
    return float(refused.headers.get("Retry-After", "1"))


def _has_body(connection: HTTPConnection) -> bool:
    headers = connection.headers
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
