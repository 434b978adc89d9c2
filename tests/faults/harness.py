"""What the fault tests share: uploads, waiting for every image to end, finding run workers, and
the one verdict every fault must end with (nothing accepted is lost, the index is exact)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.phases.faults import upload_through
from deeplens import clients, vectors
from deeplens.catalog import runs
from deeplens_dagster.sensors.reconciler import is_run_worker
from deeplens_local import synthetic
from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import TenantHandle

TERMINAL = ("completed", "failed")


def photos(count: int, seed: int) -> list[bytes]:
    """Small, distinct photo-like JPEGs (fast to make and to embed)."""
    return [synthetic.photo_bytes(seed + n, 320, 240) for n in range(count)]


def upload_all(
    api_url: str, tenant: TenantHandle, blobs: list[bytes], clients_: int = 4
) -> list[str]:
    """Upload concurrently; every upload must be accepted (202). Returns the image ids."""
    return upload_through(api_url, tenant.headers, blobs, clients_)


def statuses(stack: Stack, tenant_id: str) -> dict[str, tuple[str, str | None, int]]:
    """Every image of the tenant: (status, failure reason, attempts)."""
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT image_id, status, failure_reason, attempts FROM deeplens.images"
            " WHERE tenant_id = %s",
            (tenant_id,),
        ).fetchall()
    return {str(r[0]): (r[1], r[2], r[3]) for r in rows}


def wait_all_ended(
    stack: Stack, tenant_id: str, count: int, timeout: float
) -> dict[str, tuple[str, str | None, int]]:
    deadline = time.monotonic() + timeout
    while True:
        now = statuses(stack, tenant_id)
        ended = [s for s, _, _ in now.values() if s in TERMINAL]
        if len(now) >= count and len(ended) == len(now):
            return now
        if time.monotonic() > deadline:
            waiting: dict[str, int] = {}
            for s, _, _ in now.values():
                waiting[s] = waiting.get(s, 0) + 1
            raise AssertionError(f"not every image ended within {timeout:.0f}s: {waiting}")
        time.sleep(1)


def assert_healed(
    stack: Stack,
    tenant: TenantHandle,
    accepted: list[str],
    timeout: float = 300,
    poison: dict[str, str] | None = None,
) -> dict[str, tuple[str, str | None, int]]:
    """Every accepted upload ends `completed`, but the poison images, which end `failed` with a
    reason containing the given words; the tenant's index holds exactly the completed images."""
    poison = poison or {}
    ended = wait_all_ended(stack, tenant.tenant_id, len(accepted), timeout)
    assert set(accepted) <= set(ended), "an accepted upload has no row"
    for image_id in accepted:
        status, reason, _ = ended[image_id]
        if image_id in poison:
            assert status == "failed", (image_id, status)
            assert reason is not None and poison[image_id] in reason, reason
        else:
            assert status == "completed", (image_id, status, reason)
    completed = sum(1 for s, _, _ in ended.values() if s == "completed")
    qdrant = clients.qdrant(stack.child_settings())
    alias = str(tenant.body["collection"])
    assert vectors.count(qdrant, alias) == completed, "the index holds exactly the completed"
    return ended


@dataclass(frozen=True)
class Worker:
    run_id: str
    pid: int


def wait_worker(stack: Stack, tenant_id: str, timeout: float = 120) -> Worker:
    """A run worker of the tenant that is running now (a finished run's last heartbeat stays
    until the reconciler clears it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
            beats = [b for b in runs.heartbeats(conn).values() if b.tenant_id == tenant_id]
        for beat in sorted(beats, key=lambda b: b.started_at, reverse=True):
            if is_run_worker(beat.pid):
                return Worker(beat.run_id, beat.pid)
        time.sleep(0.1)
    raise AssertionError(f"no run worker of {tenant_id} started within {timeout:.0f}s")


def wait_busy_worker(stack: Stack, tenant_id: str, timeout: float = 120) -> Worker:
    """A live run worker of the tenant with images taken up and not yet embedded: mid-run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
            busy = {
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT run_id FROM deeplens.images WHERE tenant_id = %s"
                    " AND status = 'processing' AND embedded_at IS NULL",
                    (tenant_id,),
                ).fetchall()
            }
            beats = runs.heartbeats(conn)
        for run_id in busy:
            beat = beats.get(run_id)
            if beat is not None and is_run_worker(beat.pid):
                return Worker(run_id, beat.pid)
        time.sleep(0.05)
    raise AssertionError(f"no run of {tenant_id} was mid-run within {timeout:.0f}s")


def signal_busy_worker(stack: Stack, tenant_id: str, sig: int, timeout: float = 120) -> Worker:
    """Send `sig` to a run worker of the tenant while it is mid-run. A worker found busy may end
    before the signal reaches it; then the next busy one is taken."""
    deadline = time.monotonic() + timeout
    while True:
        worker = wait_busy_worker(stack, tenant_id, max(1.0, deadline - time.monotonic()))
        try:
            os.kill(worker.pid, sig)
            return worker
        except ProcessLookupError:
            if time.monotonic() > deadline:
                raise


def wait_until(predicate: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(0.2)


def embedded_count(stack: Stack, tenant_id: str) -> int:
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM deeplens.images WHERE tenant_id = %s AND embedded_at IS NOT NULL",
            (tenant_id,),
        ).fetchone()
    return int(row[0]) if row else 0


def run_worker_pids() -> set[int]:
    """Processes that are Dagster run workers (children of a code server)."""
    return {
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and int(entry.name) != os.getpid()
        and is_run_worker(int(entry.name))
    }


def peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
