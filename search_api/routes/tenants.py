"""Tenant administration (``X-Admin-Key``): create, list, show, delete; API keys; limits.

A tenant's Dagster partition follows the catalog: the code location's tenant sensor adds it for
a new tenant and removes it for a deleted one within a few seconds. A revoked key, new limits
and a deleted tenant reach every API process through the catalog's notification, within about
a second. Each action is written to the audit log.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from deeplens import tenancy, vectors
from deeplens.catalog import images, keys, retries, tenants
from deeplens.catalog import models as tenant_models
from deeplens.catalog.keys import ApiKey
from deeplens.catalog.tenants import Limits, Tenant, TenantExists
from deeplens.naming import InvalidTenantId, validate_tenant_id
from deeplens.tenancy import TenantStores
from search_api import audit
from search_api.deps import (
    AdminDep,
    BlobsDep,
    CacheDep,
    DbDep,
    KeysDep,
    ModelDep,
    QdrantDep,
    SettingsDep,
)
from search_api.schemas import (
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
    LimitsBody,
    TenantCreate,
    TenantCreated,
    TenantDeleted,
    TenantDetail,
    TenantList,
    TenantRetried,
    TenantRolledBack,
    TenantSummary,
    Usage,
)


def _stores(db: DbDep, qdrant: QdrantDep, blobs: BlobsDep, cache: CacheDep) -> TenantStores:
    return TenantStores(db=db, qdrant=qdrant, blobs=blobs, cache=cache)


StoresDep = Annotated[TenantStores, Depends(_stores)]

router = APIRouter(prefix="/api/v1/admin/tenants", tags=["admin"], dependencies=[AdminDep])


def _tenant_or_404(db: DbDep, tenant_id: str) -> Tenant:
    with db.connection() as conn:
        tenant = tenants.get(conn, tenant_id)
    if tenant is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant_id!r}")
    return tenant


TenantDep = Annotated[Tenant, Depends(_tenant_or_404)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantCreated)
def create_tenant(
    body: TenantCreate, stores: StoresDep, model: ModelDep, settings: SettingsDep, request: Request
) -> TenantCreated:
    """Create a tenant: its catalog row, its first API key and its Qdrant collection (its Dagster
    partition follows). It starts with the default limits of the settings.

    The API key is in this answer only; store it.
    """
    try:
        validate_tenant_id(body.tenant_id)
    except InvalidTenantId as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    spec = model.require_spec()
    try:
        created = tenancy.create_tenant(
            stores,
            spec,
            body.tenant_id,
            body.name or body.tenant_id,
            tenancy.default_limits(settings),
        )
    except TenantExists as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"tenant {body.tenant_id!r} already exists; delete it first or choose another id",
        ) from exc
    tenant = created.tenant
    audit.record("tenant.create", request, tenant=tenant.tenant_id, key_id=created.key.key_id)
    return TenantCreated(
        tenant_id=tenant.tenant_id,
        name=tenant.name,
        api_key=created.api_key,
        key_id=created.key.key_id,
        collection=tenant.collection_alias,
        model=tenant.model,
        created_at=tenant.created_at,
        limits=_limits_body(tenancy.default_limits(settings)),
    )


@router.get("", response_model=TenantList)
def list_tenants(db: DbDep) -> TenantList:
    """Every tenant, with its image counts by status."""
    return TenantList(
        tenants=[
            TenantSummary(
                tenant_id=u.tenant.tenant_id,
                name=u.tenant.name,
                collection=u.tenant.collection_alias,
                model=u.tenant.model,
                created_at=u.tenant.created_at,
                image_count=sum(u.images_by_status.values()),
                images_by_status=u.images_by_status,
            )
            for u in tenancy.list_tenants(db)
        ]
    )


@router.get("/{tenant_id}", response_model=TenantDetail)
def show_tenant(tenant: TenantDep, db: DbDep, qdrant: QdrantDep) -> TenantDetail:
    """One tenant: its limits, its usage against them, its images by status, its keys, and the
    collection its alias serves with the points in it (null when Qdrant can't answer: the rest
    still helps whoever is looking into an outage)."""
    with db.connection() as conn:
        found = tenants.limits_and_usage(conn, tenant.tenant_id)
        by_status = images.count_by_status(conn, tenant.tenant_id)
        key_count = len(keys.list_for(conn, tenant.tenant_id))
        held = [
            m.model
            for m in tenant_models.of_tenant(conn, tenant.tenant_id)
            if m.state != tenant_models.RETIRED
        ]
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant.tenant_id!r}")
    limits, usage = found
    target, points = _served(qdrant, tenant.collection_alias)
    return TenantDetail(
        tenant_id=tenant.tenant_id,
        name=tenant.name,
        collection=tenant.collection_alias,
        model=tenant.model,
        created_at=tenant.created_at,
        limits=_limits_body(limits),
        usage=Usage(images=usage.images, bytes=usage.bytes),
        images_by_status=by_status,
        keys=key_count,
        alias_target=target,
        points=points,
        models=held,
    )


def _served(qdrant: QdrantDep, alias: str) -> tuple[str | None, int | None]:
    """The collection behind the alias and its point count, or None for what Qdrant can't say."""
    try:
        target = vectors.alias_target(qdrant, alias)
        return target, None if target is None else vectors.count(qdrant, target)
    except Exception:  # Qdrant down or slow: the catalog's half of the answer still stands
        return None, None


