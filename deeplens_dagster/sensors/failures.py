"""A failed run's own images are retried: a run fails for infrastructure reasons (a dependency
down, its worker lost), since an image's own fault fails that image inside the run and lets the
rest of its batch go on. Covers every run of this code location that materializes the assets:
sensor batches, the `ingest` job, retries, and asset backfills from the UI.
"""

import uuid
from typing import Any

import dagster as dg

from deeplens import pipeline
from deeplens.catalog import retries
from deeplens_dagster.resources import CatalogResource


def batch_of(run: dg.DagsterRun) -> list[str]:
    """The image ids a run was given (empty for a rebuild of the whole tenant)."""
    config: dict[str, Any] = dict(run.run_config or {})
    return list(config.get("ops", {}).get("images", {}).get("config", {}).get("image_ids", []))


def failure_reason(context: dg.RunFailureSensorContext) -> str:
    """Why the run failed, in the words of its failed steps' errors where there are any (the
    run's own message says only which steps failed)."""
    errors = []
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        message = error.message.strip() if error is not None else ""
        errors.append(f"{event.step_key}: {message}" if message else str(event.step_key))
    return "; ".join(errors) or (context.failure_event.message or "the run failed").strip()


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=2,
    description=(
        "Moves the images of a failed run to `retrying` (with backoff, within the retry "
        "budget), or `failed` with processing.failed once the budget is spent."
    ),
)
def ingest_failure_sensor(context: dg.RunFailureSensorContext, catalog_db: CatalogResource) -> None:
    run = context.dagster_run
    tenant_id = run.tags.get("dagster/partition")
    if not tenant_id:
        return
    reason = failure_reason(context)
    with catalog_db.connection() as conn:
        ids = {uuid.UUID(i) for i in batch_of(run)} | set(retries.owned_by(conn, run.run_id))
        outcome = pipeline.retry_later(
            conn,
            tenant_id,
            sorted(ids),
            f"run {run.run_id[:8]} failed: {reason}",
            retries.RetryPolicy.of(catalog_db.settings),
            stage="run",
            run_id=run.run_id,
        )
    context.log.info(
        "run %s of tenant %s failed: %d image(s) to retry, %d out of retry budget",
        run.run_id[:8],
        tenant_id,
        len(outcome.retrying),
        len(outcome.gave_up),
    )
