"""Faults injected into the running stack, each into a tenant of its own: a run worker killed
mid-run, Qdrant stopped during indexing, the broker restarted during uploads, the API killed
right after its 202s, the Dagster daemon restarted mid-run. Each case counts the accepted
uploads that did not end `completed` (none may) and whether the tenant's index holds exactly
its completed images; the "nothing lost" bar adds these to the no-fault phases. Runs last: it
restarts parts of the stack. (tests/faults has the same cases, with assertions.)
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.api import Tenant
from bench.context import Context, say
from deeplens import clients, vectors
from deeplens.catalog import runs
from deeplens_local import synthetic

IMAGES = 120
HEAL_TIMEOUT = 600.0


def run(ctx: Context) -> dict[str, Any]:
    stack = ctx.stack
    if stack is None:
        raise RuntimeError("the faults phase needs the bench's own stack")
    cases: dict[str, Callable[[Context, Tenant, list[bytes]], list[str]]] = {
        "run_worker_killed": _kill_worker,
        "qdrant_stopped_30s": _stop_qdrant,
        "broker_restarted": _restart_broker,
        "api_killed_after_202": _kill_api,
        "daemon_restarted": _restart_daemon,
    }
    out: dict[str, Any] = {}
    for n, (name, case) in enumerate(cases.items()):
        tenant = ctx.system.create_tenant(f"fault-{n}")
        blobs = [synthetic.photo_bytes(900_000 + 1000 * n + i, 320, 240) for i in range(IMAGES)]
        started = time.perf_counter()
        accepted = case(ctx, tenant, blobs)
        out[name] = _verdict(ctx, tenant, accepted, started)
        say(f"faults: {name}: {out[name]}")
    out["not_terminal"] = sum(c["not_completed"] for c in out.values())
    out["index_exact"] = all(c["index_exact"] for c in out.values() if isinstance(c, dict))
    return out


def upload_through(
    api_url: str, headers: dict[str, str], blobs: list[bytes], threads: int = 4
) -> list[str]:
    """Upload concurrently as a client would through an outage: an API that is restarting is
    asked again. Every upload must end accepted (202); returns the image ids."""

    def one(pair: tuple[int, bytes]) -> str:
        n, data = pair
        for _ in range(60):
            try:
                response = httpx.post(
                    f"{api_url}/api/v1/images",
                    headers=headers,
                    files={"file": (f"{n}.jpg", data, "image/jpeg")},
                    timeout=30,
                )
            except httpx.TransportError:
                time.sleep(1)
                continue
            if response.status_code != 202:
                raise RuntimeError(f"upload {n} refused: {response.status_code} {response.text}")
            return str(response.json()["imageId"])
        raise RuntimeError(f"upload {n}: the API did not come back")

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, enumerate(blobs)))


def _upload(ctx: Context, tenant: Tenant, blobs: list[bytes], threads: int = 4) -> list[str]:
    return upload_through(ctx.system.api_url, tenant.headers, blobs, threads)


def _worker_pid(ctx: Context, tenant: Tenant, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ctx.system.connect() as conn:
            beats = [b for b in runs.heartbeats(conn).values() if b.tenant_id == tenant.tenant_id]
        if beats:
            return beats[0].pid
        time.sleep(0.1)
    raise RuntimeError(f"no run worker of {tenant.tenant_id} within {timeout:.0f}s")


def _kill_worker(ctx: Context, tenant: Tenant, blobs: list[bytes]) -> list[str]:
    accepted = _upload(ctx, tenant, blobs)
    os.kill(_worker_pid(ctx, tenant), signal.SIGKILL)
    return accepted


def _stop_qdrant(ctx: Context, tenant: Tenant, blobs: list[bytes]) -> list[str]:
    assert ctx.stack is not None
    ctx.stack.process("qdrant").stop()
    down = time.monotonic()
    try:
        accepted = _upload(ctx, tenant, blobs)
        time.sleep(max(0.0, 30 - (time.monotonic() - down)))
    finally:
        ctx.stack.restart("qdrant")
    return accepted


def _restart_broker(ctx: Context, tenant: Tenant, blobs: list[bytes]) -> list[str]:
    assert ctx.stack is not None
    accepted: list[str] = []
    uploader = threading.Thread(target=lambda: accepted.extend(_upload(ctx, tenant, blobs, 2)))
    uploader.start()
    time.sleep(1.0)
    ctx.stack.restart("kafka", sig=signal.SIGKILL)
    uploader.join()
    return accepted


def _kill_api(ctx: Context, tenant: Tenant, blobs: list[bytes]) -> list[str]:
    assert ctx.stack is not None
    half = len(blobs) // 2
    accepted = _upload(ctx, tenant, blobs[:half])
    ctx.stack.restart("search-api", sig=signal.SIGKILL)
    accepted += _upload(ctx, tenant, blobs[half:])
    return accepted


def _restart_daemon(ctx: Context, tenant: Tenant, blobs: list[bytes]) -> list[str]:
    assert ctx.stack is not None
    accepted = _upload(ctx, tenant, blobs)
    _worker_pid(ctx, tenant)
    ctx.stack.restart("dagster-daemon", sig=signal.SIGKILL)
    return accepted


def _verdict(ctx: Context, tenant: Tenant, accepted: list[str], started: float) -> dict[str, Any]:
    deadline = time.monotonic() + HEAL_TIMEOUT
    while True:
        with ctx.system.connect() as conn:
            rows = conn.execute(
                "SELECT status, count(*) FROM deeplens.images WHERE tenant_id = %s GROUP BY 1",
                (tenant.tenant_id,),
            ).fetchall()
        by_status = {str(s): int(n) for s, n in rows}
        waiting = sum(n for s, n in by_status.items() if s not in ("completed", "failed"))
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(1)
    completed = by_status.get("completed", 0)
    qdrant = clients.qdrant(ctx.system.settings)
    points = vectors.count(qdrant, tenant.collection)
    qdrant.close()
    return {
        "accepted": len(accepted),
        "completed": completed,
        "by_status": by_status,
        "not_completed": len(accepted) - completed,
        "index_exact": points == completed,
        "seconds_to_heal": round(time.perf_counter() - started, 1),
    }
