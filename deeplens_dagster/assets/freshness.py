"""Per tenant: are its uploads searchable within `DEEPLENS_FRESHNESS_MINUTES`?

A check of the `images` asset, per tenant partition. The `tenant_freshness` sensor evaluates it
for every tenant each minute and records a result when a tenant's state changes, so that the UI
shows a tenant whose uploads wait (a stuck pipeline, an outage being retried) as failing its
check; a run that selects the check evaluates it the same way.
"""

import dagster as dg

from deeplens.catalog import stats
from deeplens_dagster.assets.ingest import images
from deeplens_dagster.resources import CatalogResource

CHECK = "uploads_searchable_in_time"


def evaluate(tenant_id: str, waiting: tuple[int, float], minutes: float) -> dg.AssetCheckEvaluation:
    count, oldest = waiting
    late = count > 0 and oldest > minutes * 60
    if count == 0:
        description = "no upload waiting"
    else:
        verdict = "late" if late else "within the limit"
        description = (
            f"{count} upload(s) waiting, the oldest for {oldest / 60:.1f} min "
            f"({verdict}: {minutes:g} min)"
        )
    return dg.AssetCheckEvaluation(
        asset_key=images.key,
        check_name=CHECK,
        passed=not late,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={"waiting": count, "oldest_minutes": round(oldest / 60, 2), "limit": minutes},
        partition=tenant_id,
    )


@dg.asset_check(asset=images, name=CHECK)
def uploads_searchable_in_time(
    context: dg.AssetCheckExecutionContext, catalog_db: CatalogResource
) -> dg.AssetCheckResult:
    """No upload of the tenant has waited longer than `DEEPLENS_FRESHNESS_MINUTES` to become
    searchable (or failed). Evaluated each minute by the `tenant_freshness` sensor."""
    tenant_id = context.op_execution_context.partition_key
    with catalog_db.connection() as conn:
        waiting = stats.backlog(conn).get(tenant_id, (0, 0.0))
    found = evaluate(tenant_id, waiting, catalog_db.settings.freshness_minutes)
    return dg.AssetCheckResult(
        passed=found.passed,
        severity=found.severity,
        description=found.description,
        metadata=found.metadata,
    )
