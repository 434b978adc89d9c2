"""An image's status view: ``status``, ``processingSteps[]``, ``percentComplete``; while
infrastructure faults are retried, also ``attempts``, ``lastError`` and ``nextAttemptAt``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from deeplens.catalog.images import Image
from deeplens.events import ProcessingStep

StepState = Literal["pending", "in_progress", "completed", "failed"]


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds() * 1000))


def processing_steps(image: Image, now: datetime) -> list[ProcessingStep]:
    """Steps with their durations in ms; a step under way reports its time so far."""
    failed = image.status == "failed"
    started = image.processing_started_at
    active: StepState = "failed" if failed else "in_progress"
    steps = [ProcessingStep(step="upload", status="completed", duration=0)]

    if started is None:
        steps.append(
            ProcessingStep(step="queued", status=active, duration=_ms(image.uploaded_at, now))
        )
        steps.append(ProcessingStep(step="feature_extraction", status="pending"))
        steps.append(ProcessingStep(step="vector_indexing", status="pending"))
        return steps
    steps.append(
        ProcessingStep(step="queued", status="completed", duration=_ms(image.uploaded_at, started))
    )

    if image.embedded_at is None:
        end = image.updated_at if failed else now
        steps.append(
            ProcessingStep(step="feature_extraction", status=active, duration=_ms(started, end))
        )
        steps.append(ProcessingStep(step="vector_indexing", status="pending"))
        return steps
    steps.append(
        ProcessingStep(
            step="feature_extraction", status="completed", duration=_ms(started, image.embedded_at)
        )
    )
    if image.indexed_at is not None:
        steps.append(
            ProcessingStep(
                step="vector_indexing",
                status="completed",
                duration=_ms(image.embedded_at, image.indexed_at),
            )
        )
    else:
        end = image.updated_at if failed else now
        steps.append(
            ProcessingStep(
                step="vector_indexing", status=active, duration=_ms(image.embedded_at, end)
            )
        )
    return steps


def percent_complete(image: Image) -> int:
    if image.status == "completed":
        return 100
    if image.status == "retrying":
        return 25 if image.embedded_at is None else 75
    if image.embedded_at is not None:
        return 75
    if image.processing_started_at is not None:
        return 50
    if image.status == "queued":
        return 25
    return 10


def status_view(image: Image, now: datetime) -> dict[str, Any]:
    view: dict[str, Any] = {
        "success": image.status != "failed",
        "imageId": str(image.image_id),
        "status": image.status,
        "processingSteps": [
            s.model_dump(by_alias=True, exclude_none=True) for s in processing_steps(image, now)
        ],
        "percentComplete": percent_complete(image),
        "uploadedAt": image.uploaded_at.isoformat(),
        "lastUpdated": image.updated_at.isoformat(),
    }
    if image.indexed_at is not None and image.status == "completed":
        view["searchableAfter"] = image.indexed_at.isoformat()
        view["totalProcessingTimeMs"] = _ms(image.uploaded_at, image.indexed_at)
    if image.failure_reason:
        view["reason"] = image.failure_reason
    if image.attempts:
        view["attempts"] = image.attempts
    if image.status == "retrying":
        view["lastError"] = image.last_error
        if image.next_attempt_at is not None:
            view["nextAttemptAt"] = image.next_attempt_at.isoformat()
    return view
