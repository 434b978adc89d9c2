"""A failed image is retried by its owner: through the retry endpoint, by uploading the same
bytes again, or tenant-wide by an admin; each completes once its cause is gone."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import TenantHandle, create_tenant
from tests.faults.harness import assert_healed, photos, upload_all, wait_all_ended


def blob_path(stack: Stack, image_id: str) -> Path:
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT blob_key FROM deeplens.images WHERE image_id = %s", (image_id,)
        ).fetchone()
    assert row is not None
    return Path(stack.env["DEEPLENS_BLOB_ROOT"]) / row[0]


def damage(stack: Stack, image_id: str) -> bytes:
    """Overwrite the image's stored bytes (same size); returns the original bytes."""
    path = blob_path(stack, image_id)
    original = path.read_bytes()
    path.write_bytes(b"\xff\xd8\xff" + b"\x00" * (len(original) - 3))
    return original


def failed_with(stack: Stack, tenant: TenantHandle, ids: list[str], words: str) -> None:
    ended = wait_all_ended(stack, tenant.tenant_id, len(ids), timeout=180)
    for image_id in ids:
        status, reason, _ = ended[image_id]
        assert status == "failed" and reason is not None and words in reason, ended[image_id]


@pytest.mark.timeout(600)
def test_a_failed_image_is_retried_through_the_endpoint(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "retry-endpoint")
    other = create_tenant(api_url, admin_key, "retry-other")
    (image_id,) = upload_all(api_url, tenant, photos(1, 60_000))
    original = damage(stack, image_id)
    failed_with(stack, tenant, [image_id], "could not decode")
    url = f"{api_url}/api/v1/images/{image_id}/retry"
    assert httpx.post(url, headers=other.headers, timeout=30).status_code == 404

    blob_path(stack, image_id).write_bytes(original)  # the cause goes away
    answer = httpx.post(url, headers=tenant.headers, timeout=30)
    assert answer.status_code == 202, answer.text
    assert answer.json()["imageId"] == image_id
    assert_healed(stack, tenant, [image_id])
    again = httpx.post(url, headers=tenant.headers, timeout=30)
    assert again.status_code == 409, "only a failed image is retried by hand"
    assert "completed" in again.json()["detail"]


@pytest.mark.timeout(600)
def test_uploading_the_bytes_of_a_failed_image_again_retries_it(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "retry-upload")
    data = photos(1, 61_000)[0]
    (image_id,) = upload_all(api_url, tenant, [data])
    blob_path(stack, image_id).unlink()  # lost from the store
    failed_with(stack, tenant, [image_id], "missing from the blob store")

    answer = httpx.post(
        f"{api_url}/api/v1/images",
        headers=tenant.headers,
        files={"file": ("again.jpg", data, "image/jpeg")},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["imageId"] == image_id and "duplicateOf" not in body
    assert blob_path(stack, image_id).read_bytes() == data, "the upload repaired the blob"
    assert_healed(stack, tenant, [image_id])


@pytest.mark.timeout(600)
def test_an_admin_retries_every_failed_image_of_a_tenant(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "retry-all")
    ids = upload_all(api_url, tenant, photos(3, 62_000))
    originals = {i: damage(stack, i) for i in ids[:2]}
    failed_with(stack, tenant, ids[:2], "could not decode")
    for image_id, data in originals.items():
        blob_path(stack, image_id).write_bytes(data)
    answer = httpx.post(
        f"{api_url}/api/v1/admin/tenants/{tenant.tenant_id}/retry-failed",
        headers={"X-Admin-Key": admin_key},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["retried"] == 2
    assert sorted(answer.json()["imageIds"]) == sorted(ids[:2])
    assert_healed(stack, tenant, ids)
