"""API keys on the real stack: several per tenant, listed without secrets, read-only ones, and
a revoked key refused by every API process within a second."""

from __future__ import annotations

import time

import httpx
import pytest

from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import create_tenant
from tests.faults.harness import photos


@pytest.mark.timeout(120)
def test_keys_are_made_listed_and_revoked_everywhere_within_a_second(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "keys")
    admin = {"X-Admin-Key": admin_key}
    base = f"{api_url}/api/v1/admin/tenants/{tenant.tenant_id}/keys"
    made = httpx.post(base, headers=admin, json={"label": "ci"}, timeout=30)
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["apiKey"].startswith("dlk_") and key["keyId"] and key["label"] == "ci"

    listed = httpx.get(base, headers=admin, timeout=30).json()["keys"]
    assert {k["keyId"] for k in listed} == {tenant.body["keyId"], key["keyId"]}
    assert all("apiKey" not in k and "keyHash" not in k for k in listed)

    headers = {"X-API-Key": key["apiKey"]}
    with httpx.Client(base_url=api_url, timeout=30) as client:
        # Many requests on new connections: every API process has the key cached.
        for _ in range(30):
            assert httpx.get(f"{api_url}/api/v1/images", headers=headers).status_code == 200
        gone = httpx.delete(f"{base}/{key['keyId']}", headers=admin, timeout=30)
        assert gone.status_code == 204
        revoked_at = time.monotonic()
        time.sleep(1)
        answers = [
            httpx.get(f"{api_url}/api/v1/images", headers=headers).status_code for _ in range(10)
        ]
        assert answers == [401] * 10, f"{answers} {time.monotonic() - revoked_at:.1f}s after"
        assert client.get("/api/v1/images", headers=tenant.headers).status_code == 200
    used = httpx.get(base, headers=admin, timeout=30).json()["keys"]
    assert [k["keyId"] for k in used] == [tenant.body["keyId"]]
    assert httpx.delete(f"{base}/{key['keyId']}", headers=admin, timeout=30).status_code == 404


@pytest.mark.timeout(120)
def test_a_read_only_key_searches_but_can_not_upload(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "reader")
    made = httpx.post(
        f"{api_url}/api/v1/admin/tenants/{tenant.tenant_id}/keys",
        headers={"X-Admin-Key": admin_key},
        json={"label": "dashboard", "readOnly": True},
        timeout=30,
    ).json()
    headers = {"X-API-Key": made["apiKey"]}
    image = photos(1, 33_000)[0]
    search = httpx.post(
        f"{api_url}/api/v1/search", headers=headers, files={"file": ("q.jpg", image)}, timeout=30
    )
    assert search.status_code == 200, search.text
    upload = httpx.post(
        f"{api_url}/api/v1/images", headers=headers, files={"file": ("u.jpg", image)}, timeout=30
    )
    assert upload.status_code == 403
    assert "read-only" in upload.json()["detail"]
