"""Image rows and their processing status.

Status moves ``uploaded`` (row written) → ``queued`` (event on Kafka) → ``processing`` (a run
picked it up) → ``completed`` (searchable) or ``failed`` (with a reason). An infrastructure fault
moves an image to ``retrying`` instead (see `deeplens.catalog.retries`), from where the
reconciler takes it up again. Every transition that ends processing writes its event to the
outbox in the same transaction, so an event is published exactly when the status changes; the
outbox row keeps the trace context it was written in (`deeplens.tracing`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from deeplens import events, tracing

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
    run_id: str | None = None
    attempts: int = 0
    last_error: str | None = None
    retry_since: datetime | None = None
    next_attempt_at: datetime | None = None


COLUMNS = ", ".join(Image.__dataclass_fields__)


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
            f"SELECT {COLUMNS} FROM deeplens.images WHERE tenant_id = %s AND sha256 = %s",
            (tenant_id, sha256),
        )
        return cur.fetchone()


def insert_with_event(conn: psycopg.Connection, new: NewImage) -> tuple[Image, bool]:
    """Write the image row and its ``image.uploaded`` outbox row, atomically.

    Returns ``(image, created)``; when the same bytes were already uploaded to the tenant,
    the existing image comes back with ``created=False`` and nothing is written. One statement,
    so one round trip and one commit on an autocommit connection (the upload path's cost).
    """
    image_id = uuid.uuid4()
    event_id = uuid.uuid4()
    uploaded_at = datetime.now(UTC)
    event = _uploaded_event(new, image_id, event_id, event_id, uploaded_at)
    with conn.cursor(row_factory=class_row(_Inserted)) as cur:
        cur.execute(
            f"""WITH ins AS (
                INSERT INTO deeplens.images (image_id, tenant_id, sha256, blob_key, file_name,
                    content_type, file_size, width, height, uploaded_by, metadata, status,
                    event_id, correlation_id, uploaded_at, updated_at)
                VALUES (%(image_id)s, %(tenant_id)s, %(sha256)s, %(blob_key)s, %(file_name)s,
                    %(content_type)s, %(file_size)s, %(width)s, %(height)s, %(uploaded_by)s,
                    %(metadata)s, 'uploaded', %(event_id)s, %(event_id)s, %(uploaded_at)s,
                    %(uploaded_at)s)
                ON CONFLICT (tenant_id, sha256) DO NOTHING
                RETURNING {COLUMNS}
            ), event AS (
                INSERT INTO deeplens.outbox (topic, key, payload, headers)
                SELECT %(topic)s, %(tenant_id)s, %(payload)s, %(headers)s FROM ins
            )
            SELECT {COLUMNS}, true AS created FROM ins
            UNION ALL
            SELECT {COLUMNS}, false FROM deeplens.images
            WHERE tenant_id = %(tenant_id)s AND sha256 = %(sha256)s
                AND NOT EXISTS (SELECT FROM ins)""",
            {
                "image_id": image_id,
                "tenant_id": new.tenant_id,
                "sha256": new.sha256,
                "blob_key": new.blob_key,
                "file_name": new.file_name,
                "content_type": new.content_type,
                "file_size": new.file_size,
                "width": new.width,
                "height": new.height,
                "uploaded_by": new.uploaded_by,
                "metadata": Jsonb(new.metadata),
                "event_id": event_id,
                "uploaded_at": uploaded_at,
                "topic": events.TOPIC_UPLOADED,
                "payload": Jsonb(_event_json(event)),
                "headers": _headers(),
            },
        )
        row = cur.fetchone()
    if row is None:  # the same bytes, committed by a concurrent upload after this snapshot
        existing = find_by_sha(conn, new.tenant_id, new.sha256)
        if existing is None:
            raise RuntimeError(f"image {new.sha256} of {new.tenant_id!r} conflicted but is gone")
        return existing, False
    return row.image(), row.created


@dataclass(frozen=True)
class _Inserted(Image):
    created: bool = False

    def image(self) -> Image:
        return Image(**{name: getattr(self, name) for name in Image.__dataclass_fields__})


def uploaded_event(image: Image) -> events.ImageUploaded:
    return _uploaded_event(
        image, image.image_id, image.event_id, image.correlation_id, image.uploaded_at
    )


def _uploaded_event(
    image: Image | NewImage,
    image_id: uuid.UUID,
    event_id: uuid.UUID,
    correlation_id: uuid.UUID,
    uploaded_at: datetime,
) -> events.ImageUploaded:
    return events.ImageUploaded(
        event_id=event_id,
        tenant_id=image.tenant_id,
        correlation_id=correlation_id,
        timestamp=uploaded_at,
        data=events.ImageUploadedData(
            image_id=image_id,
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
            f" FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}",
            (idle_seconds,),
        )
        rows = cur.fetchall()
        for image in rows:
            enqueue(conn, events.TOPIC_UPLOADED, image.tenant_id, uploaded_event(image))
    return len(rows)


def enqueue(conn: psycopg.Connection, topic: str, key: str, event: events.Envelope) -> None:
    conn.execute(
        "INSERT INTO deeplens.outbox (topic, key, payload, headers) VALUES (%s, %s, %s, %s)",
        (topic, key, Jsonb(_event_json(event)), _headers()),
    )


def _headers() -> Jsonb | None:
    """The outbox row's Kafka headers: the trace context of the span writing it (none when
    tracing is off), so that its trace goes on through the relay to the run."""
    headers = tracing.carrier()
    return Jsonb(headers) if headers else None


def _event_json(event: events.Envelope) -> dict[str, Any]:
    return event.model_dump(mode="json", by_alias=True, exclude_none=True)


def get(
    conn: psycopg.Connection, image_id: uuid.UUID, tenant_id: str | None = None
) -> Image | None:
    """The image (not one being deleted)."""
    sql = f"SELECT {COLUMNS} FROM deeplens.images WHERE image_id = %s AND status <> 'deleting'"
    params: tuple[Any, ...] = (image_id,)
    if tenant_id is not None:
        sql += " AND tenant_id = %s"
        params = (image_id, tenant_id)
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def get_many(conn: psycopg.Connection, tenant_id: str, image_ids: list[uuid.UUID]) -> list[Image]:
    """The images of `image_ids` that exist (and are not being deleted)."""
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"SELECT {COLUMNS} FROM deeplens.images WHERE tenant_id = %s AND image_id = ANY(%s)"
            f" AND status <> 'deleting'",
            (tenant_id, image_ids),
        )
        return cur.fetchall()


def page(
    conn: psycopg.Connection,
    tenant_id: str,
    where: str,
    params: list[Any],
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    newest_first: bool,
) -> list[Image]:
    """A page of the tenant's images in upload order, `where` (SQL over the images' columns)
    holding, after the keyset `after`: a page never repeats or skips an image, whatever is
    uploaded meanwhile."""
    op, order = ("<", "DESC") if newest_first else (">", "ASC")
    sql = (
        f"SELECT {COLUMNS} FROM deeplens.images WHERE tenant_id = %s AND status <> 'deleting'"
        f" AND ({where})"
    )
    args: list[Any] = [tenant_id, *params]
    if after is not None:
        sql += f" AND (uploaded_at, image_id) {op} (%s, %s)"
        args += [after[0], after[1]]
    sql += f" ORDER BY uploaded_at {order}, image_id {order} LIMIT %s"
    args.append(limit)
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def start_delete(conn: psycopg.Connection, tenant_id: str, image_id: uuid.UUID) -> Image | None:
    """Mark the image `deleting` (hidden from every read, left alone by runs); returns it, or
    None if the tenant has no such image. A deletion that stopped half-way is taken up again."""
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"UPDATE deeplens.images SET status = 'deleting', updated_at = now()"
            f" WHERE tenant_id = %s AND image_id = %s RETURNING {COLUMNS}",
            (tenant_id, image_id),
        )
        return cur.fetchone()


def finish_delete(conn: psycopg.Connection, image_id: uuid.UUID) -> None:
    conn.execute("DELETE FROM deeplens.images WHERE image_id = %s", (image_id,))


def gone(conn: psycopg.Connection, tenant_id: str, image_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Of `image_ids`, those deleted (or being deleted) since a run read them."""
    rows = conn.execute(
        "SELECT image_id FROM deeplens.images WHERE tenant_id = %s AND image_id = ANY(%s)"
        " AND status <> 'deleting'",
        (tenant_id, image_ids),
    ).fetchall()
    alive = {r[0] for r in rows}
    return [i for i in image_ids if i not in alive]


