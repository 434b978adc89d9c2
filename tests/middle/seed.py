"""Catalog rows and blobs for the middle layer's tests, and the queries their asserts need."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from qdrant_client import QdrantClient

from deeplens import vectors
from deeplens.blobs import BlobStore
from deeplens.catalog import images, tenants
from deeplens.catalog import models as tenant_models
from deeplens.catalog.images import Image, NewImage
from deeplens.model.registry import get_model
from deeplens.naming import collection_alias
from deeplens_local import synthetic

MODEL = "efficientnet_lite0"


@dataclass(frozen=True)
class TenantUnderTest:
    tenant_id: str
    alias: str


def new_tenant_id(prefix: str = "mid") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_tenant(conn: psycopg.Connection, client: QdrantClient, tenant_id: str) -> str:
    """The tenant's catalog row and its first collection behind the alias; returns the alias."""
    alias = vectors.ensure_tenant_collection(client, tenant_id, MODEL, get_model(MODEL).dimension)
    assert alias == collection_alias(tenant_id, MODEL)
    tenants.create(conn, tenant_id, tenant_id.title(), MODEL, alias)
    tenant_models.add(conn, tenant_id, MODEL, alias, state=tenant_models.READY)
    collection = vectors.alias_target(client, alias) or alias
    tenant_models.built(conn, tenant_id, MODEL, get_model(MODEL).version, collection, None)
    return alias


def photo(seed: int) -> bytes:
    """A small JPEG (fast to decode), different for every seed."""
    return synthetic.photo_bytes(seed, 64, 48)


def upload(
    conn: psycopg.Connection,
    blobs: BlobStore,
    tenant_id: str,
    data: bytes,
    name: str = "photo.jpg",
    store_blob: bool = True,
) -> Image:
    """What the upload route leaves behind: the blob, the image row and its outbox event."""
    digest = hashlib.sha256(data).hexdigest()
    key = blobs.put(tenant_id, data, digest) if store_blob else blobs.key_for(tenant_id, digest)
    image, created = images.insert_with_event(
        conn,
        NewImage(
            tenant_id=tenant_id,
            sha256=digest,
            blob_key=key,
            file_name=name,
            content_type="image/jpeg",
            file_size=len(data),
            width=64,
            height=48,
            uploaded_by=None,
            metadata={},
        ),
    )
    assert created
    return image


INGEST_OPS = ("images", f"{MODEL}__embeddings", f"{MODEL}__indexed_vectors")


def batch_config(image_ids: list[uuid.UUID], ops: tuple[str, ...] = INGEST_OPS) -> dict[str, Any]:
    """The run config the upload sensor gives a batch's run (for the ops of `ops`)."""
    ids = [str(i) for i in image_ids]
    return {"ops": {name: {"config": {"image_ids": ids}} for name in ops}}


def statuses(conn: psycopg.Connection, tenant_id: str) -> dict[uuid.UUID, tuple[str, str | None]]:
    """Each image's (status, failure reason)."""
    rows = conn.execute(
        "SELECT image_id, status, failure_reason FROM deeplens.images WHERE tenant_id = %s",
        (tenant_id,),
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def outbox_image_ids(conn: psycopg.Connection, tenant_id: str, topic: str) -> list[uuid.UUID]:
    """The image ids of the tenant's outbox events on `topic`, one entry per row."""
    rows = conn.execute(
        "SELECT payload -> 'data' ->> 'imageId' FROM deeplens.outbox"
        " WHERE topic = %s AND key = %s ORDER BY id",
        (topic, tenant_id),
    ).fetchall()
    return [uuid.UUID(r[0]) for r in rows]


def outbox_payloads(conn: psycopg.Connection, tenant_id: str, topic: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT payload FROM deeplens.outbox WHERE topic = %s AND key = %s ORDER BY id",
        (topic, tenant_id),
    ).fetchall()
    return [dict(r[0]) for r in rows]


def embedded_at(conn: psycopg.Connection, tenant_id: str) -> dict[uuid.UUID, datetime]:
    """When each of the tenant's stored embeddings was written."""
    rows = conn.execute(
        "SELECT e.image_id, e.created_at FROM deeplens.embeddings e"
        " JOIN deeplens.images i USING (image_id) WHERE i.tenant_id = %s",
        (tenant_id,),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True)
class Points:
    """What the tenant's alias holds."""

    collection: str | None
    ids: set[uuid.UUID]


def points(client: QdrantClient, alias: str) -> Points:
    records, _ = client.scroll(alias, limit=10_000, with_payload=False, with_vectors=False)
    return Points(vectors.alias_target(client, alias), {uuid.UUID(str(r.id)) for r in records})
