"""Duplicate groups per tenant, kept up to date as images arrive and leave."""

import dagster as dg

from deeplens import duplicates
from deeplens.catalog import tenants
from deeplens_dagster.assets.registry import MODELS
from deeplens_dagster.partitions import tenant_partitions
from deeplens_dagster.resources import CatalogResource, QdrantResource


@dg.asset(
    deps=[m.indexed_vectors for m in MODELS.values()],
    partitions_def=tenant_partitions,
    group_name="quality",
    kinds={"postgres", "qdrant"},
)
def duplicate_groups(
    context: dg.AssetExecutionContext,
    catalog_db: CatalogResource,
    qdrant: QdrantResource,
) -> dg.MaterializeResult:
    """The tenant's duplicate groups: exact (the same picture in another file) and near (a
    resized, cropped, recompressed copy: similarity above the tenant's threshold).

    Looks at the images indexed since the last run (their vectors, their nearest neighbours) and
    recomputes the groups; served by `GET /api/v1/duplicates`.
    """
    with catalog_db.connection() as conn:
        tenant = tenants.get(conn, context.partition_key)
        if tenant is None:
            raise dg.Failure(
                f"tenant {context.partition_key!r} does not exist", allow_retries=False
            )
        outcome = duplicates.update(
            conn, qdrant.client, tenant.tenant_id, tenant.model, tenant.collection_alias
        )
    return dg.MaterializeResult(
        metadata={
            "tenant": tenant.tenant_id,
            "looked_at": outcome.looked_at,
            "new_edges": outcome.new_edges,
            "exact_groups": outcome.groups.get("exact", 0),
            "near_groups": outcome.groups.get("near", 0),
            "largest_exact_group": outcome.largest.get("exact", 0),
            "largest_near_group": outcome.largest.get("near", 0),
        }
    )
