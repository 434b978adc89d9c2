"""Stored embeddings: the index can be rebuilt from these without running the model again.

One row per image, model and model version (a version is kept until it is retired), with the
lineage of the index that holds it: the run that indexed it, the physical collection, when.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

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
            " ON CONFLICT (image_id, model, model_version) DO UPDATE"
            " SET vector = EXCLUDED.vector, created_at = now()",
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
    """The newest stored vector of `model` for each image, whatever its version."""
    rows = conn.execute(
        "SELECT DISTINCT ON (image_id) image_id, vector FROM deeplens.embeddings"
        " WHERE model = %s AND image_id = ANY(%s) ORDER BY image_id, created_at DESC",
        (model, image_ids),
    ).fetchall()
    return {r[0]: np.frombuffer(r[1], dtype="<f4") for r in rows}


def written_since(
    conn: psycopg.Connection,
    tenant_id: str,
    model: str,
    model_version: str,
    since: datetime,
    limit: int,
) -> dict[uuid.UUID, np.ndarray]:
    """The tenant's vectors of this model version stored since `since` (at most `limit`)."""
    rows = conn.execute(
        "SELECT e.image_id, e.vector FROM deeplens.embeddings e"
        " JOIN deeplens.images i USING (image_id)"
        " WHERE i.tenant_id = %s AND e.model = %s AND e.model_version = %s"
        " AND e.created_at >= %s LIMIT %s",
        (tenant_id, model, model_version, since, limit),
    ).fetchall()
    return {r[0]: np.frombuffer(r[1], dtype="<f4") for r in rows}


def having(
    conn: psycopg.Connection, model: str, model_version: str, image_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of the images have a stored vector of this model version (without reading it)."""
    present = set(image_ids) - set(missing(conn, model, model_version, image_ids))
    return present


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


def record_indexed(
    conn: psycopg.Connection,
    model: str,
    model_version: str,
    image_ids: list[uuid.UUID],
    run_id: str,
    collection: str,
) -> None:
    """The images' vectors of this model version are in `collection`, put there by `run_id`."""
    conn.execute(
        "UPDATE deeplens.embeddings SET run_id = %s, collection = %s, indexed_at = now()"
        " WHERE model = %s AND model_version = %s AND image_id = ANY(%s)",
        (run_id, collection, model, model_version, image_ids),
    )


@dataclass(frozen=True)
class Lineage:
    """Where one of an image's vectors came from and where it is."""

    model: str
    model_version: str
    run_id: str | None
    collection: str | None
    embedded_at: datetime
    indexed_at: datetime | None


def lineage(conn: psycopg.Connection, image_id: uuid.UUID) -> list[Lineage]:
    """Every stored vector of the image, newest first within each model."""
    rows = conn.execute(
        "SELECT model, model_version, run_id, collection, created_at, indexed_at"
        " FROM deeplens.embeddings WHERE image_id = %s ORDER BY model, created_at DESC",
        (image_id,),
    ).fetchall()
    return [Lineage(*r) for r in rows]


def drop_version(
    conn: psycopg.Connection, tenant_id: str, model: str, keep_version: str | None = None
) -> int:
    """Delete the tenant's stored vectors of `model` (all versions, or all but `keep_version`)."""
    cur = conn.execute(
        "DELETE FROM deeplens.embeddings e USING deeplens.images i"
        " WHERE e.image_id = i.image_id AND i.tenant_id = %s AND e.model = %s"
        " AND e.model_version IS DISTINCT FROM %s",
        (tenant_id, model, keep_version),
    )
    return cur.rowcount
