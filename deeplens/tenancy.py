"""Creating and deleting a tenant across Postgres, Qdrant, the blob store and the search cache.

Creation writes the tenant row first (that claims the id), then the Qdrant collection behind the
tenant's alias; when the second step fails the first is undone. Deletion removes the vectors
first and the row last, so that a failed deletion leaves a tenant that can be deleted again.
The tenant's Dagster partition follows the catalog: the code location's tenant sensor adds and
removes partitions (the API knows nothing of Dagster).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import numpy as np
from psycopg_pool import ConnectionPool
from qdrant_client import QdrantClient

from deeplens import pipeline, thumbnails, vectors
from deeplens.blobs import BlobStore
from deeplens.cache import SearchCache
from deeplens.catalog import embeddings, images, keys, runs, tenants
from deeplens.catalog import models as tenant_models
from deeplens.catalog.models import TenantModel
from deeplens.catalog.tenants import Limits, Tenant
from deeplens.keys import hash_key, new_api_key
from deeplens.model.registry import ModelSpec
from deeplens.naming import collection_alias, validate_tenant_id
from deeplens.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatedTenant:
    tenant: Tenant
    api_key: str
    key: keys.ApiKey


def default_limits(settings: Settings) -> Limits:
    """The limits a new tenant starts with (a setting of 0: no limit)."""
    return Limits(
        uploads_per_second=settings.default_uploads_per_second or None,
        searches_per_second=settings.default_searches_per_second or None,
        reads_per_second=settings.default_reads_per_second or None,
        max_images=settings.default_max_images or None,
        max_bytes=settings.default_max_bytes or None,
    )


def create_key(
    db: ConnectionPool, tenant_id: str, label: str, read_only: bool
) -> tuple[str, keys.ApiKey]:
    """A new API key for the tenant: its secret (shown once) and its row."""
    api_key = new_api_key()
    with db.connection() as conn:
        return api_key, keys.create(conn, tenant_id, hash_key(api_key), label, read_only)


@dataclass(frozen=True)
class TenantUsage:
    tenant: Tenant
    images_by_status: dict[str, int]


@dataclass(frozen=True)
class TenantStores:
    """Where a tenant's data lives."""

    db: ConnectionPool
    qdrant: QdrantClient
    blobs: BlobStore
    cache: SearchCache


def create_tenant(
    stores: TenantStores, spec: ModelSpec, tenant_id: str, name: str, limits: Limits
) -> CreatedTenant:
    """Provision a tenant with its first API key; raises `InvalidTenantId`, `TenantExists` or
    the failing step's error."""
    validate_tenant_id(tenant_id)
    api_key = new_api_key()
    alias = collection_alias(tenant_id, spec.name)
    with stores.db.connection() as conn:  # one transaction: the tenant with its key
        tenant = tenants.create(conn, tenant_id, name, spec.name, alias, limits)
        key = keys.create(conn, tenant_id, hash_key(api_key), "created with the tenant")
    try:
        # Vectors left behind by an earlier tenant of the same id must not leak into this one.
        vectors.drop_tenant(stores.qdrant, tenant_id, spec.name)
        vectors.ensure_tenant_collection(stores.qdrant, tenant_id, spec.name, spec.dimension)
        collection = vectors.alias_target(stores.qdrant, alias) or alias
        with stores.db.connection() as conn, conn.transaction():
            tenant_models.add(conn, tenant_id, spec.name, alias, state=tenant_models.READY)
            tenant_models.built(conn, tenant_id, spec.name, spec.version, collection, None)
    except BaseException:
        try:
            _delete_row(stores, tenant_id)
        except Exception:
            log.exception("could not undo the tenant row of %s", tenant_id)
        raise
    stores.blobs.delete_tenant(tenant_id)
    stores.cache.invalidate(tenant_id)
    log.info("created tenant %s (collection %s)", tenant_id, alias)
    return CreatedTenant(tenant, api_key, key)


def list_tenants(db: ConnectionPool) -> list[TenantUsage]:
    with db.connection() as conn:
        return [
            TenantUsage(t, images.count_by_status(conn, t.tenant_id))
            for t in tenants.list_all(conn)
        ]


