"""Creating and deleting a tenant across Postgres, Qdrant, the blob store and Dagster.

Creation writes the tenant row first (that claims the id), then the Qdrant collection behind the
tenant's alias, then its Dagster partition; when a step fails the earlier ones are undone.
Deletion removes the Dagster partition and the vectors first and the row last, so that a failed
deletion leaves a tenant that can be deleted again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deeplens import vectors
from deeplens.catalog import images, tenants
from deeplens.catalog.tenants import Tenant
from deeplens.keys import hash_key, new_api_key
from deeplens.naming import collection_alias, validate_tenant_id
from deeplens_dagster.partitions import TENANTS
from search_api.errors import ServiceUnavailable

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from search_api.services import Services

log = logging.getLogger(__name__)


class PartitionsUnavailable(ServiceUnavailable):
    pass


class TenantPartitions:
    """The tenants' dynamic partitions in the Dagster instance (one partition per tenant)."""

    def __init__(self, instance: DagsterInstance | None) -> None:
        self._instance = instance

    def _require(self) -> DagsterInstance:
        if self._instance is None:
            raise PartitionsUnavailable(
                "no Dagster instance: set DAGSTER_HOME for the API so that it can register "
                "tenants' partitions"
            )
        return self._instance

    def add(self, tenant_id: str) -> None:
        instance = self._require()
        if not instance.has_dynamic_partition(TENANTS, tenant_id):
            instance.add_dynamic_partitions(TENANTS, [tenant_id])

    def remove(self, tenant_id: str) -> None:
        instance = self._require()
        if instance.has_dynamic_partition(TENANTS, tenant_id):
            instance.delete_dynamic_partition(TENANTS, tenant_id)

    def close(self) -> None:
        if self._instance is not None:
            self._instance.dispose()


@dataclass(frozen=True)
class CreatedTenant:
    tenant: Tenant
    api_key: str


@dataclass(frozen=True)
class TenantUsage:
    tenant: Tenant
    images_by_status: dict[str, int]


def create_tenant(services: Services, tenant_id: str, name: str) -> CreatedTenant:
    """Provision a tenant; raises `InvalidTenantId`, `TenantExists` or the failing step's error."""
    validate_tenant_id(tenant_id)
    spec = services.require_model_spec()
    api_key = new_api_key()
    alias = collection_alias(tenant_id, spec.name)
    with services.db.connection() as conn:
        tenant = tenants.create(conn, tenant_id, name, hash_key(api_key), spec.name, alias)
    undo: list[tuple[str, Callable[[], object]]] = [
        ("tenant row", lambda: _delete_row(services, tenant_id))
    ]
    try:
        # Vectors left behind by an earlier tenant of the same id must not leak into this one.
        vectors.drop_tenant(services.qdrant, tenant_id, spec.name)
        vectors.ensure_tenant_collection(services.qdrant, tenant_id, spec.name, spec.dimension)
        undo.append(
            ("collection", lambda: vectors.drop_tenant(services.qdrant, tenant_id, spec.name))
        )
        services.partitions.add(tenant_id)
    except BaseException:
        for what, step in reversed(undo):
            try:
                step()
            except Exception:
                log.exception("could not undo the %s of tenant %s", what, tenant_id)
        raise
    services.blobs.delete_tenant(tenant_id)
    services.cache.invalidate(tenant_id)
    log.info("created tenant %s (collection %s)", tenant_id, alias)
    return CreatedTenant(tenant, api_key)


def list_tenants(services: Services) -> list[TenantUsage]:
    with services.db.connection() as conn:
        return [
            TenantUsage(t, images.count_by_status(conn, t.tenant_id))
            for t in tenants.list_all(conn)
        ]


def delete_tenant(services: Services, tenant_id: str) -> list[str] | None:
    """Remove a tenant everywhere; returns the dropped collections, or None if it is unknown."""
    with services.db.connection() as conn:
        tenant = tenants.get(conn, tenant_id)
    if tenant is None:
        return None
    services.partitions.remove(tenant_id)
    dropped = vectors.drop_tenant(services.qdrant, tenant_id, tenant.model)
    _delete_row(services, tenant_id)
    services.keys.forget_tenant(tenant_id)
    services.blobs.delete_tenant(tenant_id)
    services.cache.invalidate(tenant_id)
    log.info("deleted tenant %s (collections %s)", tenant_id, dropped)
    return dropped


def _delete_row(services: Services, tenant_id: str) -> None:
    with services.db.connection() as conn:
        tenants.delete(conn, tenant_id)
