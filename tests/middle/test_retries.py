"""Retry bookkeeping against a real catalog: infrastructure faults move images to `retrying`
with backoff, the budget ends in `failed` with a `processing.failed` event, due images are
claimed once, and an owner's retry starts them over."""

from __future__ import annotations

import psycopg

from deeplens import events, pipeline
from deeplens.blobs import BlobStore
from deeplens.catalog import retries
from deeplens.catalog.images import Image
from tests.middle import seed
from tests.middle.seed import TenantUnderTest

POLICY = retries.RetryPolicy(budget_seconds=3600, backoff_seconds=5, backoff_max_seconds=40)


def uploaded(
    conn: psycopg.Connection, blobs: BlobStore, tenant: TenantUnderTest, n: int
) -> list[Image]:
    return [seed.upload(conn, blobs, tenant.tenant_id, seed.photo(900 + i)) for i in range(n)]


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [POLICY.backoff(n) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 40]


def test_a_fault_moves_images_to_retrying_with_the_error_and_the_next_attempt(
    conn: psycopg.Connection, blob_store: BlobStore, tenant: TenantUnderTest
) -> None:
    rows = uploaded(conn, blob_store, tenant, 2)
    ids = [r.image_id for r in rows]
    outcome = pipeline.retry_later(conn, tenant.tenant_id, ids, "Qdrant refused", POLICY, "run")
    assert sorted(r.image_id for r in outcome.retrying) == sorted(ids)
    assert not outcome.gave_up
    for image in outcome.retrying:
        assert image.status == "retrying" and image.attempts == 1
        assert image.last_error == "Qdrant refused"
        assert image.next_attempt_at is not None and image.retry_since is not None
        wait = (image.next_attempt_at - image.updated_at).total_seconds()
        assert 4 <= wait <= 6, wait
    again = pipeline.retry_later(conn, tenant.tenant_id, ids, "still down", POLICY, "run")
    assert {i.attempts for i in again.retrying} == {2}
    assert not retries.claim_due(conn), "nothing is due before its next attempt"


def test_due_images_are_claimed_once(
    conn: psycopg.Connection, blob_store: BlobStore, tenant: TenantUnderTest
) -> None:
    ids = [r.image_id for r in uploaded(conn, blob_store, tenant, 3)]
    now = retries.RetryPolicy(budget_seconds=3600, backoff_seconds=0.001, backoff_max_seconds=0.001)
    pipeline.retry_later(conn, tenant.tenant_id, ids, "down", now, "run")
    claimed = retries.claim_due(conn)
    assert sorted(claimed[tenant.tenant_id]) == sorted(ids)
    assert tenant.tenant_id not in retries.claim_due(conn), "claimed: leased to their run"
    assert {s for s, _ in seed.statuses(conn, tenant.tenant_id).values()} == {"retrying"}
    conn.execute(
        "UPDATE deeplens.images SET next_attempt_at = now() WHERE tenant_id = %s",
        (tenant.tenant_id,),
    )
    again = retries.claim_due(conn)
    assert sorted(again[tenant.tenant_id]) == sorted(ids), "a lost claim is due again"


def test_past_the_budget_an_image_fails_saying_so_and_tells_kafka(
    conn: psycopg.Connection, blob_store: BlobStore, tenant: TenantUnderTest
) -> None:
    ids = [r.image_id for r in uploaded(conn, blob_store, tenant, 1)]
    spent = retries.RetryPolicy(budget_seconds=0, backoff_seconds=5, backoff_max_seconds=5)
    outcome = pipeline.retry_later(conn, tenant.tenant_id, ids, "broker gone", spent, "run")
    assert [i.image_id for i in outcome.gave_up] == ids
    (status, reason) = seed.statuses(conn, tenant.tenant_id)[ids[0]]
    assert status == "failed"
    assert reason is not None and "gave up after 1 attempts" in reason and "broker gone" in reason
    assert seed.outbox_image_ids(conn, tenant.tenant_id, events.TOPIC_FAILED) == ids


def test_completed_and_failed_images_are_never_moved_to_retrying(
    conn: psycopg.Connection, blob_store: BlobStore, tenant: TenantUnderTest
) -> None:
    done, failed = uploaded(conn, blob_store, tenant, 2)
    conn.execute(
        "UPDATE deeplens.images SET status = 'completed' WHERE image_id = %s", (done.image_id,)
    )
    pipeline.fail(conn, tenant.tenant_id, {failed.image_id: "not an image"}, stage="embeddings")
    outcome = pipeline.retry_later(
        conn, tenant.tenant_id, [done.image_id, failed.image_id], "down", POLICY, "run"
    )
    assert not outcome.retrying and not outcome.gave_up


def test_an_owner_retry_starts_a_failed_image_over_with_a_new_event(
    conn: psycopg.Connection, blob_store: BlobStore, tenant: TenantUnderTest
) -> None:
    (image,) = uploaded(conn, blob_store, tenant, 1)
    spent = retries.RetryPolicy(budget_seconds=0, backoff_seconds=5, backoff_max_seconds=5)
    pipeline.retry_later(conn, tenant.tenant_id, [image.image_id], "down", spent, "run")
    before = seed.outbox_image_ids(conn, tenant.tenant_id, events.TOPIC_UPLOADED)
    (again,) = retries.retry_failed(conn, tenant.tenant_id, [image.image_id])
    assert again.status == "uploaded" and again.attempts == 0 and again.failure_reason is None
    after = seed.outbox_image_ids(conn, tenant.tenant_id, events.TOPIC_UPLOADED)
    assert after.count(image.image_id) == before.count(image.image_id) + 1
    assert retries.retry_failed(conn, tenant.tenant_id) == [], "nothing failed is left"
