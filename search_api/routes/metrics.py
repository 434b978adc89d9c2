"""``GET /metrics``: what Prometheus scrapes (the API's counters, `search_api.metrics`, and the
pipeline's figures from the catalog, `deeplens.metrics`).

It is outside ``/api/``, so it wants no tenant key. Anyone who reaches the API's port may scrape
it unless ``DEEPLENS_METRICS_REQUIRE_ADMIN_KEY`` is set: then it wants the admin key, in
``X-Admin-Key`` or as ``Authorization: Bearer <key>`` (what a Prometheus scrape job's
``authorization`` setting sends). A deployment may instead keep the port to its monitoring with
a NetworkPolicy (README, "Deploying").
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from deeplens.metrics import exposition
from search_api.deps import SettingsDep
from search_api.gate import ADMIN_KEY_HEADER, Refused, check_admin_key

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus's text format (a plain function: the pipeline's figures are read from the
    catalog, off the event loop)."""
    if settings.metrics_require_admin_key:
        try:
            check_admin_key(settings, _admin_key(request))
        except Refused as refused:
            return JSONResponse({"detail": refused.detail}, status_code=refused.status_code)
    pipeline = getattr(request.app.state, "pipeline_metrics", None)
    body = exposition(*([pipeline] if pipeline is not None else []))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _admin_key(request: Request) -> str | None:
    if given := request.headers.get(ADMIN_KEY_HEADER):
        return given
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None