def delete_tenant(stores: TenantStores, tenant_id: str) -> list[str] | None:
    """Remove a tenant everywhere; returns the dropped collections, or None if it is unknown."""
    with stores.db.connection() as conn:
        tenant = tenants.get(conn, tenant_id)
    if tenant is None:
        return None
    with stores.db.connection() as conn:
        held = {m.model for m in tenant_models.of_tenant(conn, tenant_id)} | {tenant.model}
    dropped = [
        c for model in sorted(held) for c in vectors.drop_tenant(stores.qdrant, tenant_id, model)
    ]
    _delete_row(stores, tenant_id)
    stores.blobs.delete_tenant(tenant_id)
    stores.cache.invalidate(tenant_id)
    log.info("deleted tenant %s (collections %s)", tenant_id, dropped)
    return dropped


class NothingToRollBack(LookupError):
    """The tenant has no replaced collection left to go back to."""


@dataclass(frozen=True)
class RolledBack:
    alias: str
    collection: str
    replaced: str
    caught_up: int


def rollback(stores: TenantStores, tenant: Tenant) -> RolledBack:
    """Point the tenant's alias back at the collection its last reindex replaced.

    Images indexed since that reindex are copied into it from their stored vectors first, so
    that nothing searchable goes missing; the collection being left is kept, retired in its
    turn, so that the rollback can itself be undone within the grace period.
    """
    alias = tenant.collection_alias
    with stores.db.connection() as conn:
        previous = runs.latest_retired(conn, alias)
    names = {c.name for c in stores.qdrant.get_collections().collections}
    if previous is None or previous.collection not in names:
        raise NothingToRollBack(
            f"tenant {tenant.tenant_id!r} has no earlier collection to roll back to (a reindex "
            "keeps the one it replaces for DEEPLENS_COLLECTION_GRACE_SECONDS)"
        )
    current = vectors.alias_target(stores.qdrant, alias)
    with stores.db.connection() as conn:
        since = [
            r
            for r in images.for_tenant(conn, tenant.tenant_id, ("completed",))
            if r.indexed_at is not None and r.indexed_at >= previous.retired_at
        ]
        found = embeddings.load_latest(conn, tenant.model, [r.image_id for r in since])
    late = [r for r in since if r.image_id in found]
    if late:
        matrix = np.stack([found[r.image_id] for r in late])
        vectors.upsert(
            stores.qdrant,
            previous.collection,
            [r.image_id for r in late],
            matrix,
            [pipeline.payload(r) for r in late],
        )
    vectors.swap_alias(stores.qdrant, alias, previous.collection)
    with stores.db.connection() as conn, conn.transaction():
        runs.forget(conn, previous.collection)
        if current is not None and current != previous.collection:
            runs.retire(conn, tenant.tenant_id, alias, current, replaced_by=previous.collection)
    stores.cache.invalidate(tenant.tenant_id)
    log.info("rolled %s back from %s to %s", alias, current, previous.collection)
    return RolledBack(alias, previous.collection, current or "", len(late))


def delete_image(stores: TenantStores, tenant: Tenant, image_id: uuid.UUID) -> bool:
    """Remove one image everywhere; False if the tenant has no such image.

    The row is marked `deleting` first (every read and every run leaves it alone from then on;
    a run that had already taken it up removes the point it writes), then its points go from
    each of the tenant's collections (the live one, one being rebuilt, one kept for a rollback),
    then its bytes and thumbnails, then the row, and the tenant's cached answers go stale. A
    deletion stopped half-way (Qdrant down) is finished by deleting again.
    """
    with stores.db.connection() as conn:
        image = images.start_delete(conn, tenant.tenant_id, image_id)
    if image is None:
        return False
    with stores.db.connection() as conn:
        held = {m.model for m in tenant_models.of_tenant(conn, tenant.tenant_id)} | {tenant.model}
    collections = [
        c
        for model in sorted(held)
        for c in vectors.tenant_collections(stores.qdrant, tenant.tenant_id, model)
    ]
    vectors.delete_points(stores.qdrant, collections, [image_id])
    stores.blobs.delete(image.blob_key)
    thumbnails.delete_all(stores.blobs, image)
    with stores.db.connection() as conn:
        images.finish_delete(conn, image_id)
    stores.cache.invalidate(tenant.tenant_id)
    log.info("deleted image %s of tenant %s", image_id, tenant.tenant_id)
    return True