def for_tenant(conn: psycopg.Connection, tenant_id: str, statuses: tuple[str, ...]) -> list[Image]:
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"SELECT {COLUMNS} FROM deeplens.images WHERE tenant_id = %s AND status = ANY(%s)"
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


def mark_processing(
    conn: psycopg.Connection, image_ids: list[uuid.UUID], run_id: str | None = None
) -> None:
    """The run `run_id` took these images up: they are its own until it ends."""
    conn.execute(
        "UPDATE deeplens.images SET status = 'processing', failure_reason = NULL,"
        " processing_started_at = coalesce(processing_started_at, now()), updated_at = now(),"
        " run_id = coalesce(%s, run_id), next_attempt_at = NULL"
        " WHERE image_id = ANY(%s) AND status NOT IN ('completed', 'deleting')",
        (run_id, image_ids),
    )


def mark_embedded(conn: psycopg.Connection, image_ids: list[uuid.UUID]) -> None:
    conn.execute(
        "UPDATE deeplens.images SET embedded_at = now(), updated_at = now()"
        " WHERE image_id = ANY(%s) AND status NOT IN ('completed', 'deleting')",
        (image_ids,),
    )


def mark_completed(
    conn: psycopg.Connection, tenant_id: str, image_ids: list[uuid.UUID]
) -> list[Image]:
    """Images that became searchable now (already-completed ones are left alone)."""
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"UPDATE deeplens.images SET status = 'completed', indexed_at = now(),"
            f" failure_reason = NULL, last_error = NULL, retry_since = NULL,"
            f" next_attempt_at = NULL, updated_at = now()"
            f" WHERE tenant_id = %s AND image_id = ANY(%s)"
            f" AND status NOT IN ('completed', 'deleting') RETURNING {COLUMNS}",
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
                f" AND status NOT IN ('completed', 'deleting') RETURNING {COLUMNS}",
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
