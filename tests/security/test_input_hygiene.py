"""Malformed metadata, text and filters against the real stack: a 400 with the reason, and no
row, outbox event or blob left behind; a hostile file name is stored and shown safely."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deeplens_local.stack.stack import Stack
from tests.api import samples
from tests.api.stack_helpers import TenantHandle, create_tenant, delete_tenant, footprint


@pytest.fixture(scope="module")
def tenant(api_url: str, admin_key: str) -> Iterator[TenantHandle]:
    handle = create_tenant(api_url, admin_key, "hygiene")
    yield handle
    delete_tenant(api_url, admin_key, handle.tenant_id)


@pytest.fixture
def client(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=60) as http:
        yield http


def blob_files(stack: Stack, tenant_id: str) -> list[Path]:
    folder = stack.child_settings().resolved_blob_root() / tenant_id
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def upload(
    client: httpx.Client, tenant: TenantHandle, name: str = "photo.jpg", **fields: bytes
) -> httpx.Response:
    return client.post(
        "/api/v1/images",
        headers=tenant.headers,
        files={"file": (name, samples.jpeg(31), "image/jpeg")},
        data=fields,
    )


@pytest.mark.parametrize("case", samples.BAD_METADATA)
def test_malformed_metadata_is_400_and_leaves_nothing(
    stack: Stack, client: httpx.Client, tenant: TenantHandle, case: str
) -> None:
    raw, hint = samples.BAD_METADATA[case]
    response = upload(client, tenant, metadata=raw)
    assert response.status_code == 400, response.text
    assert hint in response.json()["detail"]
    assert blob_files(stack, tenant.tenant_id) == []
    written = footprint(stack, tenant.tenant_id)
    assert (written.images, written.outbox) == (0, 0)


def test_uploaded_by_that_is_not_utf8_is_400_and_leaves_nothing(
    stack: Stack, client: httpx.Client, tenant: TenantHandle
) -> None:
    response = upload(client, tenant, uploadedBy=b"ren\xe9")
    assert response.status_code == 400, response.text
    assert "uploadedBy is not valid UTF-8" in response.json()["detail"]
    assert blob_files(stack, tenant.tenant_id) == []
    assert footprint(stack, tenant.tenant_id).images == 0


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ('{"metadata.k": "a\\u0000"}', "NUL character"),
        ('{"metadata.k": "\\udfff"}', "lone surrogate"),
        ('{"metadata.n": {"gte": 1e400}}', "beyond what a double holds"),
        ('{"width": ' + "[" * 5_000 + "]" * 5_000 + "}", "levels deep"),
    ],
    ids=["nul", "lone-surrogate", "number-beyond-double", "deep-nesting"],
)
def test_malformed_filter_is_400_in_the_listing_and_search(
    client: httpx.Client, tenant: TenantHandle, raw: str, hint: str
) -> None:
    listing = client.get("/api/v1/images", params={"filter": raw}, headers=tenant.headers)
    search = client.post(
        "/api/v1/search",
        headers=tenant.headers,
        files={"file": ("q.jpg", samples.jpeg(32), "image/jpeg")},
        data={"filter": raw},
    )
    for response in (listing, search):
        assert response.status_code == 400, response.text
        assert hint in response.json()["detail"]


def test_a_hostile_file_name_is_stored_and_shown_safely(
    stack: Stack, client: httpx.Client, tenant: TenantHandle
) -> None:
    """Runs last: its upload is what the checks above would have seen, had anything been kept."""
    metadata = '{"title": "caf\\u00e9 \\ud83d\\ude00", "n": -9223372036854775808}'
    name = "C:\\tmp\\in\u202evoice\u2028\x1b[2J\u200fgpj.exe"
    response = upload(
        client, tenant, name, metadata=metadata.encode(), uploadedBy=b"ann\xe2\x80\xae"
    )
    assert response.status_code == 202, response.text
    image_id = response.json()["imageId"]

    details = client.get(f"/api/v1/images/{image_id}", headers=tenant.headers).json()
    assert details["fileName"] == "invoice[2Jgpj.exe"
    assert details["uploadedBy"] == "ann"
    assert details["metadata"] == {"title": "caf\u00e9 \U0001f600", "n": -(2**63)}
    assert len(blob_files(stack, tenant.tenant_id)) == 1
    assert footprint(stack, tenant.tenant_id).images == 1
