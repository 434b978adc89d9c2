"""A failed ingest run (after its retries) fails its images with the reason, and tells Kafka."""

import uuid
from typing import Any

import dagster as dg

from deeplens import pipeline
from deeplens.catalog import images as catalog
from deeplens_dagster.jobs import ingest_job
from deeplens_dagster.resources import CatalogResource


def batch_of(run: dg.DagsterRun) -> list[str]:
    config: dict[str, Any] = dict(run.run_config or {})
    return list(config.get("ops", {}).get("images", {}).get("config", {}).get("image_ids", []))


@dg.run_failure_sensor(
    monitored_jobs=[ingest_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=2,
    description="Marks the images of a failed ingest run `failed` and emits processing.failed.",
)
def ingest_failure_sensor(context: dg.RunFailureSensorContext, catalog_db: CatalogResource) -> None:
    run = context.dagster_run
    tenant_id = run.tags.get("dagster/partition")
    if not tenant_id:
        return
    reason = (context.failure_event.message or "the ingest run failed").strip()
    with catalog_db.connection() as conn:
        ids = batch_of(run)
        if ids:
            rows = catalog.get_many(conn, tenant_id, [uuid.UUID(i) for i in ids])
        else:
            rows = catalog.for_tenant(conn, tenant_id, ("processing",))
        failures = {
            r.image_id: f"run {run.run_id[:8]} failed: {reason}"
            for r in rows
            if r.status != "completed"
        }
        n = pipeline.fail(conn, tenant_id, failures, stage="run")
    context.log.info("marked %d image(s) of tenant %s failed", n, tenant_id)
