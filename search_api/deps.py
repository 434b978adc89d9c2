"""Dependency aliases for the routes; tests swap them with ``app.dependency_overrides``."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Security, status
from fastapi.requests import HTTPConnection
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from deeplens.catalog import tenants
from deeplens.catalog.tenants import Tenant
from search_api.services import Services

API_KEY_HEADER = "X-API-Key"
ADMIN_KEY_HEADER = "X-Admin-Key"

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="The tenant's API key."
)
admin_key_header = APIKeyHeader(
    name=ADMIN_KEY_HEADER, auto_error=False, description="DEEPLENS_ADMIN_KEY."
)


# The dependencies are `async def` so that FastAPI calls them on the event loop: a plain `def`
# dependency costs a thread-pool round trip per request, for work that takes microseconds.
async def get_services(connection: HTTPConnection) -> Services:
    services: Services = connection.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def tenant_for_key(services: Services, api_key: str | None) -> Tenant:
    """The tenant an API key belongs to; 401 for a missing or unknown key."""
    if not api_key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing API key: send the tenant's key in the {API_KEY_HEADER} header",
        )
    tenant = services.keys.lookup(api_key)
    if tenant is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown API key: use the apiKey returned when the tenant was created",
        )
    return tenant


async def current_tenant(
    services: ServicesDep, api_key: Annotated[str | None, Security(api_key_header)]
) -> Tenant:
    """The key's tenant: from the in-process cache, or else looked up in a worker thread."""
    if api_key and (tenant := services.keys.cached(api_key)) is not None:
        return tenant
    return await run_in_threadpool(tenant_for_key, services, api_key)


TenantDep = Annotated[Tenant, Depends(current_tenant)]


def confirm_tenant(services: Services, tenant: Tenant) -> None:
    """401 if the tenant no longer exists in the catalog.

    A key's tenant comes from a per-process cache, which a deletion clears in every API process
    through a notification; a route that finds nothing asks the catalog before answering 404, so
    a deleted tenant's key gets 401 even before that notification has arrived.
    """
    with services.db.connection() as conn:
        exists = tenants.get(conn, tenant.tenant_id) is not None
    if not exists:
        services.keys.forget_tenant(tenant.tenant_id)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"tenant {tenant.tenant_id!r} no longer exists; its API key is void",
        )


def require_admin(
    services: ServicesDep, admin_key: Annotated[str | None, Security(admin_key_header)]
) -> None:
    expected = services.settings.admin_key
    if not expected:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the admin API is disabled: set DEEPLENS_ADMIN_KEY for the API",
        )
    if not admin_key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing admin key: send it in the {ADMIN_KEY_HEADER} header",
        )
    if not hmac.compare_digest(admin_key.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong admin key")


AdminDep = Depends(require_admin)


def check_tenant_field(tenant: Tenant, claimed: str | None) -> None:
    """A `tenantId` sent along with a key must be the key's tenant (403 otherwise)."""
    if claimed and claimed != tenant.tenant_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"tenantId {claimed!r} does not match the API key's tenant; "
            "omit tenantId or use that tenant's key",
        )
