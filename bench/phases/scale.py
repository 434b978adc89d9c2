"""Scale for the search bars: the bulk tenant's collection filled up to N vectors.

Random unit vectors (the model's dimension), upserted with the project's own
`deeplens.vectors.upsert` into the tenant's alias, in parallel batches, beside the real images.
The collection indexes as it fills. (Qdrant's bulk-load recipe, indexing off while uploading and
one build at the end, was measured slower on the embedded server: about 100 s of inserts, then
a 100k-vector HNSW build of 5+ minutes on two cores, against about 220 s for both interleaved.)
Search is measured only once the collection reports green with its vectors indexed.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from bench.context import Context, say
from deeplens import clients, vectors
from deeplens.model.registry import get_model

FILTERED_UPLOADER = "bench-one-in-ten"


def uploader(n: int) -> str:
    return FILTERED_UPLOADER if n % 10 == 0 else "bench-others"


def run(ctx: Context) -> dict[str, Any]:
    cfg = ctx.config
    tenant = ctx.bulk_tenant
    assert tenant is not None, "the bulk ingest phase runs first"
    dim = get_model().dimension
    client = clients.qdrant(ctx.system.settings, timeout=600)
    alias = tenant.collection
    physical = vectors.alias_target(client, alias)
    assert physical is not None, f"no collection behind {alias}"
    before = vectors.count(client, alias)
    need = max(0, cfg.vectors - before)
    threshold = client.get_collection(physical).config.optimizer_config.indexing_threshold
    say(f"scale: upserting {need} synthetic vectors into {alias} ({before} real)")

    started = time.perf_counter()
    batches = [(n, min(cfg.vector_batch, need - n)) for n in range(0, need, cfg.vector_batch)]
    local = threading.local()

    def insert(batch: tuple[int, int]) -> None:
        if not hasattr(local, "client"):
            local.client = clients.qdrant(ctx.system.settings, timeout=600)
        start, size = batch
        rng = np.random.default_rng(cfg.seed * 7919 + start)
        matrix = rng.standard_normal((size, dim)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        ids = [uuid.UUID(bytes=rng.bytes(16), version=4) for _ in range(size)]
        # One in ten carries the uploader the filtered search asks for.
        payloads = [
            {"tenantId": tenant.tenant_id, "synthetic": True, "uploadedBy": uploader(start + n)}
            for n in range(size)
        ]
        vectors.upsert(local.client, alias, ids, matrix, payloads)

    with ThreadPoolExecutor(cfg.vector_parallel, thread_name_prefix="bench-upsert") as pool:
        list(pool.map(insert, batches))
    insert_s = time.perf_counter() - started
    say(f"scale: inserted in {insert_s:.1f}s ({need / max(insert_s, 1e-9):.0f}/s); indexing")
    started = time.perf_counter()
    info = _wait_indexed(client, alias, cfg.index_timeout, threshold, dim)
    index_s = time.perf_counter() - started
    say(f"scale: indexed in {index_s:.1f}s")
    client.close()
    return {
        "collection": alias,
        "physical_collection": physical,
        "real_vectors": before,
        "synthetic_vectors": need,
        "dimension": dim,
        "batch": cfg.vector_batch,
        "parallel_requests": cfg.vector_parallel,
        "insert_seconds": round(insert_s, 1),
        "vectors_per_second": round(need / max(insert_s, 1e-9), 1),
        "index_seconds": round(index_s, 1),
        "indexing_threshold_kb": threshold,
        "collection_info": info,
    }


def _wait_indexed(
    client: QdrantClient, alias: str, timeout: float, threshold_kb: int | None, dim: int
) -> dict[str, Any]:
    """Until the collection is green with (nearly) all vectors in HNSW segments, or too small
    for any segment to reach the indexing threshold (then search is a full scan by design)."""
    deadline = time.monotonic() + timeout
    while True:
        info = client.get_collection(alias)
        points = info.points_count or 0
        indexed = info.indexed_vectors_count or 0
        green = info.status == qm.CollectionStatus.GREEN
        too_small = threshold_kb is not None and points * dim * 4 / 1024 < threshold_kb
        if (green and (indexed >= 0.9 * points or too_small)) or time.monotonic() > deadline:
            return {
                "status": str(info.status.value),
                "points": points,
                "indexed_vectors": indexed,
                "segments": info.segments_count,
                "timed_out": not green,
                "below_indexing_threshold": too_small,
            }
        time.sleep(1)
