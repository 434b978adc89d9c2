"""Dependency aliases for the routes; tests swap them with ``app.dependency_overrides``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from anyio import CapacityLimiter
from fastapi import Depends, HTTPException, Security, status
from fastapi.requests import HTTPConnection
from fastapi.security import APIKeyHeader
from psycopg_pool import ConnectionPool
from qdrant_client import QdrantClient
from starlette.concurrency import run_in_threadpool

from deeplens.blobs import BlobStore
from deeplens.cache import SearchCache
from deeplens.catalog import tenants
from deeplens.catalog.keys import Identity
from deeplens.catalog.tenants import Tenant
from deeplens.hub import StatusHub
from deeplens.settings import Settings
from search_api.auth import TenantKeys
from search_api.embedding import QueryModel, QueryModels
from search_api.gate import ADMIN_KEY_HEADER, API_KEY_HEADER, Refused, check_admin_key

# Each named after its header: unnamed, both would be one scheme ("APIKeyHeader") in the schema.
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name=API_KEY_HEADER,
    auto_error=False,
    description="The tenant's API key.",
)
admin_key_header = APIKeyHeader(
    name=ADMIN_KEY_HEADER,
    scheme_name=ADMIN_KEY_HEADER,
    auto_error=False,
    description="DEEPLENS_ADMIN_KEY.",
)


def _from_state(name: str) -> Callable[[HTTPConnection], Awaitable[Any]]:
    """The dependency that returns what `lifespan` put on ``app.state.<name>``.

    It is `async def` so that FastAPI calls it on the event loop: a plain `def` dependency costs
    a thread-pool round trip per request, for work that takes microseconds.
    """

    async def dependency(connection: HTTPConnection) -> Any:
        return getattr(connection.app.state, name)

    dependency.__name__ = f"get_{name}"
    return dependency


# One per client a route needs; tests replace them with `app.dependency_overrides`.
get_settings = _from_state("settings")
get_db = _from_state("db")
get_qdrant = _from_state("qdrant")
get_cache = _from_state("cache")
get_blobs = _from_state("blobs")
get_keys = _from_state("keys")
get_hub = _from_state("hub")
get_model = _from_state("model")
get_models = _from_state("models")
get_upload_limiter = _from_state("upload_limiter")
get_query_limiter = _from_state("query_limiter")

SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[ConnectionPool, Depends(get_db)]
QdrantDep = Annotated[QdrantClient, Depends(get_qdrant)]
CacheDep = Annotated[SearchCache, Depends(get_cache)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
KeysDep = Annotated[TenantKeys, Depends(get_keys)]
HubDep = Annotated[StatusHub, Depends(get_hub)]
ModelDep = Annotated[QueryModel, Depends(get_model)]
ModelsDep = Annotated[QueryModels, Depends(get_models)]
UploadLimiterDep = Annotated[CapacityLimiter, Depends(get_upload_limiter)]
QueryLimiterDep = Annotated[CapacityLimiter, Depends(get_query_limiter)]


def identity_for_key(keys: TenantKeys, api_key: str | None) -> Identity:
    """Who an API key speaks for; 401 for a missing or unknown key."""
    if not api_key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing API key: send the tenant's key in the {API_KEY_HEADER} header",
        )
    identity = keys.lookup(api_key)
    if identity is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown API key: use the apiKey returned when the tenant or the key was created",
        )
    return identity


async def current_identity(
    connection: HTTPConnection,
    keys: KeysDep,
    api_key: Annotated[str | None, Security(api_key_header)],
) -> Identity:
    """Who the request's key speaks for: as `search_api.gate` admitted it, or else (a route
    outside the gate) from the in-process cache or a lookup in a worker thread."""
    admitted = getattr(connection.state, "identity", None)
    if isinstance(admitted, Identity):
        return admitted
    if api_key and (identity := keys.cached(api_key)) is not None:
        return identity
    return await run_in_threadpool(identity_for_key, keys, api_key)


async def current_tenant(identity: Annotated[Identity, Depends(current_identity)]) -> Tenant:
    return identity.tenant


IdentityDep = Annotated[Identity, Depends(current_identity)]
TenantDep = Annotated[Tenant, Depends(current_tenant)]


def confirm_tenant(db: ConnectionPool, keys: TenantKeys, tenant: Tenant) -> None:
    """401 if the tenant no longer exists in the catalog.

    A key's tenant comes from a per-process cache, which a deletion clears in every API process
    through a notification; a route that finds nothing asks the catalog before answering 404, so
    a deleted tenant's key gets 401 even before that notification has arrived.
    """
    with db.connection() as conn:
        exists = tenants.get(conn, tenant.tenant_id) is not None
    if not exists:
        keys.forget_tenant(tenant.tenant_id)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"tenant {tenant.tenant_id!r} no longer exists; its API key is void",
        )


def require_admin(
    settings: SettingsDep, admin_key: Annotated[str | None, Security(admin_key_header)]
) -> None:
    """The admin key, checked again here (the gate checks it first, before the body)."""
    try:
        check_admin_key(settings, admin_key)
    except Refused as refused:
        raise HTTPException(refused.status_code, refused.detail) from refused


AdminDep = Depends(require_admin)


def check_tenant_field(tenant: Tenant, claimed: str | None) -> None:
    """A `tenantId` sent along with a key must be the key's tenant (403 otherwise)."""
    if claimed and claimed != tenant.tenant_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"tenantId {claimed!r} does not match the API key's tenant; "
            "omit tenantId or use that tenant's key",
        )
