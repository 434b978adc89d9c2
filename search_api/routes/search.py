"""Similarity search in the caller's tenant: by a query image, or by a stored image's id.

Hits come from the tenant's Qdrant alias and are enriched from Postgres in one query. Answers
are cached in Redis for a minute, keyed by the tenant's generation (see `search_api.cache`).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile, status
from fastapi.responses import JSONResponse
from qdrant_client.http.exceptions import UnexpectedResponse

from deeplens import vectors
from deeplens.blobs import sha256_hex
from deeplens.catalog import images
from deeplens.catalog.tenants import Tenant
from deeplens.model.imaging import DECODE_ERRORS, ImageError
from search_api import validation
from search_api.deps import ServicesDep, TenantDep, confirm_tenant
from search_api.schemas import SearchHit, SearchResponse
from search_api.services import Services

router = APIRouter(prefix="/api/v1", tags=["search"])

TopKForm = Annotated[int, Form(alias="topK", ge=1, le=100, description="Results (1-100).")]
TopKQuery = Annotated[int, Query(alias="topK", ge=1, le=100, description="Results (1-100).")]


@router.post("/search", response_model=SearchResponse, response_model_exclude_none=True)
def search_by_image(
    tenant: TenantDep,
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="The query image.")],
    top_k: TopKForm = 10,
) -> JSONResponse:
    """The tenant's images most similar to the uploaded one, best first."""
    started = time.perf_counter()
    data = validation.read_limited(file.file, services.settings.max_upload_bytes)
    key = services.cache.key(tenant.tenant_id, "image", sha256_hex(data), top_k)
    if (hit := services.cache.get(key)) is not None:
        return _answer(hit, started, cached=True)

    validation.inspect_image(data)
    embedder = services.require_embedder()
    if embedder.spec.name != tenant.model:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"tenant {tenant.tenant_id!r} is indexed with model {tenant.model!r}, but this API "
            f"embeds queries with {embedder.spec.name!r}; set DEEPLENS_MODEL={tenant.model}",
        )
    try:
        vector = embedder.embed_one(data)
    except (ImageError, *DECODE_ERRORS) as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"the query image cannot be decoded: {exc}"
        ) from exc
    try:
        hits = vectors.search(services.qdrant, tenant.collection_alias, vector, top_k)
    except UnexpectedResponse as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the tenant's collection {tenant.collection_alias!r} cannot be searched: "
            f"{_reason(exc)}",
        ) from exc
    body = _body(services, tenant, hits)
    services.cache.put(key, body)
    return _answer(body, started, cached=False)


@router.get(
    "/images/{image_id}/similar", response_model=SearchResponse, response_model_exclude_none=True
)
def similar_images(
    image_id: uuid.UUID, tenant: TenantDep, services: ServicesDep, top_k: TopKQuery = 10
) -> JSONResponse:
    """The tenant's images most similar to a stored one (which is left out), best first."""
    started = time.perf_counter()
    key = services.cache.key(tenant.tenant_id, "id", str(image_id), top_k)
    if (hit := services.cache.get(key)) is not None:
        return _answer(hit, started, cached=True)

    with services.db.connection() as conn:
        image = images.get(conn, image_id, tenant.tenant_id)
    if image is None:
        confirm_tenant(services, tenant)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no image {image_id} for this tenant")
    if image.status != "completed":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"image {image_id} is not searchable yet (status {image.status!r}); "
            "ask again once its status is 'completed'",
        )
    try:
        hits = vectors.search(
            services.qdrant, tenant.collection_alias, image_id, top_k, exclude=image_id
        )
    except UnexpectedResponse as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"image {image_id} has no vector in {tenant.collection_alias!r} right now "
            f"(a reindex may be under way): {_reason(exc)}",
        ) from exc
    body = _body(services, tenant, hits, query_image_id=image_id)
    services.cache.put(key, body)
    return _answer(body, started, cached=False)


def _body(
    services: Services,
    tenant: Tenant,
    hits: list[vectors.Hit],
    query_image_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The answer without timing: hits joined with their catalog rows (one query)."""
    rows = {}
    if hits:
        with services.db.connection() as conn:
            found = images.get_many(conn, tenant.tenant_id, [h.image_id for h in hits])
        rows = {r.image_id: r for r in found}
    results = [
        SearchHit(
            image_id=h.image_id,
            score=h.score,
            file_name=row.file_name,
            content_type=row.content_type,
            file_size=row.file_size,
            width=row.width,
            height=row.height,
            uploaded_by=row.uploaded_by,
            uploaded_at=row.uploaded_at,
            metadata=row.metadata,
        ).model_dump(mode="json", by_alias=True)
        for h in hits
        if (row := rows.get(h.image_id)) is not None
    ]
    body: dict[str, Any] = {
        "results": results,
        "model": tenant.model,
        "collection": tenant.collection_alias,
    }
    if query_image_id is not None:
        body["queryImageId"] = str(query_image_id)
    return body


def _answer(body: dict[str, Any], started: float, cached: bool) -> JSONResponse:
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    return JSONResponse({**body, "tookMs": took_ms, "cached": cached})


def _reason(exc: UnexpectedResponse) -> str:
    content = exc.content.decode(errors="replace")[:300] if exc.content else ""
    return f"Qdrant answered {exc.status_code} {exc.reason_phrase} {content}".strip()
