"""The system with its image bytes in S3 (``DEEPLENS_BLOB_STORE=s3``), end to end: a stack of
its own, whose blob store is the embedded S3-protocol server with keys under a prefix, ingests,
searches, serves the bytes and deletes a tenant without writing a byte to the local disk; and a
store that is down is a 503, not a lost upload."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deeplens import clients
from deeplens_local import synthetic
from deeplens_local.stack.stack import Stack, StackConfig
from tests.conftest import FAST_HEALING, GENEROUS_LIMITS
from tests.e2e.helpers import create_tenant, upload, wait_terminal

pytestmark = pytest.mark.stack

N_IMAGES = 10
PREFIX = "e2e"


@pytest.fixture(scope="module")
def s3_stack() -> Iterator[Stack]:
    """Started from this environment less any ``DEEPLENS_*`` (the session's stack sets them)."""
    home = Path(tempfile.mkdtemp(prefix="deeplens-s3-"))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DEEPLENS_")}
    environ.update(
        {
            **FAST_HEALING,
            **GENEROUS_LIMITS,
            "DEEPLENS_BLOB_STORE": "s3",
            "DEEPLENS_S3_PREFIX": PREFIX,
            "DEEPLENS_API_WORKERS": "1",
        }
    )
    try:
        with Stack(StackConfig.on_free_ports(home, environ=environ)) as running:
            yield running
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def api(s3_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=s3_stack.endpoints["api"].url, timeout=30) as client:
        yield client


def new_tenant(s3_stack: Stack) -> tuple[str, str]:
    """A new tenant's id and key."""
    tenant_id = f"s3-{uuid.uuid4().hex[:6]}"
    created = create_tenant(
        s3_stack.endpoints["api"].url, s3_stack.env["DEEPLENS_ADMIN_KEY"], tenant_id
    )
    return tenant_id, str(created["apiKey"])


def objects(s3_stack: Stack, under: str) -> set[str]:
    """The keys of the bucket's objects under `under`, as S3 lists them."""
    settings = s3_stack.child_settings()
    pages = (
        clients.s3_client(settings)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=str(settings.s3_bucket), Prefix=under)
    )
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def object_key(tenant_id: str, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"{PREFIX}/{tenant_id}/{digest[:2]}/{digest}"


@pytest.fixture(scope="module")
def ingested(s3_stack: Stack, api: httpx.Client) -> tuple[str, str, dict[int, str]]:
    """A tenant, and seed → image id of its uploads, all processed to the end."""
    tenant_id, key = new_tenant(s3_stack)
    uploaded = {}
    for seed in range(N_IMAGES):
        response = upload(api, key, synthetic.photo_bytes(seed), f"photo-{seed}.jpg")
        assert response.status_code == 202, response.text
        uploaded[seed] = str(response.json()["imageId"])
    views = wait_terminal(api, key, list(uploaded.values()), timeout=180)
    assert {v["status"] for v in views.values()} == {"completed"}, views
    return tenant_id, key, uploaded


def test_an_upload_is_found_by_its_own_bytes(
    api: httpx.Client, ingested: tuple[str, str, dict[int, str]]
) -> None:
    _, key, uploaded = ingested
    response = api.post(
        "/api/v1/search",
        headers={"X-API-Key": key},
        files={"file": ("query.jpg", synthetic.photo_bytes(3), "image/jpeg")},
        data={"topK": "3"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["imageId"] == uploaded[3]


def test_the_bytes_are_in_the_bucket_and_served_from_it(
    s3_stack: Stack, api: httpx.Client, ingested: tuple[str, str, dict[int, str]]
) -> None:
    tenant_id, key, uploaded = ingested
    photos = {seed: synthetic.photo_bytes(seed) for seed in uploaded}
    assert objects(s3_stack, f"{PREFIX}/{tenant_id}/") == {
        object_key(tenant_id, data) for data in photos.values()
    }
    content = api.get(f"/api/v1/images/{uploaded[5]}/content", headers={"X-API-Key": key})
    assert content.status_code == 200, content.text
    assert content.content == photos[5]
    thumb = api.get(
        f"/api/v1/images/{uploaded[5]}/thumbnail", params={"size": 64}, headers={"X-API-Key": key}
    )
    assert thumb.status_code == 200, thumb.text
    assert objects(s3_stack, f"{PREFIX}/{tenant_id}/thumbs/64/")
    blob_root = Path(s3_stack.env["DEEPLENS_BLOB_ROOT"])
    assert not [p for p in blob_root.rglob("*") if p.is_file()], "bytes written to the local disk"


def test_deleting_a_tenant_empties_its_prefix(s3_stack: Stack, api: httpx.Client) -> None:
    tenant_id, key = new_tenant(s3_stack)
    for seed in (100, 101):
        assert upload(api, key, synthetic.photo_bytes(seed), "photo.jpg").status_code == 202
    assert len(objects(s3_stack, f"{PREFIX}/{tenant_id}/")) == 2
    response = api.delete(
        f"/api/v1/admin/tenants/{tenant_id}",
        headers={"X-Admin-Key": s3_stack.env["DEEPLENS_ADMIN_KEY"]},
    )
    assert response.status_code == 200, response.text
    assert objects(s3_stack, f"{PREFIX}/{tenant_id}/") == set()


# Last: it stops the S3 server, which keeps its objects in memory only.
def test_a_store_that_is_down_is_a_503(
    s3_stack: Stack, api: httpx.Client, ingested: tuple[str, str, dict[int, str]]
) -> None:
    _, key, uploaded = ingested
    s3_stack.process("s3").stop()
    refused = upload(api, key, synthetic.photo_bytes(200), "photo.jpg")
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"]
    content = api.get(f"/api/v1/images/{uploaded[0]}/content", headers={"X-API-Key": key})
    assert content.status_code == 503, content.text
    assert content.headers["Retry-After"]
