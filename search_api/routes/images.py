"""Uploads, and an image's details and processing status.

An upload is validated completely before anything is written; then its bytes go to the blob
store (content-addressed) and its row and ``image.uploaded`` event to Postgres in one
transaction. The outbox relay publishes the event; this route never talks to Kafka.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, File, Form, HTTPException, Response, UploadFile, status

from deeplens.blobs import sha256_hex
from deeplens.catalog import images
from deeplens.catalog.images import Image, NewImage
from deeplens.status import status_view
from search_api import validation
from search_api.deps import ServicesDep, TenantDep, check_tenant_field
from search_api.schemas import ImageDetails, StatusView, UploadAccepted
from search_api.services import Services

router = APIRouter(prefix="/api/v1/images", tags=["images"])

ESTIMATED_PROCESSING_SECONDS = 5

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Empty, damaged or truncated image, or invalid metadata"},
    401: {"description": "Missing or unknown API key"},
    403: {"description": "tenantId does not match the API key"},
    413: {"description": "File over the size limit, or too many pixels (decompression bomb)"},
    415: {"description": "Not an accepted image format"},
}


def status_url(image_id: uuid.UUID) -> str:
    return f"/api/v1/images/{image_id}/status"


def websocket_url(image_id: uuid.UUID) -> str:
    return f"/hub/processing-status?imageId={image_id}"


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadAccepted,
    response_model_exclude_none=True,
    responses={200: {"model": UploadAccepted, "description": "Already uploaded"}, **_ERRORS},
)
def upload_image(
    tenant: TenantDep,
    services: ServicesDep,
    response: Response,
    file: Annotated[UploadFile, File(description="The image (JPEG, PNG, WebP, GIF, BMP).")],
    uploaded_by: Annotated[str | None, Form(alias="uploadedBy")] = None,
    metadata: Annotated[
        str | None, Form(description="A JSON object stored with the image.")
    ] = None,
    tenant_id: Annotated[
        str | None, Form(alias="tenantId", description="Optional; must be the key's tenant.")
    ] = None,
) -> UploadAccepted:
    """Accept an image for indexing: 202 at once, processing continues in the background.

    The same bytes uploaded again to the tenant answer 200 with the existing image
    (`duplicateOf`) and change nothing.
    """
    started = time.perf_counter()
    check_tenant_field(tenant, tenant_id)
    meta = validation.parse_metadata(metadata)
    uploader = validation.clean_text(uploaded_by, "uploadedBy", validation.MAX_UPLOADED_BY_CHARS)
    data = validation.read_limited(file.file, services.settings.max_upload_bytes)
    info = validation.inspect_image(data)
    digest = sha256_hex(data)

    new = NewImage(
        tenant_id=tenant.tenant_id,
        sha256=digest,
        # Content-addressed: the same bytes again (a duplicate) write nothing.
        blob_key=services.blobs.put(tenant.tenant_id, data, digest),
        file_name=validation.file_name(file.filename, info.mime),
        content_type=info.mime,
        file_size=len(data),
        width=info.width,
        height=info.height,
        uploaded_by=uploader,
        metadata=meta,
    )
    try:
        with services.db.connection() as conn:
            image, created = images.insert_with_event(conn, new)
    except psycopg.errors.ForeignKeyViolation as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"tenant {tenant.tenant_id!r} no longer exists; its API key is void",
        ) from exc

    elapsed_ms = round((time.perf_counter() - started) * 1000)
    if created:
        message = "Image uploaded successfully. Processing started in background."
    else:
        response.status_code = status.HTTP_200_OK
        message = (
            f"These bytes were already uploaded as image {image.image_id}; nothing new was stored."
        )
    return UploadAccepted(
        image_id=image.image_id,
        status=image.status,
        message=message,
        upload_time_ms=elapsed_ms,
        estimated_processing_time_seconds=(
            ESTIMATED_PROCESSING_SECONDS if image.status not in images.TERMINAL else 0
        ),
        status_check_url=status_url(image.image_id),
        web_socket_url=websocket_url(image.image_id),
        timestamp=datetime.now(UTC),
        duplicate_of=None if created else image.image_id,
    )


def _image_or_404(services: Services, tenant_id: str, image_id: uuid.UUID) -> Image:
    with services.db.connection() as conn:
        image = images.get(conn, image_id, tenant_id)
    if image is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no image {image_id} for this tenant")
    return image


@router.get("/{image_id}/status", response_model=StatusView, response_model_exclude_none=True)
def image_status(image_id: uuid.UUID, tenant: TenantDep, services: ServicesDep) -> dict[str, Any]:
    """Where the image is in processing: `status`, `processingSteps[]`, `percentComplete`."""
    image = _image_or_404(services, tenant.tenant_id, image_id)
    return status_view(image, datetime.now(UTC))


@router.get("/{image_id}", response_model=ImageDetails)
def image_details(image_id: uuid.UUID, tenant: TenantDep, services: ServicesDep) -> ImageDetails:
    """What was stored about the image."""
    image = _image_or_404(services, tenant.tenant_id, image_id)
    return ImageDetails(
        image_id=image.image_id,
        tenant_id=image.tenant_id,
        file_name=image.file_name,
        content_type=image.content_type,
        file_size=image.file_size,
        width=image.width,
        height=image.height,
        uploaded_by=image.uploaded_by,
        metadata=image.metadata,
        uploaded_at=image.uploaded_at,
        status=image.status,
        sha256=image.sha256,
        failure_reason=image.failure_reason,
        indexed_at=image.indexed_at,
    )
