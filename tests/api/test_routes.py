"""Routes in-process with fake clients: auth, and every upload the API must refuse unwritten."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from search_api.limits import BodySizeLimit
from search_api.main import create_app
from tests.api import samples
from tests.api.conftest import ADMIN_KEY, API_KEY, FakeServices

AUTH = {"X-API-Key": API_KEY}


def upload(
    client: TestClient,
    data: bytes,
    name: str = "photo.jpg",
    headers: dict[str, str] | None = None,
    **form: str,
) -> Any:
    return client.post(
        "/api/v1/images",
        headers=AUTH if headers is None else headers,
        files={"file": (name, data, "image/jpeg")},
        data=form,
    )


def nothing_written(services: FakeServices) -> bool:
    root = services.blobs.root
    return not root.exists() or not any(p.is_file() for p in root.rglob("*"))


# -- auth --------------------------------------------------------------------------------------


def test_missing_api_key_is_401(client: TestClient, fake_services: FakeServices) -> None:
    response = upload(client, samples.jpeg(), headers={})
    assert response.status_code == 401
    assert "X-API-Key" in response.json()["detail"]
    assert fake_services.key_lookups == []


def test_unknown_api_key_is_401(client: TestClient) -> None:
    response = client.get(
        "/api/v1/images/00000000-0000-0000-0000-000000000000/status",
        headers={"X-API-Key": "dlk_nobody"},
    )
    assert response.status_code == 401
    assert "unknown API key" in response.json()["detail"]


def test_tenant_id_that_disagrees_with_the_key_is_403(
    client: TestClient, fake_services: FakeServices
) -> None:
    response = upload(client, samples.jpeg(), tenantId="someone-else")
    assert response.status_code == 403
    assert "someone-else" in response.json()["detail"]
    assert nothing_written(fake_services)


def test_key_lookups_are_cached(client: TestClient, fake_services: FakeServices) -> None:
    for _ in range(3):
        upload(client, b"", headers=AUTH)
    assert len(fake_services.key_lookups) == 1


@pytest.mark.parametrize("headers", [{}, {"X-Admin-Key": "wrong"}, AUTH])
def test_admin_routes_need_the_admin_key(client: TestClient, headers: dict[str, str]) -> None:
    for response in (
        client.get("/api/v1/admin/tenants", headers=headers),
        client.post("/api/v1/admin/tenants", headers=headers, json={"tenantId": "acme"}),
        client.delete("/api/v1/admin/tenants/acme", headers=headers),
    ):
        assert response.status_code == 401, response.text
        assert "admin key" in response.json()["detail"]


def test_admin_routes_are_disabled_without_a_configured_key(
    client: TestClient, fake_services: FakeServices
) -> None:
    fake_services.settings.admin_key = None
    response = client.get("/api/v1/admin/tenants", headers={"X-Admin-Key": ""})
    assert response.status_code == 503
    assert "DEEPLENS_ADMIN_KEY" in response.json()["detail"]


@pytest.mark.parametrize("tenant_id", ["Acme", "acme_corp", "-acme", "a" * 64, ""])
def test_invalid_tenant_id_is_422_with_the_rule(client: TestClient, tenant_id: str) -> None:
    response = client.post(
        "/api/v1/admin/tenants",
        headers={"X-Admin-Key": ADMIN_KEY},
        json={"tenantId": tenant_id, "name": "x"},
    )
    assert response.status_code == 422
    assert "lower-case letters" in response.json()["detail"]


# -- uploads that must change nothing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "status", "hint"),
    [
        (b"", "empty.jpg", 400, "empty"),
        (samples.TEXT, "notes.jpg", 415, "not an image"),
        (samples.truncated_jpeg(), "cut.jpg", 400, "truncated"),
        (samples.bomb_png(), "bomb.png", 413, "pixels"),
        (samples.jpeg(7, 1600, 1200), "big.jpg", 413, "limit"),
    ],
)
def test_bad_upload_is_refused_and_writes_nothing(
    client: TestClient,
    fake_services: FakeServices,
    data: bytes,
    name: str,
    status: int,
    hint: str,
) -> None:
    assert len(samples.jpeg(7, 1600, 1200)) > fake_services.settings.max_upload_bytes
    response = upload(client, data, name)
    assert response.status_code == status, response.text
    assert hint in response.json()["detail"]
    assert nothing_written(fake_services)


def test_a_full_store_is_503_with_retry_after_and_writes_nothing(
    client: TestClient, fake_services: FakeServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fake_services.blobs, "put", full)
    response = upload(client, samples.jpeg())
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    assert "No space left on device" in response.json()["detail"]
    assert nothing_written(fake_services)  # and the database was never reached (Untouchable)


@pytest.mark.parametrize("metadata", ["[1]", "{oops", '"x"'])
def test_metadata_that_is_not_an_object_is_400(
    client: TestClient, fake_services: FakeServices, metadata: str
) -> None:
    response = upload(client, samples.jpeg(), metadata=metadata)
    assert response.status_code == 400
    assert "metadata" in response.json()["detail"]
    assert nothing_written(fake_services)


def test_upload_without_file_is_422(client: TestClient) -> None:
    response = client.post("/api/v1/images", headers=AUTH, data={"uploadedBy": "x"})
    assert response.status_code == 422


def test_malformed_image_id_is_422(client: TestClient) -> None:
    response = client.get("/api/v1/images/not-a-uuid/status", headers=AUTH)
    assert response.status_code == 422


@pytest.mark.parametrize("top_k", ["0", "101", "ten"])
def test_search_top_k_out_of_range_is_422(client: TestClient, top_k: str) -> None:
    response = client.post(
        "/api/v1/search",
        headers=AUTH,
        files={"file": ("q.jpg", samples.jpeg(), "image/jpeg")},
        data={"topK": top_k},
    )
    assert response.status_code == 422
    similar = client.get(
        "/api/v1/images/00000000-0000-0000-0000-000000000001/similar",
        params={"topK": top_k},
        headers=AUTH,
    )
    assert similar.status_code == 422


# -- the body limit in front of the multipart parser -------------------------------------------


async def _call(
    app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[int, int]:
    """Send a POST through `app`; returns (status, body chunks the app pulled)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        if pulled > len(chunks):
            return {"type": "http.disconnect"}
        return {
            "type": "http.request",
            "body": chunks[pulled - 1],
            "more_body": pulled < len(chunks),
        }

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/images",
        "query_string": b"",
        "headers": headers,
        "app": FastAPI(),
    }
    await app(scope, receive, send)
    return sent[0]["status"], pulled


def test_declared_oversize_body_is_413_before_reading_it() -> None:
    async def never(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not be reached")

    limit = BodySizeLimit(never)
    huge = str(1 << 30).encode()
    status, pulled = asyncio.run(_call(limit, [(b"content-length", huge)], [b"x"]))
    assert (status, pulled) == (413, 0)


def test_undeclared_oversize_body_is_cut_off_while_streaming(
    fake_services: FakeServices,
) -> None:
    head = (
        b"--b\r\n"
        b'Content-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n"
    )
    chunks = [head] + [b"x" * (1 << 20)] * 100
    headers = [
        (b"content-type", b"multipart/form-data; boundary=b"),
        (b"x-api-key", API_KEY.encode()),
    ]
    app = create_app(fake_services.settings)
    fake_services.install(app)
    status, pulled = asyncio.run(_call(app, headers, chunks))
    assert status == 413
    assert pulled <= 22, "the body must be refused soon after it passes the 20 MiB limit"
