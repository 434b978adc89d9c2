"""Records each tenant's `uploads_searchable_in_time` check when its state changes (and for a
tenant seen for the first time), so that the UI shows which tenants' uploads are late."""

import json

import dagster as dg

from deeplens.catalog import stats, tenants
from deeplens_dagster.assets.freshness import evaluate
from deeplens_dagster.resources import CatalogResource


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Each minute: is every tenant's oldest waiting upload within "
    "DEEPLENS_FRESHNESS_MINUTES? Records the tenants whose answer changed.",
)
def tenant_freshness(
    context: dg.SensorEvaluationContext, catalog_db: CatalogResource
) -> dg.SensorResult:
    before: dict[str, bool] = json.loads(context.cursor) if context.cursor else {}
    minutes = catalog_db.settings.freshness_minutes
    with catalog_db.connection() as conn:
        ids = [t.tenant_id for t in tenants.list_all(conn)]
        waiting = stats.backlog(conn)
    partitions = set(context.instance.get_dynamic_partitions("tenants"))
    found = {t: evaluate(t, waiting.get(t, (0, 0.0)), minutes) for t in ids if t in partitions}
    changed = [e for t, e in found.items() if before.get(t) != e.passed]
    if changed:
        late = sorted(str(e.partition) for e in changed if not e.passed)
        context.log.info(f"{len(changed)} tenant(s) changed; late now: {late or 'none'}")
    return dg.SensorResult(
        asset_events=changed, cursor=json.dumps({t: e.passed for t, e in found.items()})
    )
