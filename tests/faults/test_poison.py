"""An image's own fault fails that image alone: a damaged file, and a picture too large to decode
within the run worker's memory budget, in a batch of 100; the other 98 complete."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from deeplens.catalog import runs
from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import create_tenant
from tests.faults.harness import (
    assert_healed,
    peak_rss_mib,
    photos,
    statuses,
    upload_all,
    wait_worker,
)

WORKER_MEMORY_MIB = 1024


def tenant_workers(stack: Stack, tenant_id: str) -> list[int]:
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        return [b.pid for b in runs.heartbeats(conn).values() if b.tenant_id == tenant_id]


def waiting(stack: Stack, tenant_id: str) -> bool:
    return any(s not in ("completed", "failed") for s, _, _ in statuses(stack, tenant_id).values())


def huge_png() -> bytes:
    """64 megapixels (the most an upload may have), about 250 KB: cheap to send, dear to decode."""
    out = io.BytesIO()
    Image.new("RGB", (8000, 8000), (120, 160, 200)).save(out, format="PNG", optimize=False)
    return out.getvalue()


@pytest.mark.timeout(600)
def test_poison_images_fail_alone(stack: Stack, api_url: str, admin_key: str) -> None:
    tenant = create_tenant(api_url, admin_key, "poison")
    # The damaged one is written whole, then damaged at rest (the API checks what it accepts).
    damaged = upload_all(api_url, tenant, photos(1, 50_000))[0]
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT blob_key FROM deeplens.images WHERE image_id = %s", (damaged,)
        ).fetchone()
    assert row is not None
    blob = Path(stack.env["DEEPLENS_BLOB_ROOT"]) / row[0]
    # Within one tick, before a run reads it: the upload's event goes through Kafka first.
    blob.write_bytes(b"\xff\xd8\xff" + b"\x00" * (blob.stat().st_size - 3))

    huge_id: list[str] = []
    rest: list[str] = []
    uploads = threading.Thread(
        target=lambda: (
            huge_id.extend(upload_all(api_url, tenant, [huge_png()])),
            rest.extend(upload_all(api_url, tenant, photos(98, 50_100))),
        )
    )
    uploads.start()
    wait_worker(stack, tenant.tenant_id)
    peaks: dict[int, float] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (uploads.is_alive() or waiting(stack, tenant.tenant_id)):
        for pid in tenant_workers(stack, tenant.tenant_id):  # every run of the tenant
            if (rss := peak_rss_mib(pid)) is not None:
                peaks[pid] = max(peaks.get(pid, 0.0), rss)
        time.sleep(0.05)
    uploads.join()
    accepted = [damaged, *huge_id, *rest]
    assert_healed(
        stack,
        tenant,
        accepted,
        poison={damaged: "could not decode", huge_id[0]: "to decode"},
    )
    assert peaks, "the run workers were watched"
    assert max(peaks.values()) < WORKER_MEMORY_MIB, f"run workers peaked at {peaks} MiB"
