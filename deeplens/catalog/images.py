"""Image rows and their processing status.

Status moves ``uploaded`` (row written) → ``queued`` (event on Kafka) → ``processing`` (a run
picked it up) → ``completed`` (searchable) or ``failed`` (with a reason). Every transition that
ends processing writes its event to the outbox in the same transaction, so an event is
published exactly when the status changes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from deeplens import events

TERMINAL = ("completed", "failed")


@dataclass(frozen=True)
class Image:
    image_id: uuid.UUID
    tenant_id: str
    sha256: str
    blob_key: str
    file_name: str
    content_type: str
    file_size: int
    width: int
    height: int
    uploaded_by: str | None
    metadata: dict[str, Any]
    status: str
    failure_reason: str | None
    event_id: uuid.UUID
    correlation_id: uuid.UUID
    uploaded_at: datetime
    processing_started_at: datetime | None
    embedded_at: datetime | None
    indexed_at: datetime | None
    updated_at: datetime


_COLUMNS = ", ".join(Image.__dataclass_fields__)


@dataclass(frozen=True)
class NewImage:
    tenant_id: str
    sha256: str
    blob_key: str
    file_name: str
    content_type: str
    file_size: int
    width: int
    height: int
    uploaded_by: str | None
    metadata: dict[str, Any]


def find_by_sha(conn: psycopg.Connection, tenant_id: str, sha256: str) -> Image | None:
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM deeplens.images WHERE tenant_id = %s AND sha256 = %s",
            (tenant_id, sha256),
        )
        return cur.fetchone()


def insert_with_event(conn: psycopg.Connection, new: NewImage) -> tuple[Image, bool]:
    """Write the image row and its ``image.uploaded`` outbox row in one transaction.

    Returns ``(image, created)``; when the same bytes were already uploaded to the tenant,
    the existing image comes back with ``created=False`` and nothing is written.
    """
    image_id = uuid.uuid4()
    event_id = uuid.uuid4()
    with conn.transaction(), conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"""INSERT INTO deeplens.images (image_id, tenant_id, sha256, blob_key, file_name,
                content_type, file_size, width, height, uploaded_by, metadata, status,
                event_id, correlation_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'uploaded', %s, %s)
            ON CONFLICT (tenant_id, sha256) DO NOTHING
            RETURNING {_COLUMNS}""",
            (
                image_id,
                new.tenant_id,
                new.sha256,
                new.blob_key,
                new.file_name,
                new.content_type,
                new.file_size,
                new.width,
                new.height,
                new.uploaded_by,
                Jsonb(new.metadata),
                event_id,
                event_id,
            ),
        )
        row = cur.fetchone()
        if row is None:
            existing = find_by_sha(conn, new.tenant_id, new.sha256)
            assert existing is not None
            return existing, False
        enqueue(conn, events.TOPIC_UPLOADED, new.tenant_id, uploaded_event(row))
    return row, True


def uploaded_event(image: Image) -> events.ImageUploaded:
    return events.ImageUploaded(
        event_id=image.event_id,
        tenant_id=image.tenant_id,
        correlation_id=image.correlation_id,
        timestamp=image.uploaded_at,
        data=events.ImageUploadedData(
            image_id=image.image_id,
            file_path=image.blob_key,
            file_name=image.file_name,
            file_size=image.file_size,
            content_type=image.content_type,
            width=image.width,
            height=image.height,
        ),
    )


def requeue_unfinished(conn: psycopg.Connection, idle_seconds: float = 0) -> int:
    """Publish ``image.uploaded`` again for images not yet completed or failed.

    With ``idle_seconds=0``, every such image: for a broker that lost its log (the embedded one
    keeps it in memory). Otherwise only images whose row has not changed for that long: an
    event lost on the way (or a run that never started) must not leave an image waiting
    forever. Processing is idempotent, so a second event costs a little work and loses nothing.
    """
    with conn.transaction(), conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"UPDATE deeplens.images SET updated_at = now() WHERE image_id IN ("
            f" SELECT image_id FROM deeplens.images"
            f" WHERE status IN ('queued', 'processing')"
            f" AND updated_at < now() - make_interval(secs => %s)"
            f" FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
            (idle_seconds,),
        )
        rows = cur.fetchall()
        for image in rows:
            enqueue(conn, events.TOPIC_UPLOADED, image.tenant_id, uploaded_event(image))
    return len(rows)


def enqueue(conn: psycopg.Connection, topic: str, key: str, event: events.Envelope) -> None:
    conn.execute(
        "INSERT INTO deeplens.outbox (topic, key, payload) VALUES (%s, %s, %s)",
        (topic, key, Jsonb(event.model_dump(mode="json", by_alias=True, exclude_none=True))),
    )


def get(
    conn: psycopg.Connection, image_id: uuid.UUID, tenant_id: str | None = None
) -> Image | None:
    sql = f"SELECT {_COLUMNS} FROM deeplens.images WHERE image_id = %s"
    params: tuple[Any, ...] = (image_id,)
    if tenant_id is not None:
        sql += " AND tenant_id = %s"
        params = (image_id, tenant_id)
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def get_many(conn: psycopg.Connection, tenant_id: str, image_ids: list[uuid.UUID]) -> list[Image]:
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM deeplens.images WHERE tenant_id = %s AND image_id = ANY(%s)",
            (tenant_id, image_ids),
        )
        return cur.fetchall()


def for_tenant(conn: psycopg.Connection, tenant_id: str, statuses: tuple[str, ...]) -> list[Image]:
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM deeplens.images WHERE tenant_id = %s AND status = ANY(%s)"
            " ORDER BY uploaded_at",
            (tenant_id, list(statuses)),
        )
        return cur.fetchall()


def mark_queued(conn: psycopg.Connection, image_ids: list[uuid.UUID]) -> None:
    conn.execute(
        "UPDATE deeplens.images SET status = 'queued', updated_at = now()"
        " WHERE image_id = ANY(%s) AND status = 'uploaded'",
        (image_ids,),
    )


def mark_processing(conn: psycopg.Connection, image_ids: list[uuid.UUID]) -> None:
    conn.execute(
        "UPDATE deeplens.images SET status = 'processing', failure_reason = NULL,"
        " processing_started_at = coalesce(processing_started_at, now()), updated_at = now()"
        " WHERE image_id = ANY(%s) AND status <> 'completed'",
        (image_ids,),
    )


def mark_embedded(conn: psycopg.Connection, image_ids: list[uuid.UUID]) -> None:
    conn.execute(
        "UPDATE deeplens.images SET embedded_at = now(), updated_at = now()"
        " WHERE image_id = ANY(%s) AND status <> 'completed'",
        (image_ids,),
    )


def mark_completed(
    conn: psycopg.Connection, tenant_id: str, image_ids: list[uuid.UUID]
) -> list[Image]:
    """Images that became searchable now (already-completed ones are left alone)."""
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"UPDATE deeplens.images SET status = 'completed', indexed_at = now(),"
            f" failure_reason = NULL, updated_at = now()"
            f" WHERE tenant_id = %s AND image_id = ANY(%s) AND status <> 'completed'"
            f" RETURNING {_COLUMNS}",
            (tenant_id, image_ids),
        )
        return cur.fetchall()


def mark_failed(
    conn: psycopg.Connection, tenant_id: str, failures: dict[uuid.UUID, str]
) -> list[Image]:
    """Mark images failed with their reasons; completed images are never downgraded."""
    changed: list[Image] = []
    with conn.cursor(row_factory=class_row(Image)) as cur:
        for image_id, reason in failures.items():
            cur.execute(
                f"UPDATE deeplens.images SET status = 'failed', failure_reason = %s,"
                f" updated_at = now() WHERE tenant_id = %s AND image_id = %s"
                f" AND status <> 'completed' RETURNING {_COLUMNS}",
                (reason[:2000], tenant_id, image_id),
            )
            row = cur.fetchone()
            if row is not None:
                changed.append(row)
    return changed


def count_by_status(conn: psycopg.Connection, tenant_id: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM deeplens.images WHERE tenant_id = %s GROUP BY status",
        (tenant_id,),
    ).fetchall()
    return {str(status): int(n) for status, n in rows}
