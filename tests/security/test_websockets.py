"""The status WebSocket on the real stack, used as an attacker would: one key opening 1,000
sockets gets its cap per API process and the rest are closed with 4429, the API's memory stays
bounded, the sockets that wait cost the catalog nothing, and any ``imageId`` gets a clean close."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.sync.client import connect as connect_sync

from deeplens_local.stack.stack import Stack
from tests.api import samples
from tests.api.stack_helpers import TenantHandle, create_tenant, delete_tenant, wait_for
from tests.security.front_door import api_pids, total_rss_mib

SOCKETS = 1000
AT_ONCE = 100  # sockets opening together
MAX_RSS_GROWTH_MIB = 200
MAX_CLOSE_REASON_BYTES = 123
# How long the sockets wait with nothing to read (twice the 5 s poll they used to make).
IDLE_SECONDS = 10


@pytest.fixture(scope="module")
def tenant(api_url: str, admin_key: str) -> Iterator[TenantHandle]:
    handle = create_tenant(api_url, admin_key, "sockets")
    yield handle
    delete_tenant(api_url, admin_key, handle.tenant_id)


@pytest.fixture(scope="module")
def waiting_image(stack: Stack, api_url: str, tenant: TenantHandle) -> str:
    """An image that stays `retrying` (its next attempt an hour away): its sockets stay open."""
    response = httpx.post(
        f"{api_url}/api/v1/images",
        headers=tenant.headers,
        files={"file": ("photo.jpg", samples.jpeg(15_001), "image/jpeg")},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    image_id = str(response.json()["imageId"])

    def ended() -> bool:
        status = httpx.get(
            f"{api_url}/api/v1/images/{image_id}/status", headers=tenant.headers, timeout=30
        ).json()["status"]
        return status in {"completed", "failed"}

    assert wait_for(ended, timeout=180, interval=0.5), "the image was not processed"
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "UPDATE deeplens.images SET status = 'retrying', retry_since = now(),"
            " next_attempt_at = now() + interval '1 hour', updated_at = now()"
            " WHERE image_id = %s",
            (image_id,),
        )
    return image_id


def socket_url(api_url: str, image_id: str) -> str:
    query = urllib.parse.urlencode({"imageId": image_id})
    return api_url.replace("http", "ws", 1) + f"/hub/processing-status?{query}"


async def open_one(url: str, key: str) -> tuple[ClientConnection | None, int | None]:
    """A socket kept open (it got the status), or the close code of its refusal."""
    socket = await connect(url, additional_headers={"X-API-Key": key}, open_timeout=120)
    first = json.loads(await socket.recv())
    if "detail" not in first:
        return socket, None
    try:
        await socket.recv()
    except ConnectionClosed as closed:
        return None, closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError(f"a refused socket stayed open: {first}")


async def open_many(url: str, key: str) -> tuple[list[ClientConnection], Counter[int | None]]:
    gate = asyncio.Semaphore(AT_ONCE)

    async def one() -> tuple[ClientConnection | None, int | None]:
        async with gate:
            return await open_one(url, key)

    outcomes = await asyncio.gather(*(one() for _ in range(SOCKETS)))
    held = [socket for socket, _ in outcomes if socket is not None]
    return held, Counter(code for socket, code in outcomes if socket is None)


def api_workers(stack: Stack) -> list[int]:
    """The API's processes that serve: uvicorn's workers, or its one process."""
    root, *children = api_pids(stack)
    spawned = [p for p in children if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
    return spawned or [root]


def api_queries_within(stack: Stack, seconds: float) -> int:
    """The API's catalog connections (its pool) that ran a statement in the last `seconds`."""
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'deeplens-api'"
            " AND state_change > now() - make_interval(secs => %s)",
            (seconds,),
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.timeout(600)
def test_a_thousand_sockets_from_one_key_are_capped_and_cost_nothing_while_they_wait(
    stack: Stack, api_url: str, tenant: TenantHandle, waiting_image: str
) -> None:
    cap = stack.child_settings().websockets_per_key
    workers = len(api_workers(stack))
    rss_before = total_rss_mib(stack)

    async def scenario() -> dict[str, Any]:
        started = time.monotonic()
        held, refused = await open_many(socket_url(api_url, waiting_image), tenant.api_key)
        opened_in = time.monotonic() - started
        try:
            rss_open = total_rss_mib(stack)
            reading_at_open = api_queries_within(stack, IDLE_SECONDS)
            await asyncio.sleep(IDLE_SECONDS)
            reading_while_idle = api_queries_within(stack, IDLE_SECONDS - 1)
            alive = sum(1 for socket in held if socket.close_code is None)
        finally:
            await asyncio.gather(*(socket.close() for socket in held))
        return {
            "held": len(held),
            "alive": alive,
            "refused": refused,
            "opened_in": round(opened_in, 1),
            "rss_growth": round(rss_open - rss_before, 1),
            "reading_at_open": reading_at_open,
            "reading_while_idle": reading_while_idle,
        }

    seen = asyncio.run(scenario())
    print(f"\n{SOCKETS} sockets, cap {cap} x {workers} API processes: {seen}")
    held = seen["held"]
    assert cap <= held <= cap * workers, seen
    assert seen["refused"] == Counter({4429: SOCKETS - held}), seen
    assert seen["alive"] == held, "a socket within the cap was closed"
    assert seen["rss_growth"] < MAX_RSS_GROWTH_MIB, seen
    # Each socket within the cap read the status when it opened (the count sees reads); polling
    # every 5 s would keep reading; pushed, waiting sockets leave the catalog alone.
    assert seen["reading_at_open"] >= 1, seen
    assert seen["reading_while_idle"] == 0, seen


def refusal_of(url: str, key: str) -> tuple[dict[str, object], int, str]:
    with connect_sync(url, additional_headers={"X-API-Key": key}, open_timeout=30) as socket:
        body = json.loads(socket.recv(timeout=30))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=30)
    assert closed.value.rcvd is not None
    return body, closed.value.rcvd.code, closed.value.rcvd.reason


@pytest.mark.parametrize(
    "image_id",
    [
        "bildé-🖼-\x00\x1b[31m",  # non-ASCII and control characters
        "é" * 1000,  # 2,000 bytes, 6,000 in the URL: a close reason cut by characters overflows
        "x" * 7800,  # as long as the server's 8 KiB request line lets through
    ],
    ids=["non-ascii", "long-non-ascii", "long"],
)
def test_any_image_id_gets_a_clean_4400(api_url: str, tenant: TenantHandle, image_id: str) -> None:
    body, code, reason = refusal_of(socket_url(api_url, image_id), tenant.api_key)
    assert code == 4400
    assert len(reason.encode()) <= MAX_CLOSE_REASON_BYTES
    detail = str(body["detail"])
    assert "not an image id" in detail and len(detail) < 200


def test_an_image_id_past_the_servers_request_line_limit_is_refused_before_the_app(
    api_url: str, tenant: TenantHandle
) -> None:
    """A 10 KB ``imageId`` makes a request line longer than uvicorn's WebSocket implementation
    reads (8 KiB): the handshake fails there (the 414 it prepares is not sent, so the client
    gives up at its open timeout), and the API goes on answering."""
    url = socket_url(api_url, "x" * 10_000)
    with pytest.raises((InvalidStatus, InvalidMessage, TimeoutError)):
        connect_sync(url, additional_headers=tenant.headers, open_timeout=3).close()
    assert httpx.get(f"{api_url}/healthz", timeout=10).status_code == 200
