"""Asset checks: bad embeddings must not reach the index."""

import dagster as dg

from deeplens.catalog import embeddings as stored
from deeplens.catalog import tenants
from deeplens.quality import check_vectors
from deeplens_dagster.assets.ingest import embeddings
from deeplens_dagster.resources import CatalogResource, EmbedderResource

SAMPLE = 2000


@dg.asset_check(asset=embeddings, blocking=True, description=None)
def embeddings_are_unit_vectors(
    context: dg.AssetCheckExecutionContext,
    catalog_db: CatalogResource,
    embedder: EmbedderResource,
) -> dg.AssetCheckResult:
    """The tenant's latest embeddings have the model's dimension, are finite and unit-length.

    Blocking: if it fails, `indexed_vectors` does not run and the batch's images fail with the
    reason instead of entering the index.
    """
    tenant_id = context.op_execution_context.partition_key
    with catalog_db.connection() as conn:
        tenant = tenants.get(conn, tenant_id)
        if tenant is None:
            return dg.AssetCheckResult(passed=False, description=f"no tenant {tenant_id!r}")
        spec = embedder.spec(tenant.model)
        rows = stored.recent(conn, tenant_id, spec.name, SAMPLE)
    report = check_vectors(rows, spec.dimension)
    return dg.AssetCheckResult(
        passed=report.passed,
        description=report.describe(),
        metadata={
            "checked": report.count,
            "dimension": spec.dimension,
            "wrong_dimension": report.wrong_dimension,
            "non_finite": report.non_finite,
            "off_unit_norm": report.off_unit_norm,
            "min_norm": dg.MetadataValue.float(report.min_norm),
            "max_norm": dg.MetadataValue.float(report.max_norm),
            "duplicate_vectors": report.duplicate_rows,
        },
    )
