"""A batch that cannot be indexed fails after its retries: status `failed` with the reason, and
one `processing.failed` event per image (from the run-failure sensor)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from deeplens import clients, events, vectors
from deeplens_local import synthetic
from deeplens_local.stack.stack import Stack
from tests.e2e.helpers import create_tenant, upload, wait_terminal
from tests.e2e.test_ingest import events_on


@pytest.mark.timeout(600)
def test_run_failure_fails_each_image_with_the_reason(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, f"broken-{uuid.uuid4().hex[:6]}")
    tenant_id, key = str(tenant["tenantId"]), str(tenant["apiKey"])
    # Its vector collection disappears behind its back: indexing cannot succeed.
    vectors.drop_tenant(clients.qdrant(stack.child_settings()), tenant_id, str(tenant["model"]))
    with httpx.Client(base_url=api_url, timeout=30) as client:
        ids = []
        for seed in (2000, 2001):
            response = upload(client, key, synthetic.photo_bytes(seed), f"{seed}.jpg")
            assert response.status_code == 202, response.text
            ids.append(response.json()["imageId"])
        views = wait_terminal(client, key, ids, timeout=400)
    for view in views.values():
        assert view["status"] == "failed", view
        assert "failed" in view["reason"] and len(view["reason"]) > 20, view
        steps = {s["step"]: s["status"] for s in view["processingSteps"]}
        assert steps["feature_extraction"] == "completed"
        assert steps["vector_indexing"] == "failed"

    deadline = time.monotonic() + 30
    while True:
        failed = [
            e
            for e in events_on(stack.env["DEEPLENS_KAFKA_BOOTSTRAP"], events.TOPIC_FAILED)
            if e.get("tenantId") == tenant_id
        ]
        if len(failed) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sorted(e["data"]["imageId"] for e in failed) == sorted(ids)  # type: ignore[index]
    assert all(e["data"]["stage"] == "run" for e in failed)  # type: ignore[index]
