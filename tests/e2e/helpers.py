"""Small HTTP helpers for end-to-end tests against the running stack."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx

from deeplens_local import synthetic

TERMINAL = {"completed", "failed"}


def create_tenant(api_url: str, admin_key: str, tenant_id: str) -> dict[str, Any]:
    response = httpx.post(
        f"{api_url}/api/v1/admin/tenants",
        headers={"X-Admin-Key": admin_key},
        json={"tenantId": tenant_id, "name": tenant_id.title()},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def upload(client: httpx.Client, key: str, data: bytes, name: str) -> httpx.Response:
    return client.post(
        "/api/v1/images",
        headers={"X-API-Key": key},
        files={"file": (name, data, "image/jpeg")},
        data={"uploadedBy": "e2e"},
    )


def wait_terminal(
    client: httpx.Client, key: str, image_ids: list[str], timeout: float = 300
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    views: dict[str, dict[str, Any]] = {}
    pending = set(image_ids)
    while pending and time.monotonic() < deadline:
        for image_id in list(pending):
            response = client.get(f"/api/v1/images/{image_id}/status", headers={"X-API-Key": key})
            assert response.status_code == 200, response.text
            views[image_id] = response.json()
            if views[image_id]["status"] in TERMINAL:
                pending.discard(image_id)
        if pending:
            time.sleep(0.5)
    assert not pending, f"{len(pending)} image(s) not processed in {timeout}s: {views}"
    return views


def near_duplicate(seed: int) -> bytes:
    """Cropped by ~8%, resized to 70% and recompressed at JPEG quality 60."""
    image = synthetic.photo(seed)
    w, h = image.size
    image = image.crop((int(0.05 * w), int(0.03 * h), int(0.97 * w), int(0.95 * h)))
    image = image.resize((int(image.width * 0.7), int(image.height * 0.7)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=60)
    return out.getvalue()


def graphql(ui_url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(
        f"{ui_url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"])
