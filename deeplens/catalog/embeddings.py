"""Stored embeddings: the index can be rebuilt from these without running the model again."""

from __future__ import annotations

import uuid

import numpy as np
import psycopg


def store(
    conn: psycopg.Connection,
    model: str,
    model_version: str,
    image_ids: list[uuid.UUID],
    vectors: np.ndarray,
) -> None:
    rows = [
        (image_id, model, model_version, np.ascontiguousarray(vec, dtype="<f4").tobytes(), image_id)
        for image_id, vec in zip(image_ids, vectors, strict=True)
    ]
    with conn.cursor() as cur:
        # An image deleted while its run embedded it has no row left: nothing is stored for it.
        cur.executemany(
            "INSERT INTO deeplens.embeddings (image_id, model, model_version, vector)"
            " SELECT %s, %s, %s, %s WHERE EXISTS"
            " (SELECT FROM deeplens.images WHERE image_id = %s)"
            " ON CONFLICT (image_id, model) DO UPDATE"
            " SET model_version = EXCLUDED.model_version, vector = EXCLUDED.vector,"
            " created_at = now()",
            rows,
        )


def load(
    conn: psycopg.Connection, model: str, model_version: str, image_ids: list[uuid.UUID]
) -> dict[uuid.UUID, np.ndarray]:
    rows = conn.execute(
        "SELECT image_id, vector FROM deeplens.embeddings"
        " WHERE model = %s AND model_version = %s AND image_id = ANY(%s)",
        (model, model_version, image_ids),
    ).fetchall()
    return {r[0]: np.frombuffer(r[1], dtype="<f4") for r in rows}


def load_latest(
    conn: psycopg.Connection, model: str, image_ids: list[uuid.UUID]
) -> dict[uuid.UUID, np.ndarray]:
    """The stored vectors of `model`, whatever their version (one per image and model)."""
    rows = conn.execute(
        "SELECT image_id, vector FROM deeplens.embeddings WHERE model = %s AND image_id = ANY(%s)",
        (model, image_ids),
    ).fetchall()
    return {r[0]: np.frombuffer(r[1], dtype="<f4") for r in rows}


def missing(
    conn: psycopg.Connection, model: str, model_version: str, image_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    have = conn.execute(
        "SELECT image_id FROM deeplens.embeddings"
        " WHERE model = %s AND model_version = %s AND image_id = ANY(%s)",
        (model, model_version, image_ids),
    ).fetchall()
    present = {r[0] for r in have}
    return [i for i in image_ids if i not in present]
