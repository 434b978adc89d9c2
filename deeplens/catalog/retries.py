"""Images whose processing met an infrastructure fault: retried with backoff, within a budget.

An image's own fault (it can't be decoded, it fails a check) fails it at once; an infrastructure
fault (Qdrant, Postgres or the blob store unavailable, a run worker killed or hung) moves it to
``retrying`` with its attempt count, the last error and the time of its next attempt. The
reconciler takes due images up again. Only once the budget (counted from the first fault of the
streak) is spent does an image end ``failed``, with a reason that says so; its owner can still
retry it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row

from deeplens import events
from deeplens.catalog import images
from deeplens.catalog.images import COLUMNS, Image
from deeplens.settings import Settings

WAITING = ("uploaded", "queued", "processing", "retrying")


@dataclass(frozen=True)
class RetryPolicy:
    budget_seconds: float
    backoff_seconds: float
    backoff_max_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> RetryPolicy:
        return cls(
            budget_seconds=settings.retry_budget_seconds,
            backoff_seconds=settings.retry_backoff_seconds,
            backoff_max_seconds=settings.retry_backoff_max_seconds,
        )

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1, 2, ...)."""
        return float(
            min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1))
        )


@dataclass
class Retried:
    retrying: list[Image]
    gave_up: list[Image]


def retry_later(
    conn: psycopg.Connection,
    tenant_id: str,
    image_ids: list[uuid.UUID],
    error: str,
    policy: RetryPolicy,
    run_id: str | None = None,
) -> Retried:
    """Count a failed attempt for each waiting image of `image_ids`: `retrying`, or `failed`
    once the budget is spent. Completed and failed images are left alone, and so, with
    `run_id`, are images that another run has taken up since."""
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"""UPDATE deeplens.images SET
                    attempts = attempts + 1,
                    last_error = %(error)s::text,
                    retry_since = coalesce(retry_since, now()),
                    status = CASE WHEN now() - coalesce(retry_since, now())
                        >= make_interval(secs => %(budget)s) THEN 'failed' ELSE 'retrying' END,
                    next_attempt_at = now() + make_interval(secs => least(%(max)s,
                        %(base)s * power(2, attempts))),
                    failure_reason = CASE WHEN now() - coalesce(retry_since, now())
                        >= make_interval(secs => %(budget)s)
                        THEN format('gave up after %%s attempts over %%s min of infrastructure '
                                    'faults; the last: %%s', attempts + 1,
                                    round(extract(epoch FROM now()
                                        - coalesce(retry_since, now())) / 60),
                                    %(error)s::text)
                        ELSE NULL END,
                    updated_at = now()
                WHERE tenant_id = %(tenant)s AND image_id = ANY(%(ids)s)
                    AND status = ANY(%(waiting)s)
                    AND (%(run)s::text IS NULL OR run_id IS NULL OR run_id = %(run)s::text)
                RETURNING {COLUMNS}""",
            {
                "error": error[:2000],
                "budget": policy.budget_seconds,
                "max": policy.backoff_max_seconds,
                "base": policy.backoff_seconds,
                "tenant": tenant_id,
                "ids": image_ids,
                "waiting": list(WAITING),
                "run": run_id,
            },
        )
        rows = cur.fetchall()
    return Retried(
        retrying=[r for r in rows if r.status == "retrying"],
        gave_up=[r for r in rows if r.status == "failed"],
    )


LEASE_SECONDS = 600.0


def claim_due(
    conn: psycopg.Connection, limit: int = 10_000, lease_seconds: float = LEASE_SECONDS
) -> dict[str, list[uuid.UUID]]:
    """Images whose next attempt is due, by tenant, for a new run. They stay `retrying` until
    the run takes them up; if it never does (the claim's run was lost), they are due again
    after `lease_seconds`."""
    rows = conn.execute(
        "UPDATE deeplens.images SET next_attempt_at = now() + make_interval(secs => %s)"
        " WHERE image_id IN (SELECT image_id FROM deeplens.images"
        "   WHERE status = 'retrying' AND next_attempt_at <= now()"
        "   ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)"
        " RETURNING tenant_id, image_id",
        (lease_seconds, limit),
    ).fetchall()
    return _by_tenant(rows)


def waiting_since(
    conn: psycopg.Connection, statuses: tuple[str, ...], older_than_seconds: float
) -> list[Image]:
    """Images in `statuses` whose row has not changed for `older_than_seconds`."""
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"SELECT {COLUMNS} FROM deeplens.images WHERE status = ANY(%s)"
            f" AND updated_at < now() - make_interval(secs => %s) ORDER BY updated_at LIMIT 10000",
            (list(statuses), older_than_seconds),
        )
        return cur.fetchall()


def reset_for_retry(
    conn: psycopg.Connection, tenant_id: str, image_ids: list[uuid.UUID]
) -> list[Image]:
    """A failed image its owner retries: a fresh budget, and back to ``uploaded`` (the caller
    enqueues its upload event again)."""
    with conn.cursor(row_factory=class_row(Image)) as cur:
        cur.execute(
            f"UPDATE deeplens.images SET status = 'uploaded', failure_reason = NULL,"
            f" last_error = NULL, attempts = 0, retry_since = NULL, next_attempt_at = NULL,"
            f" processing_started_at = NULL, embedded_at = NULL, run_id = NULL,"
            f" updated_at = now()"
            f" WHERE tenant_id = %s AND image_id = ANY(%s) AND status = 'failed'"
            f" RETURNING {COLUMNS}",
            (tenant_id, image_ids),
        )
        return cur.fetchall()


def owned_by(conn: psycopg.Connection, run_id: str) -> list[uuid.UUID]:
    """The waiting images that run `run_id` took up."""
    rows = conn.execute(
        "SELECT image_id FROM deeplens.images WHERE run_id = %s AND status = ANY(%s)",
        (run_id, list(WAITING)),
    ).fetchall()
    return [r[0] for r in rows]


def retry_failed(
    conn: psycopg.Connection, tenant_id: str, image_ids: list[uuid.UUID] | None = None
) -> list[Image]:
    """Failed images (of `image_ids`, or all of the tenant's) go round again: a fresh retry
    budget, and their upload event enqueued again, in one transaction."""
    with conn.transaction():
        if image_ids is None:
            rows = conn.execute(
                "SELECT image_id FROM deeplens.images WHERE tenant_id = %s AND status = 'failed'",
                (tenant_id,),
            ).fetchall()
            image_ids = [r[0] for r in rows]
        if not image_ids:
            return []
        reset = reset_for_retry(conn, tenant_id, image_ids)
        for image in reset:
            images.enqueue(conn, events.TOPIC_UPLOADED, tenant_id, images.uploaded_event(image))
    return reset


def _by_tenant(rows: list[tuple[str, uuid.UUID]]) -> dict[str, list[uuid.UUID]]:
    out: dict[str, list[uuid.UUID]] = defaultdict(list)
    for tenant_id, image_id in rows:
        out[tenant_id].append(image_id)
    return dict(out)
