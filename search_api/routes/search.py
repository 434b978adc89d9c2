"""Similarity search in the caller's tenant: by a query image, or by a stored image's id.

Hits come from the tenant's Qdrant alias and are enriched from Postgres in one query. Answers
are cached in Redis for a minute, keyed by the tenant's generation (see `deeplens.cache`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import UnexpectedResponse

from deeplens import filters, vectors
from deeplens.blobs import sha256_hex
from deeplens.cache import SearchCache
from deeplens.catalog import images
from deeplens.catalog import models as tenant_models
from deeplens.catalog.tenants import Tenant
from deeplens.model.imaging import DECODE_ERRORS, ImageError, ImageTooLargeError
from search_api import forms, validation
from search_api.deps import (
    CacheDep,
    DbDep,
    KeysDep,
    ModelsDep,
    QdrantDep,
    QueryLimiterDep,
    SettingsDep,
    TenantDep,
    confirm_tenant,
)
from search_api.embedding import QueryModels
from search_api.schemas import SearchHit, SearchResponse

router = APIRouter(prefix="/api/v1", tags=["search"])

MAX_TOP_K = 100
MAX_OFFSET = 10_000
TopKQuery = Annotated[int, Query(alias="topK", ge=1, le=MAX_TOP_K, description="Results (1-100).")]

FILTER_HELP = (
    'A JSON object: {"field": value | [values] | {"gte"|"gt"|"lte"|"lt": bound}}, combined with '
    "and. Fields: uploadedBy, contentType, uploadedAt (ISO 8601), width, height, metadata.<key>."
    ' Example: {"uploadedBy": "alice", "width": {"gte": 1024}}'
)
MODEL_HELP = (
    "Search the index of another ready model of the tenant (default: its serving model; see "
    "GET /api/v1/admin/tenants/{id}/models)."
)
SEARCH_FORM = forms.image_form_schema(
    "Search",
    "The query image (JPEG, PNG, WebP, GIF, BMP).",
    {
        "topK": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "default": 10},
        "filter": {"type": "string", "description": FILTER_HELP},
        "scoreThreshold": {"type": "number", "description": "Leave out hits scoring below it."},
        "offset": {"type": "integer", "minimum": 0, "default": 0, "description": "Hits to skip."},
        "model": {"type": "string", "description": MODEL_HELP},
    },
)


@dataclass(frozen=True)
class Asked:
    """What a search asks beside its query: how many, which images, how similar at least."""

    top_k: int
    conditions: list[filters.Condition]
    score_threshold: float | None
    offset: int

    def cache_key(self) -> str:
        asked = [
            self.top_k,
            [(c.field, c.equals, c.bounds) for c in self.conditions],
            self.score_threshold,
            self.offset,
        ]
        return hashlib.sha256(json.dumps(asked, default=str).encode()).hexdigest()[:16]

    @classmethod
    def of(
        cls,
        top_k: int,
        filter_: str | None,
        score_threshold: str | float | None,
        offset: str | int | None,
    ) -> Asked:
        """From the request's fields; 400 (filter) or 422 (numbers) with what is wrong."""
        try:
            conditions = filters.parse(filter_)
        except filters.FilterError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
        threshold = None
        if score_threshold not in (None, ""):
            try:
                threshold = float(score_threshold)
            except ValueError as exc:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT, "scoreThreshold must be a number"
                ) from exc
        skip = 0
        if offset not in (None, ""):
            try:
                skip = int(offset)
            except ValueError:
                skip = -1
            if not 0 <= skip <= MAX_OFFSET:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"offset must be a whole number from 0 to {MAX_OFFSET}",
                )
        return cls(top_k, conditions, threshold, skip)


