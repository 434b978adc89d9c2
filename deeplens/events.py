"""Kafka topics and the seeds' event envelope (camelCase JSON), validated with pydantic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

TOPIC_UPLOADED = "deeplens.images.uploaded"
TOPIC_COMPLETED = "deeplens.processing.completed"
TOPIC_FAILED = "deeplens.processing.failed"

# Partition counts from the seeds' deployment configuration.
TOPICS: dict[str, int] = {TOPIC_UPLOADED: 6, TOPIC_COMPLETED: 2, TOPIC_FAILED: 2}


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


def utcnow() -> datetime:
    return datetime.now(UTC)


class ImageUploadedData(CamelModel):
    image_id: uuid.UUID
    file_path: str
    file_name: str
    file_size: int = Field(ge=0)
    content_type: str
    width: int | None = None
    height: int | None = None


class ProcessingStep(CamelModel):
    step: str
    status: Literal["pending", "in_progress", "completed", "failed"]
    duration: int | None = Field(None, description="milliseconds")


class ProcessingCompletedData(CamelModel):
    image_id: uuid.UUID
    status: Literal["success"] = "success"
    total_processing_time_ms: int
    searchable_after: datetime
    processing_steps: list[ProcessingStep]
    model_name: str
    model_version: str
    collection: str
    # Lineage: the physical collection behind `collection` and the Dagster run that indexed it.
    physical_collection: str | None = None
    run_id: str | None = None


class ProcessingFailedData(CamelModel):
    image_id: uuid.UUID | None = None
    status: Literal["failed"] = "failed"
    reason: str
    stage: str
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    raw_event: str | None = None


class Envelope(CamelModel):
    event_type: str
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    tenant_id: str
    correlation_id: uuid.UUID
    timestamp: datetime = Field(default_factory=utcnow)
    data: dict[str, Any]


class ImageUploaded(Envelope):
    event_type: Literal["image.uploaded"] = "image.uploaded"
    data: ImageUploadedData  # type: ignore[assignment]


class ProcessingCompleted(Envelope):
    event_type: Literal["processing.completed"] = "processing.completed"
    data: ProcessingCompletedData  # type: ignore[assignment]


class ProcessingFailed(Envelope):
    event_type: Literal["processing.failed"] = "processing.failed"
    data: ProcessingFailedData  # type: ignore[assignment]
