"""Readiness on the real stack: an optional dependency down degrades the answer without failing
it (uploads and searches go on), a frozen one can't hold the probe, and what failed is told to
the admin only. The API's catalog statements are cut at the statement timeout."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from deeplens import clients
from deeplens_local.stack.stack import Stack
from tests.api import samples
from tests.api.stack_helpers import TenantHandle, create_tenant, delete_tenant, wait_for

# /readyz waits 1.5 s for its checks; the rest is the request itself on a busy machine.
PROBE_SECONDS = 3.0


@pytest.fixture(scope="module")
def tenant(api_url: str, admin_key: str) -> Iterator[TenantHandle]:
    handle = create_tenant(api_url, admin_key, "ready")
    yield handle
    delete_tenant(api_url, admin_key, handle.tenant_id)


def readyz(api_url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{api_url}/readyz", headers=headers, timeout=30)


def redis_is(api_url: str, status: str) -> bool:
    return bool(readyz(api_url).json()["dependencies"]["redis"]["status"] == status)


@pytest.mark.timeout(300)
def test_without_redis_the_api_is_degraded_and_still_uploads_and_searches(
    stack: Stack, api_url: str, tenant: TenantHandle
) -> None:
    stack.process("redis").stop()
    try:
        assert wait_for(lambda: redis_is(api_url, "degraded"), timeout=30), readyz(api_url).text
        response = readyz(api_url)
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"

        photo = samples.jpeg(16_001)
        upload = httpx.post(
            f"{api_url}/api/v1/images",
            headers=tenant.headers,
            files={"file": ("photo.jpg", photo, "image/jpeg")},
            timeout=60,
        )
        assert upload.status_code == 202, upload.text
        image_id = upload.json()["imageId"]

        def status() -> Any:
            url = f"{api_url}/api/v1/images/{image_id}/status"
            return httpx.get(url, headers=tenant.headers, timeout=30).json()["status"]

        assert wait_for(lambda: status() == "completed", timeout=180, interval=0.5), status()
        search = httpx.post(
            f"{api_url}/api/v1/search",
            headers=tenant.headers,
            files={"file": ("query.jpg", photo, "image/jpeg")},
            data={"topK": "3"},
            timeout=60,
        )
        assert search.status_code == 200, search.text
        assert search.json()["results"][0]["imageId"] == image_id
    finally:
        stack.restart("redis")
    assert wait_for(lambda: redis_is(api_url, "ok"), timeout=60), readyz(api_url).text


@pytest.mark.timeout(120)
def test_a_frozen_qdrant_makes_readyz_503_within_its_bound(stack: Stack, api_url: str) -> None:
    qdrant = stack.process("qdrant")
    qdrant.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = readyz(api_url)
        took = time.monotonic() - started
    finally:
        qdrant.send_signal(signal.SIGCONT)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["dependencies"]["qdrant"]["status"] == "unavailable"
    assert body["dependencies"]["postgres"]["status"] == "ok"
    assert took < PROBE_SECONDS, f"/readyz took {took:.1f} s"
    assert wait_for(lambda: readyz(api_url).status_code == 200, timeout=60)


def test_only_the_admin_is_told_what_runs_inside(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    stack.process("redis").stop()
    try:
        assert wait_for(lambda: redis_is(api_url, "degraded"), timeout=30)
        public = readyz(api_url)
        wrong = readyz(api_url, {"X-Admin-Key": "not-the-key"})
        admin = readyz(api_url, {"X-Admin-Key": admin_key}).json()
    finally:
        stack.restart("redis")
    for answer in (public, wrong):
        body = answer.json()
        assert body["model"] == {"loaded": True}
        assert "relay" not in body
        for name, dependency in body["dependencies"].items():
            assert set(dependency) == {"status", "reachable"}, (name, dependency)
        assert "Error" not in answer.text and "redis" in body["dependencies"]
    assert admin["dependencies"]["redis"]["error"]
    assert admin["dependencies"]["postgres"]["latencyMs"] >= 0
    assert len(admin["model"]["version"]) == 64
    assert "running" in admin["relay"]
    assert wait_for(lambda: redis_is(api_url, "ok"), timeout=60)


def test_a_bounded_pool_cancels_a_statement_past_the_timeout(stack: Stack) -> None:
    settings = stack.child_settings().model_copy(update={"database_statement_timeout_ms": 300})
    bounded = clients.postgres_pool(settings, "bounded", statement_timeout=True)
    unbounded = clients.postgres_pool(settings, "unbounded")
    try:
        with bounded.connection() as conn:
            started = time.monotonic()
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT pg_sleep(5)")
            assert time.monotonic() - started < 2
            assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection goes on
        with unbounded.connection() as conn:
            assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    finally:
        bounded.close()
        unbounded.close()
