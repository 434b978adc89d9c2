"""Tenant partitions follow the catalog: one partition per tenant, added for a new tenant and
removed for a deleted one. The API writes tenants to the catalog only; it knows nothing of
Dagster.

A new tenant's partition is recorded as materialized, empty, for `images` and its serving
model's assets (its collection was created with it): an empty tenant does not read as a missing
partition ("50% filled") in the UI.
"""

import dagster as dg

from deeplens.catalog import tenants
from deeplens_dagster.assets.ingest import images
from deeplens_dagster.assets.registry import MODELS
from deeplens_dagster.partitions import TENANTS, tenant_partitions
from deeplens_dagster.resources import CatalogResource


def empty_materializations(
    instance: dg.DagsterInstance, empty: dict[str, str], partitions: set[str]
) -> list[dg.AssetMaterialization]:
    """Materializations, with no run, of the empty tenants' partitions not yet materialized."""
    done = instance.get_materialized_partitions(images.key)
    out = []
    for tenant_id, model in sorted(empty.items()):
        if tenant_id not in partitions or tenant_id in done or model not in MODELS:
            continue
        for asset in (images, *MODELS[model].all):
            out.append(
                dg.AssetMaterialization(
                    asset_key=asset.key,
                    partition=tenant_id,
                    description="The tenant was created: nothing uploaded yet.",
                    metadata={"tenant": tenant_id, "images": 0},
                )
            )
    return out


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
        empty = tenants.empty(conn)
    have = set(context.instance.get_dynamic_partitions(TENANTS))
    added, removed = sorted(wanted - have), sorted(have - wanted)
    created = empty_materializations(context.instance, empty, have & wanted)
    if not added and not removed and not created:
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
    return dg.SensorResult(dynamic_partitions_requests=requests, asset_events=created)
