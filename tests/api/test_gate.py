"""The gate in front of /api/: keys and rates decided from the headers, before any body."""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from search_api.gate import kind_of
from tests.api.conftest import ADMIN_KEY, API_KEY, READ_ONLY_KEY, SLOW_KEY, FakeServices


def test_requests_are_sorted_by_the_rate_they_count_against() -> None:
    assert kind_of("POST", "/api/v1/images") == "upload"
    assert kind_of("POST", "/api/v1/search") == "search"
    assert kind_of("GET", f"/api/v1/images/{uuid.uuid4()}/similar") == "search"
    assert kind_of("GET", "/api/v1/images") == "read"
    assert kind_of("DELETE", f"/api/v1/images/{uuid.uuid4()}") == "read"


def test_a_request_without_a_key_is_refused_before_its_body_is_read(
    client: TestClient, fake_services: FakeServices
) -> None:
    received: list[int] = []

    def body() -> object:
        for _ in range(50):
            received.append(1)
            yield b"x" * 65536

    response = client.post("/api/v1/search", content=body())
    assert response.status_code == 401
    assert "X-API-Key" in response.json()["detail"]
    assert response.headers["connection"] == "close"
    assert len(received) <= 1, "the body was read before the key was checked"
    assert fake_services.key_lookups == []


def test_an_unknown_key_is_refused_and_random_keys_are_limited_per_address(
    client: TestClient, fake_services: FakeServices
) -> None:
    known = {"X-API-Key": API_KEY}
    assert client.get("/api/v1/images/x/status", headers=known).status_code == 422
    answers = [
        client.get("/api/v1/images", headers={"X-API-Key": f"dlk_{n}"}).status_code
        for n in range(40)
    ]
    assert answers[0] == 401
    assert 429 in answers, "an address trying random keys is slowed down"
    limit = fake_services.settings.key_failures_per_second
    assert len(fake_services.key_lookups) <= 2 * limit, "refused lookups never reach the catalog"
    again = client.get("/api/v1/images/x/status", headers=known)
    assert again.status_code == 422, "a key already known is not refused with its address"


def test_a_read_only_key_can_not_upload_or_delete(client: TestClient) -> None:
    headers = {"X-API-Key": READ_ONLY_KEY}
    upload = client.post("/api/v1/images", headers=headers, files={"file": ("a.jpg", b"x")})
    assert upload.status_code == 403
    assert "read-only" in upload.json()["detail"]
    delete = client.delete(f"/api/v1/images/{uuid.uuid4()}", headers=headers)
    assert delete.status_code == 403


def test_a_tenant_over_its_rate_gets_429_with_retry_after(client: TestClient) -> None:
    # Empty uploads: the admitted ones are refused by the route (nothing is stored).
    responses = [
        client.post("/api/v1/images", headers={"X-API-Key": SLOW_KEY}, data={"x": "y"})
        for _ in range(6)
    ]
    refused = [r for r in responses if r.status_code == 429]
    assert refused, [r.status_code for r in responses]
    assert responses[0].status_code == 422, "within the rate, the route answers"
    answer = refused[0]
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.headers["RateLimit-Limit"] == "2"
    assert answer.headers["RateLimit-Remaining"] == "0"
    assert "2 uploads per second" in answer.json()["detail"]


def test_admin_routes_want_the_admin_key_before_the_body(client: TestClient) -> None:
    refused = client.post("/api/v1/admin/tenants", json={"tenantId": "x"})
    assert refused.status_code == 401
    assert "X-Admin-Key" in refused.json()["detail"]
    tenant_key = client.get("/api/v1/admin/tenants", headers={"X-API-Key": API_KEY})
    assert tenant_key.status_code == 401
    wrong = client.get("/api/v1/admin/tenants", headers={"X-Admin-Key": ADMIN_KEY + "x"})
    assert wrong.status_code == 401


def test_a_429_is_sent_after_a_pause_that_paces_a_flooding_client(
    client: TestClient, fake_services: FakeServices
) -> None:
    client.app.state.settings = fake_services.settings.model_copy(  # type: ignore[attr-defined]
        update={"rate_limit_pause_seconds": 0.3}
    )
    took = []
    for _ in range(4):
        started = time.perf_counter()
        response = client.post("/api/v1/images", headers={"X-API-Key": SLOW_KEY}, data={"x": "y"})
        took.append((response.status_code, time.perf_counter() - started))
    refused = [seconds for code, seconds in took if code == 429]
    admitted = [seconds for code, seconds in took if code != 429]
    assert refused and admitted, took
    assert min(refused) >= 0.3 > max(admitted), took


def test_authentication_failures_are_audited_without_the_key(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "dlk_never-logged"
    with caplog.at_level(logging.INFO, logger="deeplens.audit"):
        client.get("/api/v1/images", headers={"X-API-Key": secret})
        client.get("/api/v1/admin/tenants", headers={"X-Admin-Key": "not-the-admin-key"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "deeplens.audit"]
    assert [(line["audit"], line["scope"]) for line in lines] == [
        ("auth.failed", "tenant"),
        ("auth.failed", "admin"),
    ]
    assert all(line["client"] and line["path"].startswith("/api/v1/") for line in lines)
    assert secret not in caplog.text and "not-the-admin-key" not in caplog.text
