"""Uploads, and an image's details and processing status.

An upload is validated completely before anything is written; then its bytes go to the blob
store (content-addressed) and its row and ``image.uploaded`` event to Postgres in one
transaction. The outbox relay publishes the event; this route never talks to Kafka.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from anyio import to_thread
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from opentelemetry import trace
from psycopg_pool import ConnectionPool

from deeplens import jsontext, logs, tracing
from deeplens.blobs import BlobStore, sha256_hex
from deeplens.catalog import embeddings as stored_vectors
from deeplens.catalog import images, retries, tenants
from deeplens.catalog import models as tenant_models
from deeplens.catalog.images import Image, NewImage
from deeplens.catalog.keys import Identity
from deeplens.naming import collection_alias
from deeplens.settings import Settings
from deeplens.status import status_view
from search_api import forms, validation
from search_api.deps import (
    BlobsDep,
    DbDep,
    IdentityDep,
    KeysDep,
    SettingsDep,
    TenantDep,
    UploadLimiterDep,
    check_tenant_field,
    confirm_tenant,
)
from search_api.errors import ServiceUnavailable
from search_api.schemas import (
    ImageDetails,
    ImageLineage,
    LineageEntry,
    RetryAccepted,
    StatusView,
    UploadAccepted,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/images", tags=["images"])

ESTIMATED_PROCESSING_SECONDS = 5

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Empty, damaged or truncated image, or invalid metadata or text"},
    401: {"description": "Missing or unknown API key"},
    403: {"description": "tenantId does not match the API key"},
    413: {"description": "File over the size limit, or too many pixels (decompression bomb)"},
    429: {"description": "Over the tenant's upload rate or its quota of images or bytes"},
    415: {"description": "Not an accepted image format"},
}


def status_url(image_id: uuid.UUID) -> str:
    return f"/api/v1/images/{image_id}/status"


def websocket_url(image_id: uuid.UUID) -> str:
    return f"/hub/processing-status?imageId={image_id}"


# The form `upload_image` reads (documented here, parsed by `search_api.forms`).
UPLOAD_FORM = forms.image_form_schema(
    "Upload",
    "The image (JPEG, PNG, WebP, GIF, BMP).",
    {
        "uploadedBy": {"type": "string", "description": "Who uploaded it."},
        "metadata": {
            "type": "string",
            "description": (
                "A JSON object stored with the image (UTF-8, at most "
                f"{validation.MAX_METADATA_BYTES:,} bytes and {jsontext.MAX_DEPTH} levels deep; "
                "finite numbers, whole ones within 64 bits; no NUL or lone surrogate in strings; "
                "each key once)."
            ),
        },
        "tenantId": {"type": "string", "description": "Optional; must be the key's tenant."},
    },
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadAccepted,
    response_model_exclude_none=True,
    responses={
        200: {"model": UploadAccepted, "description": "Already uploaded"},
        422: {"description": "Not a multipart/form-data body, or no part named 'file'"},
        **_ERRORS,
    },
    openapi_extra=UPLOAD_FORM,
)
async def upload_image(
    request: Request,
    identity: IdentityDep,
    settings: SettingsDep,
    db: DbDep,
    blobs: BlobsDep,
    limiter: UploadLimiterDep,
) -> Response:
    """Accept an image for indexing: 202 at once, processing continues in the background.

    The same bytes uploaded again to the tenant answer 200 with the existing image
    (`duplicateOf`) and change nothing.
    """
    started = time.perf_counter()
    body = await request.body()  # bounded by `BodySizeLimit`
    content_type = request.headers.get("content-type", "")
    store = Store(settings=settings, db=db, blobs=blobs)
    work = functools.partial(accept_upload, store, identity, content_type, body, started)
    return await to_thread.run_sync(work, limiter=limiter)


@dataclass(frozen=True)
class Store:
    """Where an accepted upload goes."""

    settings: Settings
    db: ConnectionPool
    blobs: BlobStore


def accept_upload(
    store: Store, identity: Identity, content_type: str, body: bytes, started: float
) -> Response:
    """Validate the form completely, then store the bytes, the row and its event."""
    tenant = identity.tenant
    form, file = forms.read_image_form(content_type, body)
    check_tenant_field(tenant, form.text("tenantId"))
    meta = validation.parse_metadata(form.value("metadata"))
    uploader = validation.clean_text(
        form.value("uploadedBy"), "uploadedBy", validation.MAX_UPLOADED_BY_CHARS
    )
    data = file.data
    validation.check_size(len(data), store.settings.max_upload_bytes)
    info = validation.inspect_image(data)
    name = validation.file_name(file.filename, info.mime)
    digest = sha256_hex(data)
    _check_quota(store.db, identity, digest, len(data))

    new = NewImage(
        tenant_id=tenant.tenant_id,
        sha256=digest,
        # Content-addressed: the same bytes again (a duplicate) write nothing, unless the
        # stored copy is missing or partial, which this repairs.
        blob_key=_put_blob(store.blobs, tenant.tenant_id, data, digest),
        file_name=name,
        content_type=info.mime,
        file_size=len(data),
        width=info.width,
        height=info.height,
        uploaded_by=uploader,
        metadata=meta,
    )
    try:
        with store.db.connection() as conn:
            image, created = images.insert_with_event(conn, new)
    except psycopg.errors.ForeignKeyViolation as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"tenant {tenant.tenant_id!r} no longer exists; its API key is void",
        ) from exc
    except psycopg.Error as exc:
        if exc.sqlstate != tenants.QUOTA_EXCEEDED:
            raise
        raise _over_quota(str(exc.diag.message_primary)) from exc
    log.debug(
        "image %s of tenant %s %s",
        image.image_id,
        tenant.tenant_id,
        "accepted" if created else f"is already stored ({image.status})",
        extra=logs.correlation(image.correlation_id),
    )
    # The request's span names the image: its trace goes on through the outbox row's context.
    trace.get_current_span().set_attributes(
        {
            tracing.CORRELATION_ID: str(image.correlation_id),
            tracing.IMAGE_ID: str(image.image_id),
            tracing.TENANT_ID: tenant.tenant_id,
        }
    )

    retried = False
    if not created and image.status == "failed":
        # The same bytes as a failed image: the upload repairs its stored copy (whatever
        # happened to it) and retries it.
        _put_blob(store.blobs, tenant.tenant_id, data, digest, force=True)
        with store.db.connection() as conn:
            again = retries.retry_failed(conn, tenant.tenant_id, [image.image_id])
        if again:
            image, retried = again[0], True
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    if created:
        message = "Image uploaded successfully. Processing started in background."
    elif retried:
        message = f"These bytes are image {image.image_id}, which had failed: it is retried."
    else:
        message = (
            f"These bytes were already uploaded as image {image.image_id}; nothing new was stored."
        )
    answer = UploadAccepted(
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
        duplicate_of=None if created or retried else image.image_id,
    )
    return Response(
        answer.model_dump_json(by_alias=True, exclude_none=True),
        status_code=status.HTTP_202_ACCEPTED if created or retried else status.HTTP_200_OK,
        media_type="application/json",
    )


def _check_quota(db: ConnectionPool, identity: Identity, digest: str, size: int) -> None:
    """429 before anything is stored when one more image of `size` bytes would take the tenant
    over its quota (bytes it already holds are a duplicate and take nothing). Uploads racing
    for the last place are decided exactly by the catalog's insert trigger."""
    if identity.limits.max_images is None and identity.limits.max_bytes is None:
        return
    tenant_id = identity.tenant.tenant_id
    with db.connection() as conn:
        found = tenants.limits_and_usage(conn, tenant_id)
        if found is None:
            return  # a deleted tenant: the insert answers
        limits, usage = found
        over = None
        if limits.max_images is not None and usage.images + 1 > limits.max_images:
            over = f"{limits.max_images:,} images"
        elif limits.max_bytes is not None and usage.bytes + size > limits.max_bytes:
            over = f"{limits.max_bytes:,} bytes"
        if over is None or images.find_by_sha(conn, tenant_id, digest) is not None:
            return
    raise _over_quota(f"tenant {tenant_id!r} is at its quota of {over}")


