"""Tenant administration over HTTP against the real stack."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from deeplens import clients, vectors
from deeplens_local.stack.stack import Stack
from tests.api import samples
from tests.api.stack_helpers import create_tenant, delete_tenant, footprint, unique_id, wait_for

pytestmark = pytest.mark.stack

TENANTS = "/api/v1/admin/tenants"


def has_partition(stack: Stack, tenant_id: str) -> bool:
    with psycopg.connect(stack.env["DEEPLENS_DAGSTER_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT 1 FROM dynamic_partitions WHERE partitions_def_name = 'tenants'"
            " AND partition = %s",
            (tenant_id,),
        ).fetchone()
    return row is not None


def test_create_list_delete(stack: Stack, api_url: str, admin_key: str) -> None:
    tenant = create_tenant(api_url, admin_key, "admin")
    body = tenant.body
    assert body["tenantId"] == tenant.tenant_id
    assert body["apiKey"].startswith("dlk_")
    assert body["collection"] == f"tenant_{tenant.tenant_id}_{body['model']}_vectors"
    assert body["createdAt"]
    qdrant = clients.qdrant(stack.child_settings())
    assert vectors.alias_target(qdrant, body["collection"]) is not None
    assert wait_for(lambda: has_partition(stack, tenant.tenant_id), timeout=30), (
        "the code location's tenant sensor adds the new tenant's partition"
    )

    admin = {"X-Admin-Key": admin_key}
    again = httpx.post(
        f"{api_url}{TENANTS}", headers=admin, json={"tenantId": tenant.tenant_id}, timeout=30
    )
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]

    upload = httpx.post(
        f"{api_url}/api/v1/images",
        headers=tenant.headers,
        files={"file": ("a.jpg", samples.jpeg(11), "image/jpeg")},
        timeout=30,
    )
    assert upload.status_code == 202, upload.text

    listed = httpx.get(f"{api_url}{TENANTS}", headers=admin, timeout=30).json()["tenants"]
    mine = next(t for t in listed if t["tenantId"] == tenant.tenant_id)
    assert mine["imageCount"] == 1
    assert sum(mine["imagesByStatus"].values()) == 1
    assert "apiKey" not in mine, "the key is shown once, at creation"
    assert footprint(stack, tenant.tenant_id).blobs == 1

    deleted = delete_tenant(api_url, admin_key, tenant.tenant_id)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["collectionsDropped"]
    assert footprint(stack, tenant.tenant_id).images == 0
    assert footprint(stack, tenant.tenant_id).blobs == 0
    assert vectors.alias_target(qdrant, body["collection"]) is None
    assert not [
        c.name
        for c in qdrant.get_collections().collections
        if c.name.startswith(body["collection"])
    ]
    status = httpx.get(
        f"{api_url}/api/v1/images/{upload.json()['imageId']}/status",
        headers=tenant.headers,
        timeout=30,
    )
    assert status.status_code == 401, "a deleted tenant's key stops working at once"
    assert delete_tenant(api_url, admin_key, tenant.tenant_id).status_code == 404
    assert wait_for(lambda: not has_partition(stack, tenant.tenant_id), timeout=30), (
        "the tenant sensor removes a deleted tenant's partition"
    )


@pytest.mark.parametrize("tenant_id", ["Upper-Case", "under_score", "-dash-first", "x" * 64])
def test_invalid_tenant_id_is_422(api_url: str, admin_key: str, tenant_id: str) -> None:
    response = httpx.post(
        f"{api_url}{TENANTS}",
        headers={"X-Admin-Key": admin_key},
        json={"tenantId": tenant_id, "name": "Bad"},
        timeout=30,
    )
    assert response.status_code == 422
    assert "lower-case letters" in response.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"X-Admin-Key": "not-the-key"}])
def test_admin_key_is_required(api_url: str, headers: dict[str, str]) -> None:
    tenant_id = unique_id("nokey")
    created = httpx.post(
        f"{api_url}{TENANTS}", headers=headers, json={"tenantId": tenant_id}, timeout=30
    )
    assert created.status_code == 401
    assert "admin key" in created.json()["detail"]
    assert httpx.get(f"{api_url}{TENANTS}", headers=headers, timeout=30).status_code == 401
    deleted = httpx.delete(f"{api_url}{TENANTS}/{tenant_id}", headers=headers, timeout=30)
    assert deleted.status_code == 401


def test_readyz_reports_dependencies_and_model(api_url: str, admin_key: str) -> None:
    admin = {"X-Admin-Key": admin_key}  # the model's version is shown to the admin only
    body = httpx.get(f"{api_url}/readyz", headers=admin, timeout=30).json()
    assert body["status"] == "ready"
    assert set(body["dependencies"]) == {"postgres", "kafka", "qdrant", "redis"}
    assert body["model"]["loaded"] is True
    assert body["model"]["name"] and len(body["model"]["version"]) == 64
