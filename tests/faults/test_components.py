"""Outages of the components a run or an upload needs: Qdrant, the broker, the API itself.
Each heals by itself once the component is back: every accepted upload ends `completed`."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import create_tenant
from tests.faults.harness import assert_healed, embedded_count, photos, upload_all, wait_until


@pytest.mark.timeout(600)
def test_qdrant_down_for_a_minute_during_indexing(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "qdrant-down")
    stack.process("qdrant").stop()
    down_since = time.monotonic()
    try:
        accepted = upload_all(api_url, tenant, photos(60, 20_000))
        # Feature extraction goes on without Qdrant: vectors are stored, indexing waits.
        wait_until(lambda: embedded_count(stack, tenant.tenant_id) == 60, "embedding", 120)
        time.sleep(max(0.0, 60 - (time.monotonic() - down_since)))
    finally:
        stack.restart("qdrant")
    ended = assert_healed(stack, tenant, accepted)
    assert any(attempts >= 1 for _, _, attempts in ended.values()), "indexing was retried"


@pytest.mark.timeout(600)
def test_the_broker_restarted_during_a_bulk_upload(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "broker")
    blobs = photos(160, 21_000)
    accepted: list[str] = []

    def upload() -> None:
        accepted.extend(upload_all(api_url, tenant, blobs, clients_=2))

    uploader = threading.Thread(target=upload)
    uploader.start()
    time.sleep(1.5)
    stack.restart("kafka", sig=signal.SIGKILL)  # the embedded broker comes back empty
    uploader.join()
    assert len(accepted) == len(blobs)
    assert_healed(stack, tenant, accepted, timeout=400)


@pytest.mark.timeout(300)
def test_the_api_killed_right_after_a_202_loses_nothing(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "api-killed")
    accepted = upload_all(api_url, tenant, photos(10, 22_000))
    stack.restart("search-api", sig=signal.SIGKILL)
    accepted += upload_all(api_url, tenant, photos(5, 22_100))
    stack.restart("search-api", sig=signal.SIGKILL)
    assert_healed(stack, tenant, accepted)
