"""Bounded work per request on the real stack: huge query images are refused before they are
decoded, an anonymous body is refused before it is read, and a frozen Redis costs searches
milliseconds, not seconds."""

from __future__ import annotations

import io
import signal
import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import create_tenant
from tests.faults.harness import photos, upload_all, wait_all_ended
from tests.security.front_door import total_rss_mib


def huge_png() -> bytes:
    """64 megapixels of one colour: about 250 KB as a PNG, 192 MB once decoded."""
    out = io.BytesIO()
    Image.new("RGB", (8000, 8000), (90, 120, 150)).save(out, format="PNG", optimize=False)
    return out.getvalue()


@pytest.mark.timeout(300)
def test_sixteen_64_megapixel_searches_leave_the_api_alive_and_bounded(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "bomb")
    query = huge_png()
    before = total_rss_mib(stack)

    def search(_: int) -> httpx.Response:
        return httpx.post(
            f"{api_url}/api/v1/search",
            headers=tenant.headers,
            files={"file": ("huge.png", query, "image/png")},
            timeout=120,
        )

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(search, range(16)))
    after = total_rss_mib(stack)
    assert [a.status_code for a in answers] == [413] * 16, answers[0].text
    assert "DEEPLENS_QUERY_DECODE_BUDGET_MB" in answers[0].json()["detail"]
    print(f"API memory {before:.0f} MiB before, {after:.0f} MiB after ({len(query)} B queries)")
    assert after - before < 300, (before, after)
    ok = httpx.post(
        f"{api_url}/api/v1/search",
        headers=tenant.headers,
        files={"file": ("q.jpg", photos(1, 34_000)[0], "image/jpeg")},
        timeout=30,
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.timeout(60)
def test_an_anonymous_20_mib_body_is_refused_before_it_is_read(api_url: str) -> None:
    url = urlsplit(api_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/search HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            + f"Content-Length: {20 * 1024 * 1024}\r\n\r\n".encode()
            + b"x" * 65536
        )
        started = time.monotonic()
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 401"), head[:200]
        assert time.monotonic() - started < 2
        assert b"connection: close" in head.lower()
        sock.settimeout(5)
        rest = b""
        while chunk := sock.recv(4096):  # the server closes: the client stops sending
            rest += chunk
        assert len(head + rest) < 4096


@pytest.mark.timeout(300)
def test_a_frozen_redis_costs_searches_milliseconds(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "frozen")
    ids = upload_all(api_url, tenant, photos(10, 35_000))
    wait_all_ended(stack, tenant.tenant_id, len(ids), timeout=120)
    redis = stack.process("redis")

    def searches(top_ks: range) -> list[float]:
        took = []
        with httpx.Client(base_url=api_url, timeout=30) as client:
            for top_k in top_ks:  # each topK once: no answer comes from the cache
                started = time.perf_counter()
                response = client.get(
                    f"/api/v1/images/{ids[0]}/similar",
                    params={"topK": top_k},
                    headers=tenant.headers,
                )
                took.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
        return took

    searches(range(1, 11))  # warm
    normal = statistics.median(searches(range(11, 51)))
    redis.send_signal(signal.SIGSTOP)  # the whole process group: the server itself
    try:
        frozen = statistics.median(searches(range(51, 91)))
    finally:
        redis.send_signal(signal.SIGCONT)
    print(f"search p50 {normal:.1f} ms with Redis, {frozen:.1f} ms with Redis frozen")
    assert frozen <= normal + 20, (normal, frozen)
