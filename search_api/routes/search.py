"""Similarity search in the caller's tenant: by a query image, or by a stored image's id.

Hits come from the tenant's Qdrant alias and are enriched from Postgres in one query. Answers
are cached in Redis for a minute, keyed by the tenant's generation (see `deeplens.cache`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import UnexpectedResponse

from deeplens import vectors
from deeplens.blobs import sha256_hex
from deeplens.cache import SearchCache
from deeplens.catalog import images
from deeplens.catalog.tenants import Tenant
from deeplens.model.imaging import DECODE_ERRORS, ImageError
from search_api import forms, validation
from search_api.deps import (
    CacheDep,
    DbDep,
    KeysDep,
    ModelDep,
    QdrantDep,
    SettingsDep,
    TenantDep,
    confirm_tenant,
)
from search_api.embedding import QueryModel
from search_api.schemas import SearchHit, SearchResponse

router = APIRouter(prefix="/api/v1", tags=["search"])

MAX_TOP_K = 100
TopKQuery = Annotated[int, Query(alias="topK", ge=1, le=MAX_TOP_K, description="Results (1-100).")]

SEARCH_FORM = forms.image_form_schema(
    "Search",
    "The query image (JPEG, PNG, WebP, GIF, BMP).",
    {"topK": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "default": 10}},
)


@dataclass(frozen=True)
class Searcher:
    """What a search of one tenant reads: its index, its catalog rows, its cached answers."""

    tenant: Tenant
    db: ConnectionPool
    qdrant: QdrantClient
    cache: SearchCache


@router.post(
    "/search",
    response_model=SearchResponse,
    response_model_exclude_none=True,
    responses={422: {"description": "Not a multipart/form-data body, or no part named 'file'"}},
    openapi_extra=SEARCH_FORM,
)
async def search_by_image(
    request: Request,
    tenant: TenantDep,
    settings: SettingsDep,
    db: DbDep,
    qdrant: QdrantDep,
    cache: CacheDep,
    model: ModelDep,
) -> JSONResponse:
    """The tenant's images most similar to the uploaded one, best first."""
    started = time.perf_counter()
    body = await request.body()  # bounded by `BodySizeLimit`, read once the key is known good
    searcher = Searcher(tenant, db, qdrant, cache)
    content_type = request.headers.get("content-type", "")
    return await run_in_threadpool(
        _search_by_image, searcher, model, settings.max_upload_bytes, content_type, body, started
    )


def _search_by_image(
    searcher: Searcher,
    model: QueryModel,
    max_bytes: int,
    content_type: str,
    body: bytes,
    started: float,
) -> JSONResponse:
    form, file = forms.read_image_form(content_type, body)
    top_k = _top_k(form.text("topK"))
    data = file.data
    validation.check_size(len(data), max_bytes)
    tenant = searcher.tenant
    key = searcher.cache.key(tenant.tenant_id, "image", sha256_hex(data), top_k)
    if (hit := searcher.cache.get(key)) is not None:
        return _answer(hit, started, cached=True)

    validation.inspect_image(data)
    embedder = model.require_embedder()
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
        hits = vectors.search(searcher.qdrant, tenant.collection_alias, vector, top_k)
    except UnexpectedResponse as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the tenant's collection {tenant.collection_alias!r} cannot be searched: "
            f"{_reason(exc)}",
        ) from exc
    answer = _body(searcher, hits)
    searcher.cache.put(key, answer)
    return _answer(answer, started, cached=False)


def _top_k(raw: str | None) -> int:
    if raw is None or raw == "":
        return 10
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_TOP_K:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"topK must be a whole number from 1 to {MAX_TOP_K}, not {raw[:20]!r}",
        )
    return value


@router.get(
    "/images/{image_id}/similar", response_model=SearchResponse, response_model_exclude_none=True
)
def similar_images(
    image_id: uuid.UUID,
    tenant: TenantDep,
    db: DbDep,
    keys: KeysDep,
    qdrant: QdrantDep,
    cache: CacheDep,
    top_k: TopKQuery = 10,
) -> JSONResponse:
    """The tenant's images most similar to a stored one (which is left out), best first."""
    started = time.perf_counter()
    key = cache.key(tenant.tenant_id, "id", str(image_id), top_k)
    if (hit := cache.get(key)) is not None:
        return _answer(hit, started, cached=True)

    with db.connection() as conn:
        image = images.get(conn, image_id, tenant.tenant_id)
    if image is None:
        confirm_tenant(db, keys, tenant)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no image {image_id} for this tenant")
    if image.status != "completed":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"image {image_id} is not searchable yet (status {image.status!r}); "
            "ask again once its status is 'completed'",
        )
    try:
        hits = vectors.search(qdrant, tenant.collection_alias, image_id, top_k, exclude=image_id)
    except UnexpectedResponse as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"image {image_id} has no vector in {tenant.collection_alias!r} right now "
            f"(a reindex may be under way): {_reason(exc)}",
        ) from exc
    answer = _body(Searcher(tenant, db, qdrant, cache), hits, query_image_id=image_id)
    cache.put(key, answer)
    return _answer(answer, started, cached=False)


def _body(
    searcher: Searcher, hits: list[vectors.Hit], query_image_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """The answer without timing: hits joined with their catalog rows (one query)."""
    tenant = searcher.tenant
    rows = {}
    if hits:
        with searcher.db.connection() as conn:
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
