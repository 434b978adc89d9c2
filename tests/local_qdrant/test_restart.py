"""Data, payload indexes and aliases survive a restart of the server on the same directory."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as m

from .local_server import LocalQdrant

DIM = 16


def _snapshot(
    client: QdrantClient, name: str, alias: str, queries: np.ndarray
) -> dict[str, object]:
    flt = m.Filter(must=[m.FieldCondition(key="group", match=m.MatchValue(value=1))])
    exact = m.SearchParams(exact=True)
    info = client.get_collection(name)
    return {
        "count": client.count(name).count,
        "count filtered": client.count(name, count_filter=flt).count,
        "aliases": [
            (a.alias_name, a.collection_name) for a in client.get_collection_aliases(name).aliases
        ],
        "payload schema": {k: v.data_type for k, v in info.payload_schema.items()},
        "config": info.config.params.vectors,
        "search": [
            [
                (p.id, round(p.score, 5), p.payload)
                for p in client.query_points(
                    alias,
                    query=q.tolist(),
                    query_filter=flt,
                    limit=5,
                    with_payload=True,
                    search_params=exact,
                ).points
            ]
            for q in queries
        ],
        "point": client.retrieve(name, [7], with_vectors=True)[0],
    }


def test_restart_keeps_everything(own_server: LocalQdrant, name: str) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, DIM))
    queries = rng.standard_normal((5, DIM))
    alias = f"{name}_live"
    client = own_server.client()
    client.create_collection(
        name, vectors_config=m.VectorParams(size=DIM, distance=m.Distance.EUCLID)
    )
    client.create_payload_index(name, "group", m.PayloadSchemaType.INTEGER)
    points = [
        m.PointStruct(id=i, vector=v.tolist(), payload={"group": i % 3})
        for i, v in enumerate(vectors)
    ]
    client.upsert(name, points=points[:400], wait=True)
    client.delete(name, points_selector=[1, 2, 3])
    client.update_collection_aliases(
        [m.CreateAliasOperation(create_alias=m.CreateAlias(collection_name=name, alias_name=alias))]
    )
    # Not waited for: queued in the collection's worker, applied before the shutdown.
    client.upsert(name, points=points[400:], wait=False)
    before = _snapshot(client, name, alias, queries)
    client.close()
    assert before["count"] == 497

    own_server.restart()
    assert f"closed collection {name}" in own_server.log_path.read_text()  # a clean close
    client = own_server.client()
    assert _snapshot(client, name, alias, queries) == before
    assert client.get_aliases().aliases == [
        m.AliasDescription(alias_name=alias, collection_name=name)
    ]
    client.close()


def _workers(server_pid: int) -> list[int]:
    """The collection workers: the children of the server's multiprocessing forkserver."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    forkservers = [
        pid
        for pid in children.get(server_pid, [])
        if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    return [pid for forkserver in forkservers for pid in children.get(forkserver, [])]


def test_killed_worker_is_restarted(own_server: LocalQdrant, name: str) -> None:
    """A worker killed outright (no clean close) is restarted on the next request, with every
    acknowledged write (the edge shard replays its WAL)."""
    client = own_server.client()
    client.create_collection(name, vectors_config=m.VectorParams(size=DIM, distance=m.Distance.DOT))
    vectors = np.random.default_rng(5).standard_normal((300, DIM)).tolist()
    client.upsert(name, points=m.Batch(ids=list(range(300)), vectors=vectors), wait=True)
    [worker] = _workers(own_server.pid)
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{worker}").exists():  # until the forkserver has reaped it
        assert time.monotonic() < deadline
        time.sleep(0.02)

    assert client.count(name).count == 300
    exact = m.SearchParams(exact=True)
    assert (
        client.query_points(name, query=vectors[7], limit=1, search_params=exact).points[0].id == 7
    )
    assert _workers(own_server.pid) != [worker]
    client.close()
