"""The project's Qdrant code (`deeplens.vectors`) against the local server: batched upserts."""

from __future__ import annotations

import uuid

import numpy as np
from qdrant_client import QdrantClient

from deeplens import vectors
from deeplens.naming import point_id


def test_batches_upserted_two_at_a_time_all_land_with_their_vectors(
    client: QdrantClient, name: str
) -> None:
    vectors.create_collection(client, name, 64)
    ids = [uuid.uuid4() for _ in range(1100)]
    matrix = np.random.default_rng(3).standard_normal((1100, 64)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    payloads = [{"tenantId": "t", "imageId": str(i)} for i in ids]

    vectors.upsert_batches(client, name, ids, matrix, payloads, batch=256, in_flight=2)

    assert vectors.count(client, name) == 1100
    for n in (0, 255, 256, 1099):  # the first and last of batches, and the short last batch
        (record,) = client.retrieve(name, [point_id(ids[n])], with_vectors=True)
        assert record.payload == payloads[n]
        assert np.allclose(np.asarray(record.vector), matrix[n], atol=1e-5)