def _over_quota(reason: str) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"{reason}; nothing was stored: delete images, or ask the operator to raise the "
        "tenant's maxImages / maxBytes",
        headers={"Retry-After": "60"},
    )


def _put_blob(
    blobs: BlobStore, tenant_id: str, data: bytes, digest: str, force: bool = False
) -> str:
    """The bytes, durably stored; 503 with `Retry-After` (nothing written) when the store can't
    take them: a full disk, a store that is down."""
    try:
        return blobs.put(tenant_id, data, digest, force)
    except OSError as exc:
        log.warning("blob store refused an upload of tenant %s: %s", tenant_id, exc)
        raise ServiceUnavailable(
            f"the image store cannot take the upload right now ({exc.strerror or exc}); "
            "nothing was stored, try again shortly"
        ) from exc


def _image_or_404(db: DbDep, keys: KeysDep, tenant: TenantDep, image_id: uuid.UUID) -> Image:
    """The key's tenant's image named in the path; 404 when it has none of that id."""
    with db.connection() as conn:
        image = images.get(conn, image_id, tenant.tenant_id)
    if image is None:
        confirm_tenant(db, keys, tenant)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no image {image_id} for this tenant")
    return image


ImageDep = Annotated[Image, Depends(_image_or_404)]


@router.get("/{image_id}/status", response_model=StatusView, response_model_exclude_none=True)
def image_status(image: ImageDep) -> dict[str, Any]:
    """Where the image is in processing: `status`, `processingSteps[]`, `percentComplete`."""
    return status_view(image, datetime.now(UTC))


