"""Dependency aliases for the routes; tests swap them with ``app.dependency_overrides``."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Security, status
from fastapi.requests import HTTPConnection
from fastapi.security import APIKeyHeader

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


def get_services(connection: HTTPConnection) -> Services:
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


def current_tenant(
    services: ServicesDep, api_key: Annotated[str | None, Security(api_key_header)]
) -> Tenant:
    return tenant_for_key(services, api_key)


TenantDep = Annotated[Tenant, Depends(current_tenant)]


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
