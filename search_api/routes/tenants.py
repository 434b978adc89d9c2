"""Tenant administration (``X-Admin-Key``): create, list, delete.

A tenant's Dagster partition follows the catalog: the code location's tenant sensor adds it for
a new tenant and removes it for a deleted one within a few seconds.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from deeplens import tenancy
from deeplens.catalog import retries, tenants
from deeplens.catalog.tenants import TenantExists
from deeplens.naming import InvalidTenantId, validate_tenant_id
from deeplens.tenancy import TenantStores
from search_api.deps import AdminDep, BlobsDep, CacheDep, DbDep, KeysDep, ModelDep, QdrantDep
from search_api.schemas import (
    TenantCreate,
    TenantCreated,
    TenantDeleted,
    TenantList,
    TenantRetried,
    TenantRolledBack,
    TenantSummary,
)


def _stores(db: DbDep, qdrant: QdrantDep, blobs: BlobsDep, cache: CacheDep) -> TenantStores:
    return TenantStores(db=db, qdrant=qdrant, blobs=blobs, cache=cache)


StoresDep = Annotated[TenantStores, Depends(_stores)]

router = APIRouter(prefix="/api/v1/admin/tenants", tags=["admin"], dependencies=[AdminDep])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantCreated)
def create_tenant(body: TenantCreate, stores: StoresDep, model: ModelDep) -> TenantCreated:
    """Create a tenant: its catalog row and its Qdrant collection (its Dagster partition follows).

    The API key is in this answer only; store it.
    """
    try:
        validate_tenant_id(body.tenant_id)
    except InvalidTenantId as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    spec = model.require_spec()
    try:
        created = tenancy.create_tenant(stores, spec, body.tenant_id, body.name or body.tenant_id)
    except TenantExists as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"tenant {body.tenant_id!r} already exists; delete it first or choose another id",
        ) from exc
    tenant = created.tenant
    return TenantCreated(
        tenant_id=tenant.tenant_id,
        name=tenant.name,
        api_key=created.api_key,
        collection=tenant.collection_alias,
        model=tenant.model,
        created_at=tenant.created_at,
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


@router.delete("/{tenant_id}", response_model=TenantDeleted)
def delete_tenant(tenant_id: str, stores: StoresDep, keys: KeysDep) -> TenantDeleted:
    """Delete a tenant with its images, blobs and vectors (its Dagster partition follows)."""
    dropped = tenancy.delete_tenant(stores, tenant_id)
    if dropped is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant_id!r}")
    keys.forget_tenant(tenant_id)
    return TenantDeleted(tenant_id=tenant_id, collections_dropped=dropped)


@router.post("/{tenant_id}/retry-failed", response_model=TenantRetried)
def retry_failed(tenant_id: str, db: DbDep) -> TenantRetried:
    """Process every failed image of the tenant again, each with a fresh retry budget."""
    with db.connection() as conn:
        if tenants.get(conn, tenant_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant_id!r}")
        again = retries.retry_failed(conn, tenant_id)
    return TenantRetried(
        tenant_id=tenant_id, retried=len(again), image_ids=[i.image_id for i in again]
    )


@router.post(
    "/{tenant_id}/rollback",
    response_model=TenantRolledBack,
    responses={409: {"description": "No earlier collection to roll back to"}},
)
def rollback(tenant_id: str, stores: StoresDep) -> TenantRolledBack:
    """Point the tenant's alias back at the collection its last reindex replaced."""
    with stores.db.connection() as conn:
        tenant = tenants.get(conn, tenant_id)
    if tenant is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant_id!r}")
    try:
        done = tenancy.rollback(stores, tenant)
    except tenancy.NothingToRollBack as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return TenantRolledBack(
        tenant_id=tenant_id,
        collection_alias=done.alias,
        collection=done.collection,
        replaced=done.replaced,
        caught_up=done.caught_up,
    )
