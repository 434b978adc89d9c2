"""Qdrant's REST shapes where the congruence test does not reach: service endpoints, error
envelopes, the legacy search API, ``wait=false``, payload indexes, named vectors."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as m

from .local_server import LocalQdrant


@pytest.fixture
def http(server: LocalQdrant) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as session:
        yield session


@pytest.fixture
def filled(client: QdrantClient, name: str) -> Iterator[str]:
    client.create_collection(name, vectors_config=m.VectorParams(size=3, distance=m.Distance.DOT))
    points = [
        m.PointStruct(id=i, vector=[float(i), 1.0, 0.0], payload={"group": i % 2})
        for i in range(1, 21)
    ]
    client.upsert(name, points=points, wait=True)
    yield name
    client.delete_collection(name)


def _error(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"status", "time"} and isinstance(body["time"], float)
    error: str = body["status"]["error"]
    return error


def test_service_endpoints(server: LocalQdrant, http: httpx.Client) -> None:
    root = http.get("/").json()
    assert root["title"] == "qdrant - vector search engine"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # qdrant-client warns on an incompatible server version
        QdrantClient(url=server.url).close()
    for path in ("/healthz", "/livez", "/readyz"):
        assert http.get(path).status_code == 200


def test_error_envelopes(http: httpx.Client, filled: str) -> None:
    missing = http.get("/collections/nope_zz")
    assert missing.status_code == 404
    assert _error(missing) == "Not found: Collection `nope_zz` doesn't exist!"
    dims = http.put(
        f"/collections/{filled}/points?wait=true", json={"points": [{"id": 1, "vector": [1]}]}
    )
    assert dims.status_code == 400
    assert _error(dims) == "Wrong input: Vector dimension error: expected dim: 3, got 1"
    exists = http.put(f"/collections/{filled}", json={"vectors": {"size": 3, "distance": "Dot"}})
    assert exists.status_code == 409
    assert _error(exists) == f"Wrong input: Collection `{filled}` already exists!"
    bad_json = http.post(f"/collections/{filled}/points/count", content=b"{nope")
    assert bad_json.status_code == 400
    assert _error(bad_json).startswith("Format error in JSON body")
    bad_id = http.post(f"/collections/{filled}/points", json={"ids": [-1]})
    assert bad_id.status_code == 400
    assert "not a valid point ID" in _error(bad_id)
    no_point = http.get(f"/collections/{filled}/points/999")
    assert no_point.status_code == 404
    assert _error(no_point) == "Not found: No point with id 999 found"
    by_missing_id = http.post(f"/collections/{filled}/points/query", json={"query": 999})
    assert by_missing_id.status_code == 404
    unsupported = http.post(
        f"/collections/{filled}/points/query", json={"prefetch": [{"limit": 1}]}
    )
    assert unsupported.status_code == 400
    bad_limit = http.post(
        f"/collections/{filled}/points/query", json={"query": [1, 0, 0], "limit": 0}
    )
    assert bad_limit.status_code == 422


def test_get_point_and_legacy_search(http: httpx.Client, client: QdrantClient, filled: str) -> None:
    point = http.get(f"/collections/{filled}/points/4").json()["result"]
    assert point == {"id": 4, "payload": {"group": 0}, "vector": [4.0, 1.0, 0.0]}
    body: dict[str, Any] = {"vector": [1.0, 0.0, 0.0], "limit": 3, "with_payload": True}
    found = http.post(f"/collections/{filled}/points/search", json=body).json()["result"]
    assert [p["id"] for p in found] == [20, 19, 18]
    assert found[0]["payload"] == {"group": 0} and found[0]["score"] == 20.0
    body["filter"] = {"must": [{"key": "group", "match": {"value": 1}}]}
    batch = http.post(
        f"/collections/{filled}/points/search/batch", json={"searches": [body]}
    ).json()
    assert [p["id"] for p in batch["result"][0]] == [19, 17, 15]
    queries = [
        m.QueryRequest(query=[1.0, 0.0, 0.0], limit=2),
        m.QueryRequest(
            query=[-1.0, 0.0, 0.0],
            limit=2,
            filter=m.Filter(must=[m.HasIdCondition(has_id=[5, 6, 7])]),
        ),
    ]
    results = client.query_batch_points(filled, requests=queries)
    assert [[p.id for p in r.points] for r in results] == [[20, 19], [5, 6]]


def test_wait_false_is_acknowledged_then_visible(http: httpx.Client, filled: str) -> None:
    body = {"points": [{"id": 100 + i, "vector": [0.0, 0.0, 1.0]} for i in range(50)]}
    reply = http.put(f"/collections/{filled}/points", json=body).json()  # Qdrant's default: no wait
    assert reply["result"]["status"] == "acknowledged"
    count = http.post(f"/collections/{filled}/points/count", json={}).json()["result"]["count"]
    assert count == 70


def test_payload_index(client: QdrantClient, filled: str) -> None:
    client.create_payload_index(filled, "group", m.PayloadSchemaType.KEYWORD)
    client.create_payload_index(
        filled,
        "rank",
        m.IntegerIndexParams(type=m.IntegerIndexType.INTEGER, lookup=True, range=True),
    )
    schema = client.get_collection(filled).payload_schema
    assert schema["group"].data_type == m.PayloadSchemaType.KEYWORD
    assert schema["rank"].data_type == m.PayloadSchemaType.INTEGER
    client.delete_payload_index(filled, "group")
    assert set(client.get_collection(filled).payload_schema) == {"rank"}


def test_named_vectors(client: QdrantClient, name: str) -> None:
    client.create_collection(
        name,
        vectors_config={
            "image": m.VectorParams(size=2, distance=m.Distance.COSINE),
            "text": m.VectorParams(size=3, distance=m.Distance.EUCLID),
        },
    )
    client.upsert(
        name,
        points=[
            m.PointStruct(id=1, vector={"image": [1.0, 0.0], "text": [0.0, 0.0, 1.0]}),
            m.PointStruct(id=2, vector={"image": [0.0, 1.0], "text": [0.0, 0.0, 3.0]}),
        ],
    )
    hits = client.query_points(name, query=[0.0, 0.0, 2.5], using="text", limit=2).points
    assert [p.id for p in hits] == [2, 1]
    by_id = client.query_points(name, query=1, using="image", limit=1).points
    assert [p.id for p in by_id] == [2]  # the point queried by is left out
    record = client.retrieve(name, [1], with_vectors=["image"])[0]
    assert record.vector == {"image": [1.0, 0.0]}
    info = client.get_collection(name)
    assert (
        isinstance(info.config.params.vectors, dict)
        and info.config.params.vectors["text"].size == 3
    )
    client.delete_collection(name)


def test_bulk_load_recipe(client: QdrantClient, name: str) -> None:
    """Qdrant's bulk upload recipe: no indexing while uploading, then one index build, started
    by raising ``indexing_threshold`` with ``update_collection`` (PATCH)."""
    client.create_collection(
        name,
        vectors_config=m.VectorParams(size=64, distance=m.Distance.COSINE),
        optimizers_config=m.OptimizersConfigDiff(indexing_threshold=0),
    )
    vectors = np.random.default_rng(1).standard_normal((2000, 64)).tolist()
    client.upsert(name, points=m.Batch(ids=list(range(2000)), vectors=vectors), wait=True)
    assert client.get_collection(name).indexed_vectors_count == 0

    client.update_collection(name, optimizers_config=m.OptimizersConfigDiff(indexing_threshold=100))
    deadline = time.monotonic() + 60
    while ((info := client.get_collection(name)).indexed_vectors_count or 0) < 2000:
        assert time.monotonic() < deadline, info
        time.sleep(0.1)
    assert info.config.optimizer_config.indexing_threshold == 100
    assert info.status == m.CollectionStatus.GREEN
    assert client.count(name).count == 2000
    client.delete_collection(name)
