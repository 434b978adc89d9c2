"""The API's Prometheus instruments, and the middleware that counts and times every answer.

`HttpMetrics` is the outermost middleware, so it sees every answer: the gate's refusals and the
body limit's as well as the routes'. It labels a request with its route's template
(``/api/v1/images/{image_id}/status``), never its path, so that ids don't make a series each; a
path that matches no route is ``unmatched``. The gate counts its refusals by reason
(`GATE_REFUSALS`) and the search cache its lookups (`deeplens.cache`). A scrape of /metrics
(`search_api.routes.metrics`) sees every worker's counts in multiprocess mode (see
`deeplens.metrics`).
"""

from __future__ import annotations

import re
import time

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_ROUTE = "/api/v1/images"

REQUESTS = Counter(
    "deeplens_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "deeplens_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
UPLOADS = Counter(
    "deeplens_uploads_total",
    "Uploads answered: accepted (202), duplicate (200: the same bytes again), refused (4xx: "
    "bad input, no key, over a rate or quota) or failed (5xx), with the status.",
    ["outcome", "status"],
)
GATE_REFUSALS = Counter(
    "deeplens_gate_refusals_total",
    "Requests the front door refused before reading their body, by reason (upload_rate, "
    "search_rate, read_rate, unknown_keys, unauthorized, forbidden, unavailable) and status.",
    ["reason", "status"],
)


def upload_outcome(status: int) -> str:
    if status == 202:
        return "accepted"
    if status < 300:
        return "duplicate"
    return "refused" if status < 500 else "failed"


def templates(app: FastAPI) -> list[tuple[re.Pattern[str], str]]:
    """The path templates of the app's API (its OpenAPI paths), each with its pattern."""
    return [(compile_path(path)[0], path) for path in app.openapi().get("paths", {})]


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: list[tuple[re.Pattern[str], str]] | None = None

    def route_of(self, scope: Scope) -> str:
        """The template of the route that answered, or would have: a request the gate refused
        never reached the router, so its path is matched against the API's templates;
        ``unmatched`` when none matches."""
        if route := getattr(scope.get("route"), "path_format", None):
            return str(route)
        if self._templates is None:
            self._templates = templates(scope["app"])
        path = scope["path"]
        return next((t for pattern, t in self._templates if pattern.match(path)), "unmatched")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: the app raised

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            method, route, code = scope["method"], self.route_of(scope), str(status)
            REQUESTS.labels(method, route, code).inc()
            LATENCY.labels(method, route, code).observe(time.perf_counter() - started)
            if method == "POST" and route == UPLOAD_ROUTE:
                UPLOADS.labels(upload_outcome(status), code).inc()
