"""A tenant's images, whole: the listing (filters, a stable cursor), the original bytes, the
thumbnails, and deletion."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from deeplens import filters, tenancy, thumbnails
from deeplens.catalog import images
from deeplens.model.imaging import ImageError
from deeplens.tenancy import TenantStores
from search_api.deps import (
    BlobsDep,
    CacheDep,
    DbDep,
    KeysDep,
    QdrantDep,
    SettingsDep,
    TenantDep,
    confirm_tenant,
)
from search_api.errors import ServiceUnavailable
from search_api.routes.images import ImageDep
from search_api.schemas import ImageDetails, ImageList

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/images", tags=["images"])

MAX_PAGE = 500
FILTER_HELP = (
    'A JSON object: {"field": value | [values] | {"gte"|"gt"|"lte"|"lt": bound}}, all combined '
    "with and. Fields: status, uploadedBy, contentType, uploadedAt (ISO 8601), width, height, "
    'metadata.<key>. Example: {"status": "completed", "metadata.camera": "x100"}'
)


@router.get(
    "",
    response_model=ImageList,
    responses={400: {"description": "A malformed filter or cursor"}},
)
def list_images(
    tenant: TenantDep,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Images per page.")] = 50,
    cursor: Annotated[str | None, Query(description="`nextCursor` of the page before.")] = None,
    filter_: Annotated[str | None, Query(alias="filter", description=FILTER_HELP)] = None,
    order: Annotated[
        str, Query(pattern="^(newest|oldest)$", description="By upload time: newest first.")
    ] = "newest",
) -> ImageList:
    """The tenant's images, newest first (or oldest), page by page. A cursor pages on from where
    the last page ended: uploads made meanwhile never make an image come twice or go missing."""
    try:
        where, params = filters.to_sql(filters.parse(filter_, allow_status=True))
    except filters.FilterError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    after = _read_cursor(cursor, order)
    with db.connection() as conn:
        rows = images.page(
            conn, tenant.tenant_id, where, params, limit + 1, after, order == "newest"
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _cursor(rows[-1].uploaded_at, rows[-1].image_id, order) if more else None
    return ImageList(items=[ImageDetails.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{image_id}/content",
    response_class=Response,
    responses={
        200: {"content": {"image/*": {}}, "description": "The original bytes, as uploaded"},
        304: {"description": "Not modified (If-None-Match)"},
        404: {"description": "No such image for this tenant"},
    },
)
def image_content(image: ImageDep, request: Request, blobs: BlobsDep) -> Response:
    """The original bytes, with the content type they were uploaded as. The ETag is their
    SHA-256: send it back in `If-None-Match` for a 304."""
    etag = f'"{image.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400, immutable"}
    if _matches(request, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    try:
        data = blobs.get(image.blob_key)
    except FileNotFoundError as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"the bytes of image {image.image_id} are missing from the store; upload the same "
            "file again to repair them",
        ) from exc
    except OSError as exc:
        raise _store_unavailable(exc) from exc
    return Response(data, media_type=image.content_type, headers=headers)


@router.get(
    "/{image_id}/thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "A JPEG, longer side <= size"},
        304: {"description": "Not modified (If-None-Match)"},
        400: {"description": "A size that is not offered"},
        404: {"description": "No such image for this tenant"},
    },
)
def image_thumbnail(
    image: ImageDep,
    request: Request,
    blobs: BlobsDep,
    settings: SettingsDep,
    size: Annotated[
        int,
        Query(description=f"Longer side in pixels: {', '.join(map(str, thumbnails.SIZES))}."),
    ] = 256,
) -> Response:
    """A JPEG whose longer side is at most `size`; made on first request and kept."""
    try:
        thumbnails.check_size(size)
    except thumbnails.ThumbnailSizeError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    etag = f'"{image.sha256}-{size}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400, immutable"}
    if _matches(request, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    try:
        data = thumbnails.thumbnail(blobs, image, size, settings.decode_budget_mb << 20)
    except FileNotFoundError as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"the bytes of image {image.image_id} are missing"
        ) from exc
    except OSError as exc:
        raise _store_unavailable(exc) from exc
    except ImageError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"no thumbnail can be made: {exc}"
        ) from exc
    return Response(data, media_type="image/jpeg", headers=headers)


@router.delete(
    "/{image_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: {"description": "No such image for this tenant"}},
)
def delete_image(
    image_id: uuid.UUID,
    tenant: TenantDep,
    db: DbDep,
    keys: KeysDep,
    qdrant: QdrantDep,
    blobs: BlobsDep,
    cache: CacheDep,
) -> Response:
    """Delete the image: its row, its vector (from every collection of the tenant, one being
    rebuilt included), its bytes and thumbnails, and the cached answers that could hold it. An
    image being processed is deleted cleanly; its run does not bring it back."""
    stores = TenantStores(db=db, qdrant=qdrant, blobs=blobs, cache=cache)
    if not tenancy.delete_image(stores, tenant, image_id):
        confirm_tenant(db, keys, tenant)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no image {image_id} for this tenant")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _store_unavailable(exc: OSError) -> ServiceUnavailable:
    """A store that can't be read (down, refusing) is a 503 with `Retry-After`, not a 500."""
    log.warning("blob store unavailable: %s", exc)
    return ServiceUnavailable(
        f"the image store cannot be read right now ({exc.strerror or exc}); try again shortly"
    )


def _matches(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match", "")
    return any(tag.strip() in (etag, "*") for tag in given.split(",") if tag.strip())


def _cursor(uploaded_at: datetime, image_id: uuid.UUID, order: str) -> str:
    raw = json.dumps([uploaded_at.isoformat(), str(image_id), order]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(cursor: str | None, order: str) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, image_id, cursor_order = json.loads(raw)
        parsed = (datetime.fromisoformat(at), uuid.UUID(image_id))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "cursor is not one this API gave: pass `nextCursor` of the page before as it is",
        ) from exc
    if cursor_order != order:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"this cursor pages in {cursor_order!r} order; ask with order={cursor_order}",
        )
    return parsed