@dataclass(frozen=True)
class Searcher:
    """What a search of one tenant reads: its index, its catalog rows, its cached answers."""

    tenant: Tenant
    db: ConnectionPool
    qdrant: QdrantClient
    cache: SearchCache
    model: str
    alias: str

    @classmethod
    def of(
        cls,
        tenant: Tenant,
        db: ConnectionPool,
        qdrant: QdrantClient,
        cache: SearchCache,
        model: str | None,
    ) -> Searcher:
        """The tenant's serving index, or that of `model` if the tenant holds it ready (404
        otherwise: a tenant learns only of its own models)."""
        if not model or model == tenant.model:
            return cls(tenant, db, qdrant, cache, tenant.model, tenant.collection_alias)
        with db.connection() as conn:
            held = tenant_models.get(conn, tenant.tenant_id, model)
        if held is None or held.state != tenant_models.READY:
            state = "does not hold" if held is None else f"holds, {held.state}, not ready:"
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"this tenant {state} model {model[:64]!r}; it searches with "
                f"{tenant.model!r} by default",
            )
        return cls(tenant, db, qdrant, cache, model, held.alias)


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
    models: ModelsDep,
    limiter: QueryLimiterDep,
) -> JSONResponse:
    """The tenant's images most similar to the uploaded one, best first.

    A query image whose decode would need more memory than the API's query budget is refused
    with 413 before any pixel is decoded; at most `DEEPLENS_QUERY_CONCURRENCY` queries per API
    process are decoded and embedded at once (the others wait their turn).
    """
    started = time.perf_counter()
    body = await request.body()  # bounded by `BodySizeLimit`, read once the key is known good
    content_type = request.headers.get("content-type", "")
    work = functools.partial(
        _search_by_image,
        functools.partial(Searcher.of, tenant, db, qdrant, cache),
        models,
        settings.max_upload_bytes,
        content_type,
        body,
        started,
    )
    return await to_thread.run_sync(work, limiter=limiter)


def _search_by_image(
    searcher_for: Callable[[str | None], Searcher],
    models: QueryModels,
    max_bytes: int,
    content_type: str,
    body: bytes,
    started: float,
) -> JSONResponse:
    form, file = forms.read_image_form(content_type, body)
    asked = Asked.of(
        _top_k(form.text("topK")),
        form.text("filter"),
        form.text("scoreThreshold"),
        form.text("offset"),
    )
    data = file.data
    validation.check_size(len(data), max_bytes)
    searcher = searcher_for(form.text("model"))
    tenant = searcher.tenant
    key = searcher.cache.key(
        tenant.tenant_id, "image", sha256_hex(data), f"{searcher.model}:{asked.cache_key()}"
    )
    if (hit := searcher.cache.get(key)) is not None:
        return _answer(hit, started, cached=True)

    validation.inspect_image(data)
    embedder = models.get(searcher.model).require_embedder()
    try:
        vector = embedder.embed_one(data)
    except ImageTooLargeError as exc:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"the query image is too large: {exc}"
        ) from exc
    except (ImageError, *DECODE_ERRORS) as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"the query image cannot be decoded: {exc}"
        ) from exc
    try:
        hits = vectors.search(
            searcher.qdrant,
            searcher.alias,
            vector,
            asked.top_k,
            must=filters.to_qdrant(asked.conditions),
            score_threshold=asked.score_threshold,
            offset=asked.offset,
        )
    except UnexpectedResponse as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the tenant's collection {searcher.alias!r} cannot be searched: {_reason(exc)}",
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
    filter_: Annotated[str | None, Query(alias="filter", description=FILTER_HELP)] = None,
    score_threshold: Annotated[
        float | None, Query(alias="scoreThreshold", description="Leave out hits scoring below it.")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Hits to skip.")] = 0,
    model: Annotated[str | None, Query(max_length=64, description=MODEL_HELP)] = None,
) -> JSONResponse:
    """The tenant's images most similar to a stored one (which is left out), best first."""
    started = time.perf_counter()
    asked = Asked.of(top_k, filter_, score_threshold, offset)
    searcher = Searcher.of(tenant, db, qdrant, cache, model)
    key = cache.key(tenant.tenant_id, "id", str(image_id), f"{searcher.model}:{asked.cache_key()}")
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
        hits = vectors.search(
            qdrant,
            searcher.alias,
            image_id,
            asked.top_k,
            exclude=image_id,
            must=filters.to_qdrant(asked.conditions),
            score_threshold=asked.score_threshold,
            offset=asked.offset,
        )
    except UnexpectedResponse as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"image {image_id} has no vector in {searcher.alias!r} right now "
            f"(a reindex may be under way): {_reason(exc)}",
        ) from exc
    answer = _body(searcher, hits, query_image_id=image_id)
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
        SearchHit.of(row, h.score).model_dump(mode="json", by_alias=True)
        for h in hits
        if (row := rows.get(h.image_id)) is not None
    ]
    body: dict[str, Any] = {
        "results": results,
        "model": searcher.model,
        "collection": searcher.alias,
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
