"""Tenant partitions follow the catalog: one partition per tenant, added for a new tenant and
removed for a deleted one. The API writes tenants to the catalog only; it knows nothing of
Dagster."""

import dagster as dg

from deeplens.catalog import tenants
from deeplens_dagster.partitions import TENANTS, tenant_partitions
from deeplens_dagster.resources import CatalogResource


@dg.sensor(
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps the `tenants` partitions equal to the catalog's tenants.",
)
def tenant_partitions_sensor(
    context: dg.SensorEvaluationContext, catalog_db: CatalogResource
) -> dg.SensorResult | dg.SkipReason:
    with catalog_db.connection() as conn:
        wanted = {t.tenant_id for t in tenants.list_all(conn)}
    have = set(context.instance.get_dynamic_partitions(TENANTS))
    added, removed = sorted(wanted - have), sorted(have - wanted)
    if not added and not removed:
        return dg.SkipReason(f"the partitions match the catalog's {len(wanted)} tenant(s)")
    if added:
        context.log.info("adding partitions of new tenants: %s", added)
    if removed:
        context.log.info("removing partitions of deleted tenants: %s", removed)
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if added:
        requests.append(tenant_partitions.build_add_request(added))
    if removed:
        requests.append(tenant_partitions.build_delete_request(removed))
    return dg.SensorResult(dynamic_partitions_requests=requests)