@router.put("/{tenant_id}/limits", response_model=LimitsBody)
def set_limits(tenant: TenantDep, body: LimitsBody, db: DbDep, request: Request) -> LimitsBody:
    """Set the tenant's limits; null removes a limit, a field left out keeps its value.
    Every API process applies them within about a second."""
    with db.connection() as conn:
        found = tenants.limits_and_usage(conn, tenant.tenant_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant.tenant_id!r}")
        merged = _limits_body(found[0]).model_copy(
            update={name: getattr(body, name) for name in body.model_fields_set}
        )
        tenants.set_limits(conn, tenant.tenant_id, Limits(**merged.model_dump()))
    audit.record("tenant.limits", request, tenant=tenant.tenant_id, limits=merged.model_dump())
    return merged


@router.post("/{tenant_id}/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(tenant: TenantDep, body: KeyCreate, db: DbDep, request: Request) -> KeyCreated:
    """A new API key for the tenant (the secret is in this answer only; store it)."""
    secret, key = tenancy.create_key(db, tenant.tenant_id, body.label, body.read_only)
    audit.record(
        "key.create", request, tenant=tenant.tenant_id, key_id=key.key_id, read_only=key.read_only
    )
    return KeyCreated(**_key_info(key).model_dump(), tenant_id=tenant.tenant_id, api_key=secret)


@router.get("/{tenant_id}/keys", response_model=KeyList)
def list_keys(tenant: TenantDep, db: DbDep) -> KeyList:
    """The tenant's keys, without their secrets."""
    with db.connection() as conn:
        return KeyList(keys=[_key_info(k) for k in keys.list_for(conn, tenant.tenant_id)])


@router.delete(
    "/{tenant_id}/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No such tenant, or no such key of it"}},
)
def revoke_key(
    tenant: TenantDep, key_id: str, db: DbDep, cached: KeysDep, request: Request
) -> Response:
    """Revoke a key: every API process refuses it within about a second."""
    with db.connection() as conn:
        revoked = keys.revoke(conn, tenant.tenant_id, key_id)
    if not revoked:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"tenant {tenant.tenant_id!r} has no key {key_id!r}"
        )
    cached.forget_tenant(tenant.tenant_id)  # this process at once; the others on the notification
    audit.record("key.revoke", request, tenant=tenant.tenant_id, key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/{tenant_id}", response_model=TenantDeleted)
def delete_tenant(
    tenant_id: str, stores: StoresDep, keys: KeysDep, request: Request
) -> TenantDeleted:
    """Delete a tenant with its images, blobs and vectors (its Dagster partition follows)."""
    dropped = tenancy.delete_tenant(stores, tenant_id)
    if dropped is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant_id!r}")
    keys.forget_tenant(tenant_id)
    audit.record("tenant.delete", request, tenant=tenant_id, collections=dropped)
    return TenantDeleted(tenant_id=tenant_id, collections_dropped=dropped)


@router.post("/{tenant_id}/retry-failed", response_model=TenantRetried)
def retry_failed(tenant_id: str, db: DbDep, request: Request) -> TenantRetried:
    """Process every failed image of the tenant again, each with a fresh retry budget."""
    with db.connection() as conn:
        if tenants.get(conn, tenant_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant_id!r}")
        again = retries.retry_failed(conn, tenant_id)
    audit.record("tenant.retry_failed", request, tenant=tenant_id, retried=len(again))
    return TenantRetried(
        tenant_id=tenant_id, retried=len(again), image_ids=[i.image_id for i in again]
    )


@router.post(
    "/{tenant_id}/rollback",
    response_model=TenantRolledBack,
    responses={409: {"description": "No earlier collection to roll back to"}},
)
def rollback(tenant_id: str, stores: StoresDep, request: Request) -> TenantRolledBack:
    """Point the tenant's alias back at the collection its last reindex replaced."""
    with stores.db.connection() as conn:
        tenant = tenants.get(conn, tenant_id)
    if tenant is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant_id!r}")
    try:
        done = tenancy.rollback(stores, tenant)
    except tenancy.NothingToRollBack as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit.record("tenant.rollback", request, tenant=tenant_id, collection=done.collection)
    return TenantRolledBack(
        tenant_id=tenant_id,
        collection_alias=done.alias,
        collection=done.collection,
        replaced=done.replaced,
        caught_up=done.caught_up,
    )


def _limits_body(limits: Limits) -> LimitsBody:
    return LimitsBody(**dataclasses.asdict(limits))


def _key_info(key: ApiKey) -> KeyInfo:
    return KeyInfo(
        key_id=key.key_id,
        label=key.label,
        read_only=key.read_only,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
    )
