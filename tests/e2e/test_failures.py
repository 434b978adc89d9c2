"""A batch that cannot be indexed is an infrastructure fault: its images go to `retrying` (with
the attempt count, the last error and the next attempt, on the status endpoint) instead of
failing, and complete once the cause is gone, with no operator action."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from deeplens import clients, vectors
from deeplens.model.registry import get_model
from deeplens_local import synthetic
from deeplens_local.stack.stack import Stack
from tests.e2e.helpers import create_tenant, upload, wait_terminal


@pytest.mark.timeout(600)
def test_a_batch_that_cannot_be_indexed_is_retried_until_it_can(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, f"broken-{uuid.uuid4().hex[:6]}")
    tenant_id, key = str(tenant["tenantId"]), str(tenant["apiKey"])
    model = str(tenant["model"])
    qdrant = clients.qdrant(stack.child_settings())
    # Its vector collection disappears behind its back: indexing cannot succeed for now.
    vectors.drop_tenant(qdrant, tenant_id, model)
    with httpx.Client(base_url=api_url, timeout=30) as client:
        ids = []
        for seed in (2000, 2001):
            response = upload(client, key, synthetic.photo_bytes(seed), f"{seed}.jpg")
            assert response.status_code == 202, response.text
            ids.append(response.json()["imageId"])

        views: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            views = {
                i: client.get(f"/api/v1/images/{i}/status", headers={"X-API-Key": key}).json()
                for i in ids
            }
            if all(v["status"] == "retrying" and v["attempts"] >= 1 for v in views.values()):
                break
            assert all(v["status"] != "failed" for v in views.values()), views
            time.sleep(1)
        for view in views.values():
            assert view["status"] == "retrying", view
            assert "failed" in str(view["lastError"]), view
            assert view["nextAttemptAt"], view
            assert view["success"] is True, "retrying is not a failure"

        # The cause goes away: the next attempt indexes them.
        vectors.ensure_tenant_collection(qdrant, tenant_id, model, get_model(model).dimension)
        done = wait_terminal(client, key, ids, timeout=240)
    assert {v["status"] for v in done.values()} == {"completed"}, done
    assert vectors.count(qdrant, str(tenant["collection"])) == len(ids)
