"""At 10,000 points the server builds an HNSW index by itself, and searches use it.

Random 256-d Gaussian vectors are the hardest case for HNSW (no low-dimensional structure): with
Qdrant's default graph (m=16, ef_construct=100) recall@10 is about 0.67 on them, so this
collection asks for m=32, ef_construct=200 (recall about 0.98), which also checks that
``hnsw_config`` reaches the engine.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as m

from .local_server import LocalQdrant

log = logging.getLogger(__name__)

N, DIM, QUERIES, K = 10_000, 256, 100, 10


def _wait_indexed(client: QdrantClient, name: str, timeout: float = 120.0) -> m.CollectionInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.get_collection(name)
        if info.status == m.CollectionStatus.GREEN and info.indexed_vectors_count == N:
            return info
        time.sleep(0.2)
    raise TimeoutError(f"not indexed after {timeout}s: {info}")


def test_hnsw_recall(server: LocalQdrant, client: QdrantClient, name: str) -> None:
    rng = np.random.default_rng(42)
    data = rng.standard_normal((N, DIM)).astype(np.float32)
    queries = rng.standard_normal((QUERIES, DIM)).astype(np.float32)
    client.create_collection(
        name,
        vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE),
        hnsw_config=m.HnswConfigDiff(m=32, ef_construct=200),
    )

    started = time.perf_counter()
    for lo in range(0, N, 1000):
        batch = m.Batch(ids=list(range(lo, lo + 1000)), vectors=data[lo : lo + 1000].tolist())
        client.upsert(name, points=batch, wait=True)
    uploaded = time.perf_counter()
    info = _wait_indexed(client, name)
    indexed = time.perf_counter()
    assert info.points_count == N
    assert info.config.hnsw_config.m == 32

    recall_hits, server_ms = 0, []
    for q in queries:
        body = {"query": q.tolist(), "limit": K}
        reply = httpx.post(f"{server.url}/collections/{name}/points/query", json=body).json()
        server_ms.append(reply["time"] * 1000)
        approx = [p["id"] for p in reply["result"]["points"]]
        exact = client.query_points(
            name, query=q.tolist(), limit=K, search_params=m.SearchParams(exact=True)
        )
        recall_hits += len(set(approx) & {p.id for p in exact.points})
    recall = recall_hits / (QUERIES * K)
    log.info(
        "HNSW %dx%d: upload %.1fs, indexing %.1fs, recall@%d %.3f, server time median %.2f ms",
        N,
        DIM,
        uploaded - started,
        indexed - uploaded,
        K,
        recall,
        statistics.median(server_ms),
    )
    assert recall >= 0.95
    client.delete_collection(name)


def test_a_client_waiting_for_green_gets_the_index_built_without_the_pause(
    tmp_path: Path, name: str
) -> None:
    """A writer that is done asks for the collection's info (as a rebuild waits for green): the
    index is built then, not after the server's pause in the writes (here ten minutes)."""
    server = LocalQdrant(tmp_path / "data", optimize_delay=600)
    server.start()
    try:
        client = server.client()
        client.create_collection(
            name,
            vectors_config=m.VectorParams(size=64, distance=m.Distance.COSINE),
            optimizers_config=m.OptimizersConfigDiff(indexing_threshold=200),  # KB: 800 vectors
        )
        data = np.random.default_rng(7).standard_normal((1000, 64)).astype(np.float32)
        client.upsert(name, points=m.Batch(ids=list(range(1000)), vectors=data.tolist()))
        assert client.get_collection(name).status == m.CollectionStatus.YELLOW
        deadline = time.monotonic() + 60
        while (info := client.get_collection(name)).status != m.CollectionStatus.GREEN:
            assert time.monotonic() < deadline, f"still not indexed: {info}"
            time.sleep(0.1)
        assert info.indexed_vectors_count == 1000
        client.close()
    finally:
        server.stop()
