"""Request and response bodies, in the seeds' camelCase JSON."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from search_api.validation import shown_safely

# Free text a person gave (a tenant's name, a key's label), stored and shown as
# `shown_safely` leaves it: no control, bidi or lone surrogate characters.
SafeText = Annotated[str, AfterValidator(lambda text: shown_safely(text).strip())]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# -- tenants ---------------------------------------------------------------------------------


class TenantCreate(ApiModel):
    tenant_id: str = Field(examples=["acme-corp"], max_length=200)
    name: SafeText | None = Field(
        None, max_length=200, description="Display name (default: the id)."
    )


class LimitsBody(ApiModel):
    """A tenant's limits; null means no limit. Rates are per second, shared by all the tenant's
    keys; `readsPerSecond` counts every request that is neither an upload nor a search."""

    uploads_per_second: int | None = Field(None, ge=1, examples=[50])
    searches_per_second: int | None = Field(None, ge=1, examples=[20])
    reads_per_second: int | None = Field(None, ge=1, examples=[200])
    max_images: int | None = Field(None, ge=0, examples=[1_000_000])
    max_bytes: int | None = Field(None, ge=0, examples=[107_374_182_400])


class Usage(ApiModel):
    images: int
    bytes: int


class TenantCreated(ApiModel):
    tenant_id: str
    name: str
    api_key: str = Field(description="Shown once: only its hash is stored.")
    key_id: str = Field(description="The key's id, to list or revoke it.")
    collection: str = Field(description="The Qdrant alias the tenant's vectors live behind.")
    model: str
    created_at: datetime
    limits: LimitsBody


class TenantDetail(ApiModel):
    tenant_id: str
    name: str
    collection: str
    model: str
    created_at: datetime
    limits: LimitsBody
    usage: Usage
    images_by_status: dict[str, int]
    keys: int = Field(description="How many API keys the tenant has.")
    alias_target: str | None = Field(
        None, description="The physical collection the alias serves (null: Qdrant didn't say)."
    )
    points: int | None = Field(
        None, description="Vectors in that collection (null: Qdrant didn't say)."
    )
    models: list[str] = Field(
        default_factory=list, description="The models the tenant holds (not retired)."
    )


class KeyCreate(ApiModel):
    label: SafeText = Field("", max_length=200, examples=["ci uploader"])
    read_only: bool = Field(False, description="Search and read only: no upload, delete, retry.")


class KeyInfo(ApiModel):
    key_id: str
    label: str
    read_only: bool
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="When an API process last looked the key up (at most 30 s behind its use)."
    )


class KeyCreated(KeyInfo):
    tenant_id: str
    api_key: str = Field(description="Shown once: only its hash is stored.")


class KeyList(ApiModel):
    keys: list[KeyInfo]


class TenantSummary(ApiModel):
    tenant_id: str
    name: str
    collection: str
    model: str
    created_at: datetime
    image_count: int
    images_by_status: dict[str, int]


class TenantList(ApiModel):
    tenants: list[TenantSummary]


class TenantDeleted(ApiModel):
    tenant_id: str
    deleted: bool = True
    collections_dropped: list[str]


# -- a tenant's models --------------------------------------------------------------------------


class ModelAdd(ApiModel):
    model: str = Field(
        examples=["efficientnet_lite2"], max_length=64, description="A registered model."
    )
    serve: bool = Field(
        False,
        description="Serve search with it once its index is built and passes the retrieval check.",
    )


class TenantModelInfo(ApiModel):
    model: str
    collection: str = Field(description="The model's alias, tenant_{id}_{model}_vectors.")
    state: str = Field(description="pending, ready, rejected or retired.")
    serving: bool
    serve_when_verified: bool
    model_version: str | None = Field(description="The version its live index was built with.")
    physical_collection: str | None
    candidate: str | None = Field(description="A rebuilt collection awaiting its check.")
    last_check: dict[str, Any] | None
    added_at: datetime
    built_at: datetime | None
    registered_version: str | None = Field(
        description="The registered file's version now (null: no longer registered); differs "
        "from modelVersion until the tenant is rebuilt."
    )


class TenantModels(ApiModel):
    tenant_id: str
    serving_model: str
    models: list[TenantModelInfo]
    rebuild: str = Field(description="How to build or rebuild a model's index.")


class LineageEntry(ApiModel):
    model: str
    model_version: str
    run_id: str | None
    collection: str | None = Field(description="The physical collection holding the vector.")
    alias: str
    indexed_at: datetime | None
    embedded_at: datetime
    run_url: str | None
    partition: str
    serving: bool


class ImageLineage(ApiModel):
    """The serving model's entry at the top level, and one entry per stored vector."""

    image_id: uuid.UUID
    tenant_id: str
    status: str
    run_id: str | None = None
    model: str | None = None
    model_version: str | None = None
    collection: str | None = None
    indexed_at: datetime | None = None
    run_url: str | None = None
    models: list[LineageEntry]


