"""Uploads, status and the outbox relay over real HTTP against the real stack."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from deeplens import events
from deeplens.catalog import images
from deeplens_local.stack.stack import Stack
from tests.api import samples
from tests.api.stack_helpers import (
    TenantHandle,
    create_tenant,
    delete_tenant,
    find_event,
    footprint,
    wait_for,
)

pytestmark = pytest.mark.stack

SEED_FIELDS = {
    "success",
    "imageId",
    "status",
    "message",
    "uploadTimeMs",
    "estimatedProcessingTimeSeconds",
    "statusCheckUrl",
    "webSocketUrl",
    "timestamp",
}


@pytest.fixture(scope="module")
def tenant(api_url: str, admin_key: str) -> Iterator[TenantHandle]:
    handle = create_tenant(api_url, admin_key, "uploads")
    yield handle
    delete_tenant(api_url, admin_key, handle.tenant_id)


@pytest.fixture(scope="module")
def other_tenant(api_url: str, admin_key: str) -> Iterator[TenantHandle]:
    handle = create_tenant(api_url, admin_key, "others")
    yield handle
    delete_tenant(api_url, admin_key, handle.tenant_id)


@pytest.fixture
def client(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=60) as http:
        yield http


def post_image(
    client: httpx.Client,
    headers: dict[str, str],
    data: bytes,
    name: str = "photo.jpg",
    **form: str,
) -> httpx.Response:
    return client.post(
        "/api/v1/images", headers=headers, files={"file": (name, data, "image/jpeg")}, data=form
    )


def test_upload_answers_202_then_duplicate_answers_200(
    stack: Stack, client: httpx.Client, tenant: TenantHandle
) -> None:
    data = samples.jpeg(21, 640, 480)
    response = post_image(
        client, tenant.headers, data, "shoe.jpg", uploadedBy="ann", metadata='{"sku": "S-1"}'
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) >= SEED_FIELDS
    image_id = body["imageId"]
    assert body["success"] is True and body["status"] == "uploaded"
    assert body["statusCheckUrl"] == f"/api/v1/images/{image_id}/status"
    assert body["webSocketUrl"] == f"/hub/processing-status?imageId={image_id}"
    assert "duplicateOf" not in body

    status = client.get(body["statusCheckUrl"], headers=tenant.headers)
    assert status.status_code == 200, status.text
    view = status.json()
    assert view["imageId"] == image_id
    assert {"status", "processingSteps", "percentComplete"} <= set(view)

    details = client.get(f"/api/v1/images/{image_id}", headers=tenant.headers).json()
    assert details["fileName"] == "shoe.jpg"
    assert details["contentType"] == "image/jpeg"
    assert (details["width"], details["height"], details["fileSize"]) == (640, 480, len(data))
    assert details["uploadedBy"] == "ann" and details["metadata"] == {"sku": "S-1"}

    before = footprint(stack, tenant.tenant_id)
    again = post_image(client, tenant.headers, data, "renamed.png")
    assert again.status_code == 200, again.text
    assert again.json()["imageId"] == image_id
    assert again.json()["duplicateOf"] == image_id
    assert footprint(stack, tenant.tenant_id) == before


def test_relay_publishes_the_uploaded_event(
    stack: Stack, client: httpx.Client, tenant: TenantHandle
) -> None:
    data = samples.png(22)
    response = post_image(client, tenant.headers, data, "flower.png")
    assert response.status_code == 202, response.text
    image_id = response.json()["imageId"]

    event = find_event(stack.env["DEEPLENS_KAFKA_BOOTSTRAP"], events.TOPIC_UPLOADED, image_id)
    assert event is not None, "the relay did not publish image.uploaded"
    assert {"eventType", "eventId", "tenantId", "correlationId", "timestamp", "data"} <= set(event)
    assert event["eventType"] == "image.uploaded"
    assert event["tenantId"] == tenant.tenant_id
    assert event["data"]["fileName"] == "flower.png"
    assert event["data"]["fileSize"] == len(data)
    assert event["data"]["contentType"] == "image/png"
    assert event["data"]["filePath"]
    events.ImageUploaded.model_validate(event)

    def moved_on() -> bool:
        view = client.get(f"/api/v1/images/{image_id}/status", headers=tenant.headers).json()
        return bool(view["status"] != "uploaded")

    assert wait_for(moved_on), "a published upload is marked queued"


@pytest.mark.parametrize(
    ("data", "name", "form", "status"),
    [
        (b"", "empty.jpg", {}, 400),
        (samples.TEXT, "notes.jpg", {}, 415),
        (samples.truncated_jpeg(23), "cut.jpg", {}, 400),
        (samples.bomb_png(), "bomb.png", {}, 413),
        (b"\xff\xd8\xff" + b"\0" * (21 << 20), "huge.jpg", {}, 413),
        (samples.jpeg(24), "meta.jpg", {"metadata": "[1, 2]"}, 400),
        (samples.jpeg(25), "meta.jpg", {"metadata": "{broken"}, 400),
    ],
    ids=["empty", "text", "truncated", "bomb", "oversize", "metadata-list", "metadata-broken"],
)
def test_bad_input_is_refused_and_changes_nothing(
    stack: Stack,
    client: httpx.Client,
    tenant: TenantHandle,
    data: bytes,
    name: str,
    form: dict[str, str],
    status: int,
) -> None:
    before = footprint(stack, tenant.tenant_id)
    response = post_image(client, tenant.headers, data, name, **form)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert footprint(stack, tenant.tenant_id) == before


def test_keys_are_checked(
    stack: Stack, client: httpx.Client, tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    before = footprint(stack, tenant.tenant_id)
    missing = post_image(client, {}, samples.jpeg(26))
    assert missing.status_code == 401 and "X-API-Key" in missing.json()["detail"]
    unknown = post_image(client, {"X-API-Key": "dlk_not-a-key"}, samples.jpeg(26))
    assert unknown.status_code == 401 and unknown.json()["detail"]
    mismatch = post_image(client, tenant.headers, samples.jpeg(26), tenantId=other_tenant.tenant_id)
    assert mismatch.status_code == 403 and other_tenant.tenant_id in mismatch.json()["detail"]
    same = post_image(client, tenant.headers, samples.jpeg(27), tenantId=tenant.tenant_id)
    assert same.status_code == 202, same.text
    assert footprint(stack, tenant.tenant_id).images == before.images + 1


def test_another_tenants_image_is_404(
    client: httpx.Client, tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    mine = post_image(client, tenant.headers, samples.jpeg(28))
    image_id = mine.json()["imageId"]
    for path in (f"/api/v1/images/{image_id}/status", f"/api/v1/images/{image_id}"):
        assert client.get(path, headers=other_tenant.headers).status_code == 404
    unknown = client.get(f"/api/v1/images/{uuid.uuid4()}/status", headers=tenant.headers)
    assert unknown.status_code == 404 and unknown.json()["detail"]
    malformed = client.get("/api/v1/images/img_123/status", headers=tenant.headers)
    assert malformed.status_code == 422


def test_websocket_sends_the_current_status(
    api_url: str, client: httpx.Client, tenant: TenantHandle
) -> None:
    image_id = post_image(client, tenant.headers, samples.jpeg(29)).json()["imageId"]
    url = api_url.replace("http", "ws", 1) + f"/hub/processing-status?imageId={image_id}"
    with connect(url, additional_headers=tenant.headers, open_timeout=10) as socket:
        view = json.loads(socket.recv(timeout=10))
    assert view["imageId"] == image_id
    assert view["status"] in {"uploaded", "queued", "processing", "completed", "failed"}

    wrong_key = (url, {"X-API-Key": "dlk_wrong"})
    key_in_the_url = (f"{url}&apiKey={tenant.api_key}", {})  # URLs get logged: never accepted
    for target, headers in (wrong_key, key_in_the_url):
        with connect(target, additional_headers=headers, open_timeout=10) as socket:
            refusal = json.loads(socket.recv(timeout=10))
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=10)
        assert refusal["success"] is False and "API key" in refusal["detail"]
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_websocket_pushes_changes_and_closes_after_a_terminal_status(
    stack: Stack, api_url: str, client: httpx.Client, tenant: TenantHandle
) -> None:
    image_id = post_image(client, tenant.headers, samples.jpeg(30)).json()["imageId"]
    url = api_url.replace("http", "ws", 1) + f"/hub/processing-status?imageId={image_id}"
    received: list[dict[str, object]] = []
    # As a browser sends the key: as a subprotocol, next to the one the server selects.
    offered = [Subprotocol("deeplens"), Subprotocol(f"deeplens.key.{tenant.api_key}")]
    with connect(url, subprotocols=offered, open_timeout=10) as socket:
        assert socket.subprotocol == "deeplens"
        received.append(json.loads(socket.recv(timeout=10)))
        # Fail the image (unless the pipeline already completed it): the hub must push it.
        with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"], autocommit=True) as conn:
            images.mark_failed(conn, tenant.tenant_id, {uuid.UUID(image_id): "forced by a test"})
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                received.append(json.loads(socket.recv(timeout=10)))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert received[-1]["status"] in {"completed", "failed"}
    assert all(view["imageId"] == image_id for view in received)
