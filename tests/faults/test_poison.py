"""An image's own fault fails that image alone: a damaged file, and a picture too large to decode
within the run worker's memory budget, in a batch of 100; the other 98 complete."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import create_tenant
from tests.faults.harness import assert_healed, peak_rss_mib, photos, upload_all, wait_worker

WORKER_MEMORY_MIB = 1024


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
    worker = wait_worker(stack, tenant.tenant_id)
    peak = 0.0
    while (rss := peak_rss_mib(worker.pid)) is not None:
        peak = max(peak, rss)
    uploads.join()
    accepted = [damaged, *huge_id, *rest]
    assert_healed(
        stack,
        tenant,
        accepted,
        poison={damaged: "could not decode", huge_id[0]: "to decode"},
    )
    assert peak < WORKER_MEMORY_MIB, f"a run worker peaked at {peak:.0f} MiB"