# -- images ----------------------------------------------------------------------------------


class UploadAccepted(ApiModel):
    success: bool = True
    image_id: uuid.UUID
    status: str
    message: str
    upload_time_ms: int
    estimated_processing_time_seconds: int
    status_check_url: str
    web_socket_url: str
    timestamp: datetime
    duplicate_of: uuid.UUID | None = Field(
        None, description="Set when the same bytes were already uploaded: that image's id."
    )


class ImageDetails(ApiModel):
    image_id: uuid.UUID
    tenant_id: str
    file_name: str
    content_type: str
    file_size: int
    width: int
    height: int
    uploaded_by: str | None
    metadata: dict[str, Any]
    uploaded_at: datetime
    status: str
    sha256: str
    failure_reason: str | None = None
    indexed_at: datetime | None = None
    content_url: str = Field(description="The original bytes.")
    thumbnail_url: str = Field(description="A JPEG thumbnail (256 px; `?size=` for others).")

    @classmethod
    def of(cls, image: Any) -> ImageDetails:
        """The details of a catalog `Image` row."""
        return cls(
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
            content_url=content_url(image.image_id),
            thumbnail_url=thumbnail_url(image.image_id),
        )


class ImageList(ApiModel):
    items: list[ImageDetails]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


def content_url(image_id: uuid.UUID) -> str:
    return f"/api/v1/images/{image_id}/content"


def thumbnail_url(image_id: uuid.UUID, size: int = 256) -> str:
    return f"/api/v1/images/{image_id}/thumbnail?size={size}"


class StepView(ApiModel):
    step: str
    status: str
    duration: int | None = Field(None, description="milliseconds")


class StatusView(ApiModel):
    """`deeplens.status.status_view`, documented; fields it adds later pass through."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    success: bool
    image_id: str
    status: str
    processing_steps: list[StepView]
    percent_complete: int
    uploaded_at: str
    last_updated: str
    searchable_after: str | None = None
    total_processing_time_ms: int | None = None
    reason: str | None = Field(None, description="Why the image failed.")
    attempts: int | None = Field(
        None, description="Attempts that met an infrastructure fault (retried automatically)."
    )
    last_error: str | None = Field(None, description="While `retrying`: the last fault.")
    next_attempt_at: str | None = Field(None, description="While `retrying`: the next attempt.")


class RetryAccepted(ApiModel):
    image_id: uuid.UUID
    status: str
    status_check_url: str
    message: str


class TenantRetried(ApiModel):
    tenant_id: str
    retried: int
    image_ids: list[uuid.UUID]


class TenantRolledBack(ApiModel):
    tenant_id: str
    collection_alias: str
    collection: str = Field(description="The physical collection the alias points at now.")
    replaced: str = Field(description="The collection it pointed at before (kept, retired).")
    caught_up: int = Field(description="Images indexed since the swap, copied back in.")


# -- search ----------------------------------------------------------------------------------


class SearchHit(ApiModel):
    image_id: uuid.UUID
    score: float
    file_name: str
    content_type: str
    file_size: int
    width: int
    height: int
    uploaded_by: str | None
    uploaded_at: datetime
    metadata: dict[str, Any]
    content_url: str
    thumbnail_url: str

    @classmethod
    def of(cls, image: Any, score: float) -> SearchHit:
        """A hit: the catalog `Image` row it found, and its score."""
        return cls(
            image_id=image.image_id,
            score=score,
            file_name=image.file_name,
            content_type=image.content_type,
            file_size=image.file_size,
            width=image.width,
            height=image.height,
            uploaded_by=image.uploaded_by,
            uploaded_at=image.uploaded_at,
            metadata=image.metadata,
            content_url=content_url(image.image_id),
            thumbnail_url=thumbnail_url(image.image_id),
        )


class SearchResponse(ApiModel):
    results: list[SearchHit]
    model: str
    collection: str
    took_ms: float
    cached: bool
    query_image_id: uuid.UUID | None = None
