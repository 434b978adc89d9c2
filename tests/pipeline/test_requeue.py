"""Nothing accepted is lost: images that wait too long get their upload event again."""

from __future__ import annotations

import uuid

import psycopg

from deeplens.catalog import images, tenants
from deeplens_local.stack.stack import Stack


def test_idle_unfinished_images_are_requeued_once(stack: Stack) -> None:
    tenant_id = f"requeue-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"], autocommit=True) as conn:
        tenants.create(conn, tenant_id, "R", "m", "a")
        made = []
        for n in range(3):
            new = images.NewImage(
                tenant_id,
                f"{n:064x}",
                f"{tenant_id}/k{n}",
                f"{n}.jpg",
                "image/jpeg",
                10,
                4,
                4,
                None,
                {},
            )
            image, created = images.insert_with_event(conn, new)
            assert created
            made.append(image.image_id)
        # The relay may have sent them already; make them look stuck for an hour.
        conn.execute(
            "UPDATE deeplens.images SET status = CASE WHEN image_id = %s THEN 'completed'"
            " ELSE 'queued' END, updated_at = now() - interval '1 hour' WHERE tenant_id = %s",
            (made[0], tenant_id),
        )

        def outbox_rows() -> int:
            row = conn.execute(
                "SELECT count(*) FROM deeplens.outbox WHERE key = %s AND topic = %s",
                (tenant_id, "deeplens.images.uploaded"),
            ).fetchone()
            return int(row[0]) if row else 0

        before = outbox_rows()
        assert images.requeue_unfinished(conn, idle_seconds=3600 * 2) == 0
        requeued = images.requeue_unfinished(conn, idle_seconds=600)
        assert requeued >= 2  # other tests' stuck images may be requeued too
        assert outbox_rows() == before + 2
        # Their clock was reset: not requeued again on the next pass.
        images.requeue_unfinished(conn, idle_seconds=600)
        assert outbox_rows() == before + 2