def _delete_row(stores: TenantStores, tenant_id: str) -> None:
    with stores.db.connection() as conn:
        tenants.delete(conn, tenant_id)


class ModelConflict(Exception):
    """The tenant's models don't allow this (already held, not ready, serving)."""


def add_model(stores: TenantStores, tenant: Tenant, spec: ModelSpec, serve: bool) -> TenantModel:
    """Add a registered model to the tenant, `pending` until a rebuild of its assets builds and
    verifies its index beside the serving one (and, with `serve`, then serves search)."""
    alias = collection_alias(tenant.tenant_id, spec.name)
    with stores.db.connection() as conn, conn.transaction():
        added = tenant_models.add(
            conn, tenant.tenant_id, spec.name, alias, serve_when_verified=serve
        )
    if added is None:
        raise ModelConflict(
            f"tenant {tenant.tenant_id!r} already holds model {spec.name!r}; rebuild it to "
            "refresh its index, or retire it first"
        )
    # An earlier index of the model for this tenant id must not be mistaken for the new one.
    vectors.drop_tenant(stores.qdrant, tenant.tenant_id, spec.name)
    log.info(
        "tenant %s: added model %s (serve when verified: %s)", tenant.tenant_id, spec.name, serve
    )
    return added


def serve_model(stores: TenantStores, tenant: Tenant, model: str) -> TenantModel:
    """Make one of the tenant's ready models the one that serves search (one update, taken up
    by every API process within a second)."""
    with stores.db.connection() as conn:
        held = tenant_models.get(conn, tenant.tenant_id, model)
        searchable = images.count_by_status(conn, tenant.tenant_id).get("completed", 0)
    if held is not None and held.state == tenant_models.READY and not held.serving:
        # A batch that failed for this model alone left its searchable images out of its index.
        points = vectors.count(stores.qdrant, held.alias)
        if points < searchable:
            raise ModelConflict(
                f"model {model!r} of tenant {tenant.tenant_id!r} holds {points} vectors for "
                f"{searchable} searchable images; rebuild it before it serves"
            )
    with stores.db.connection() as conn, conn.transaction():
        if held is None or not tenant_models.serve(conn, tenant.tenant_id, model):
            state = held.state if held is not None else "not held"
            raise ModelConflict(
                f"model {model!r} of tenant {tenant.tenant_id!r} is {state}: only a ready model "
                "(its index built and verified) can serve"
            )
        served = tenant_models.get(conn, tenant.tenant_id, model)
    stores.cache.invalidate(tenant.tenant_id)
    log.info("tenant %s now searches with %s", tenant.tenant_id, model)
    assert served is not None
    return served


def retire_model(stores: TenantStores, tenant: Tenant, model: str) -> list[str]:
    """Drop a model the tenant no longer serves with: its collections and its stored vectors."""
    with stores.db.connection() as conn:
        held = tenant_models.get(conn, tenant.tenant_id, model)
    if held is None or held.state == tenant_models.RETIRED:
        raise LookupError(f"tenant {tenant.tenant_id!r} holds no model {model!r}")
    if held.serving:
        raise ModelConflict(
            f"model {model!r} serves tenant {tenant.tenant_id!r}; switch to another model first"
        )
    dropped = vectors.drop_tenant(stores.qdrant, tenant.tenant_id, model)
    with stores.db.connection() as conn, conn.transaction():
        embeddings.drop_version(conn, tenant.tenant_id, model)
        tenant_models.retire(conn, tenant.tenant_id, model)
    log.info("tenant %s: retired model %s (dropped %s)", tenant.tenant_id, model, dropped)
    return dropped
