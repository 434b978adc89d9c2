"""Requests a `duplicates` run for a tenant with newly indexed images once it is quiet (no
upload for a minute, no run queued or under way): a tenant's runs queue behind each other, so a
grouping run in a stream of uploads would hold the next batch back."""

import time

import dagster as dg

from deeplens.catalog import duplicates
from deeplens_dagster.jobs import duplicates_job
from deeplens_dagster.resources import CatalogResource
from deeplens_dagster.sensors.uploads import IN_FLIGHT

QUIET_SECONDS = 60.0


@dg.sensor(
    job=duplicates_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Updates a tenant's duplicate groups once it has been quiet for a minute.",
)
def duplicates_sensor(
    context: dg.SensorEvaluationContext, catalog_db: CatalogResource
) -> dg.SensorResult | dg.SkipReason:
    with catalog_db.connection() as conn:
        waiting = duplicates.tenants_with_ungrouped(conn, QUIET_SECONDS)
    busy = {
        run.tags.get("dagster/partition")
        for run in context.instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT))
    }
    ready = sorted(set(waiting) - busy)
    if not ready:
        return dg.SkipReason(f"{len(waiting)} tenant(s) with new images, all busy or none")
    now = int(time.time())
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"duplicates/{t}/{now}", partition_key=t) for t in ready
        ]
    )
