"""The reindex pattern: while a reader queries through an alias onto collection A, a writer
builds collection B (big enough for the server to build its HNSW index), waits until it is
indexed, then moves the alias in one request (delete_alias + create_alias). Every read answers
completely from A or from B (no error, no empty or short answer, no mix), and reads of A are not
held up while B's index is built."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as m

from .local_server import LocalQdrant

log = logging.getLogger(__name__)

DIM, K = 256, 10
A_POINTS, B_POINTS = 2_000, 10_000  # B crosses the 10,000 kB indexing threshold, A does not


def _build(client: QdrantClient, collection: str, generation: str, n: int, seed: int) -> None:
    params = m.VectorParams(size=DIM, distance=m.Distance.COSINE)
    client.create_collection(collection, vectors_config=params)
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    for lo in range(0, n, 1000):
        batch = m.Batch(
            ids=list(range(lo, lo + 1000)),
            vectors=vectors[lo : lo + 1000].tolist(),
            payloads=[{"generation": generation}] * 1000,
        )
        client.upsert(collection, points=batch, wait=True)


def _wait_indexed(client: QdrantClient, collection: str, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (info := client.get_collection(collection)).indexed_vectors_count != n:
        assert time.monotonic() < deadline, f"{collection} not indexed: {info}"
        time.sleep(0.1)


def test_alias_swap_is_atomic(server: LocalQdrant, name: str) -> None:
    a, b, alias = f"{name}_a", f"{name}_b", f"{name}_live"
    writer = server.client()
    _build(writer, a, "A", A_POINTS, seed=1)
    create_a = m.CreateAliasOperation(
        create_alias=m.CreateAlias(collection_name=a, alias_name=alias)
    )
    writer.update_collection_aliases([create_a])

    seen: Counter[str] = Counter()
    problems: list[str] = []
    slowest = [0.0]
    stop, swapped = threading.Event(), threading.Event()

    def read() -> None:
        reader = server.client()
        query = np.random.default_rng(9).standard_normal(DIM).tolist()
        while not stop.is_set():
            started = time.perf_counter()
            try:
                points = reader.query_points(alias, query=query, limit=K, with_payload=True).points
            except Exception as exc:  # any failure is what this test looks for
                problems.append(repr(exc))
                continue
            if not swapped.is_set():
                slowest[0] = max(slowest[0], time.perf_counter() - started)
            generations = {p.payload["generation"] for p in points if p.payload}
            if len(points) != K or len(generations) != 1:
                problems.append(f"{len(points)} points from {generations}")
            else:
                seen[generations.pop()] += 1
        reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    _build(writer, b, "B", B_POINTS, seed=2)
    uploaded = time.monotonic()
    _wait_indexed(writer, b, B_POINTS)
    indexing = time.monotonic() - uploaded
    writer.update_collection_aliases(
        [
            m.DeleteAliasOperation(delete_alias=m.DeleteAlias(alias_name=alias)),
            m.CreateAliasOperation(create_alias=m.CreateAlias(collection_name=b, alias_name=alias)),
        ]
    )
    swapped.set()
    reads_at_swap = sum(seen.values())
    while sum(seen.values()) < reads_at_swap + 50 and thread.is_alive():
        time.sleep(0.01)
    stop.set()
    thread.join()

    log.info(
        "reads: %s; B indexed in %.1fs; slowest read of A meanwhile: %.0f ms",
        dict(seen),
        indexing,
        slowest[0] * 1e3,
    )
    assert problems == []
    assert seen["A"] > 0 and seen["B"] > 0, seen
    # Had B's index build held A's reads up, one of them would have taken about as long.
    bound = max(2.0, indexing / 2)
    assert slowest[0] < bound, f"a read of A took {slowest[0]:.1f}s while B was indexed"
    assert [x.alias_name for x in writer.get_collection_aliases(b).aliases] == [alias]
    assert writer.get_collection_aliases(a).aliases == []
    writer.delete_collection(a)
    writer.delete_collection(b)
    writer.close()