@router.post(
    "/{image_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetryAccepted,
    responses={
        404: {"description": "No such image for this tenant"},
        409: {"description": "The image has not failed"},
    },
)
def retry_image(image: ImageDep, db: DbDep) -> RetryAccepted:
    """Process a failed image again (with a fresh retry budget); 409 unless it has failed."""
    if image.status != "failed":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"image {image.image_id} is {image.status!r}, not 'failed': only a failed image is "
            "retried by hand (one that meets an infrastructure fault is retried automatically)",
        )
    with db.connection() as conn:
        again = retries.retry_failed(conn, image.tenant_id, [image.image_id])
    return RetryAccepted(
        image_id=image.image_id,
        status=again[0].status if again else image.status,
        status_check_url=status_url(image.image_id),
        message="The image is queued for processing again.",
    )


@router.get("/{image_id}/lineage", response_model=ImageLineage)
def image_lineage(image: ImageDep, db: DbDep, settings: SettingsDep) -> ImageLineage:
    """Which run indexed the image, with which model and version, into which physical
    collection: the serving model's entry at the top level, and one entry per stored vector
    (each model, and each version kept until it is retired), with a link to the run in the
    Dagster UI."""
    with db.connection() as conn:
        found = stored_vectors.lineage(conn, image.image_id)
        tenant = tenants.get(conn, image.tenant_id)
        held = {m.model: m for m in tenant_models.of_tenant(conn, image.tenant_id)}
    serving_model = tenant.model if tenant is not None else None
    ui = (settings.dagster_ui_url or "").rstrip("/")
    entries = [
        LineageEntry(
            model=e.model,
            model_version=e.model_version,
            run_id=e.run_id,
            collection=e.collection,
            alias=held[e.model].alias
            if e.model in held
            else collection_alias(image.tenant_id, e.model),
            indexed_at=e.indexed_at,
            embedded_at=e.embedded_at,
            run_url=f"{ui}/runs/{e.run_id}" if ui and e.run_id else None,
            partition=image.tenant_id,
            serving=e.model == serving_model
            and (e.model not in held or held[e.model].model_version in (None, e.model_version)),
        )
        for e in found
    ]
    top = next((e for e in entries if e.serving and e.indexed_at), None)
    return ImageLineage(
        image_id=image.image_id,
        tenant_id=image.tenant_id,
        status=image.status,
        models=entries,
        **(
            {
                "run_id": top.run_id,
                "model": top.model,
                "model_version": top.model_version,
                "collection": top.collection,
                "indexed_at": top.indexed_at,
                "run_url": top.run_url,
            }
            if top
            else {}
        ),
    )


@router.get("/{image_id}", response_model=ImageDetails)
def image_details(image: ImageDep) -> ImageDetails:
    """What was stored about the image."""
    return ImageDetails.of(image)
