"""Tenant administration (``X-Admin-Key``): create, list, delete."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from deeplens.catalog.tenants import TenantExists
from deeplens.naming import InvalidTenantId
from search_api import tenancy
from search_api.deps import AdminDep, ServicesDep
from search_api.schemas import TenantCreate, TenantCreated, TenantDeleted, TenantList, TenantSummary

router = APIRouter(prefix="/api/v1/admin/tenants", tags=["admin"], dependencies=[AdminDep])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantCreated)
def create_tenant(body: TenantCreate, services: ServicesDep) -> TenantCreated:
    """Create a tenant: its catalog row, its Qdrant collection and its Dagster partition.

    The API key is in this answer only; store it.
    """
    try:
        created = tenancy.create_tenant(services, body.tenant_id, body.name or body.tenant_id)
    except InvalidTenantId as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
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
def list_tenants(services: ServicesDep) -> TenantList:
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
            for u in tenancy.list_tenants(services)
        ]
    )


@router.delete("/{tenant_id}", response_model=TenantDeleted)
def delete_tenant(tenant_id: str, services: ServicesDep) -> TenantDeleted:
    """Delete a tenant with its images, blobs, vectors and Dagster partition."""
    dropped = tenancy.delete_tenant(services, tenant_id)
    if dropped is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant_id!r}")
    return TenantDeleted(tenant_id=tenant_id, collections_dropped=dropped)
