"""Fair sharing on the real stack: a flooding key is answered 429 and another tenant's searches
keep their latency; a tenant's quota refuses the upload past it and stores nothing."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from bench.flood import flooding, timed_searches
from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import create_tenant
from tests.faults.harness import photos, upload_all, wait_all_ended
from tests.security.front_door import p99, set_limits

FLOOD_THREADS = 16
FLOOD_SECONDS = 15.0
SEARCHES = 400  # each way: a p99 of 400 is the 4th slowest, not the 2nd
RATE = 50  # the flooder's reads per second


@pytest.mark.timeout(300)
def test_a_flood_from_one_key_gets_429_while_another_tenant_searches_as_before(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    victim = create_tenant(api_url, admin_key, "quiet")
    flooder = create_tenant(api_url, admin_key, "flood")
    set_limits(api_url, admin_key, flooder.tenant_id, readsPerSecond=RATE)
    ids = upload_all(api_url, victim, photos(20, 31_000))
    wait_all_ended(stack, victim.tenant_id, len(ids), timeout=120)

    with httpx.Client(base_url=api_url, timeout=30) as client:
        timed_searches(client, victim.headers, ids[0], 20)  # warm: connections, caches
        quiet = timed_searches(client, victim.headers, ids[0], SEARCHES)
        flooder_answers = flooding(api_url, flooder.headers, FLOOD_THREADS, FLOOD_SECONDS)
        time.sleep(3)  # the flooder's process is started and flooding
        flooded = timed_searches(client, victim.headers, ids[0], SEARCHES)
        answers = flooder_answers.result(timeout=FLOOD_SECONDS + 60)

    sent = sum(answers.values())
    print(
        f"quiet p50 {statistics.median(quiet):.1f} p99 {p99(quiet):.1f} ms; "
        f"flooded p50 {statistics.median(flooded):.1f} p99 {p99(flooded):.1f} ms; "
        f"flood answers {answers}"
    )
    admitted = sent - answers.get(429, 0)
    assert answers.get(429, 0) > 0, answers
    assert admitted <= RATE * FLOOD_SECONDS * 1.2 + RATE, f"held to its rate: {answers}"
    # The median is not moved by the flood. The design's bar for the p99, twice the quiet p99,
    # is measured by the bench on a quiet machine (`bench/phases/fairness.py`; this test alone
    # on a quiet machine: 1.1x to 1.4x); inside the whole suite, with other tests' stacks and
    # runs about, the p99 check guards against a regression.
    assert statistics.median(flooded) <= 2 * statistics.median(quiet), (quiet, flooded)
    assert p99(flooded) <= 5 * p99(quiet), (p99(quiet), p99(flooded))


@pytest.mark.timeout(300)
def test_an_upload_past_the_quota_is_429_and_stores_nothing(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "quota")
    set_limits(api_url, admin_key, tenant.tenant_id, maxImages=3)
    accepted = upload_all(api_url, tenant, photos(3, 32_000))
    blobs = stack.child_settings().resolved_blob_root() / tenant.tenant_id
    stored = sorted(p.name for p in blobs.rglob("*") if p.is_file())

    refused = httpx.post(
        f"{api_url}/api/v1/images",
        headers=tenant.headers,
        files={"file": ("extra.jpg", photos(1, 32_500)[0], "image/jpeg")},
        timeout=30,
    )
    assert refused.status_code == 429, refused.text
    assert "quota of 3 images" in refused.json()["detail"]
    assert refused.headers["Retry-After"]
    assert sorted(p.name for p in blobs.rglob("*") if p.is_file()) == stored

    again = httpx.post(
        f"{api_url}/api/v1/images",
        headers=tenant.headers,
        files={"file": ("again.jpg", photos(1, 32_000)[0], "image/jpeg")},
        timeout=30,
    )
    assert again.status_code == 200, "bytes already held are a duplicate, not a new image"
    detail = httpx.get(
        f"{api_url}/api/v1/admin/tenants/{tenant.tenant_id}",
        headers={"X-Admin-Key": admin_key},
        timeout=30,
    ).json()
    assert detail["usage"]["images"] == len(accepted) == 3
    assert detail["limits"]["maxImages"] == 3
