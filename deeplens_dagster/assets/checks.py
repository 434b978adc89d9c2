"""Asset checks: bad embeddings must not reach the index."""

import uuid

import dagster as dg

from deeplens.catalog import embeddings as stored
from deeplens.catalog import retries, tenants
from deeplens.quality import check_vectors
from deeplens_dagster.assets.ingest import embeddings
from deeplens_dagster.resources import CatalogResource, EmbedderResource
from deeplens_dagster.sensors.failures import batch_of

SAMPLE = 5000


@dg.asset_check(asset=embeddings, blocking=True, description=None)
def embeddings_are_unit_vectors(
    context: dg.AssetCheckExecutionContext,
    catalog_db: CatalogResource,
    embedder: EmbedderResource,
) -> dg.AssetCheckResult:
    """The run's embeddings have the model's dimension, are finite and unit-length.

    It checks what this run is about to index: its batch, or, for a rebuild, the images it took
    up (at most 5,000). Blocking: if it fails, `indexed_vectors` does not run, and the run's
    images are retried rather than indexed.
    """
    tenant_id = context.op_execution_context.partition_key
    run = context.op_execution_context.run
    with catalog_db.connection() as conn:
        tenant = tenants.get(conn, tenant_id)
        if tenant is None:
            return dg.AssetCheckResult(passed=False, description=f"no tenant {tenant_id!r}")
        spec = embedder.spec(tenant.model)
        ids = [uuid.UUID(i) for i in batch_of(run)] or retries.owned_by(conn, run.run_id)
        found = stored.load(conn, spec.name, spec.version, ids[:SAMPLE])
    report = check_vectors(list(found.values()), spec.dimension)
    return dg.AssetCheckResult(
        passed=report.passed,
        description=report.describe(),
        metadata={
            "tenant": tenant_id,
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
