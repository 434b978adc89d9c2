from __future__ import annotations

import dagster as dg
from pydantic import Field

# A step tries again within its run for a blip (a connection reset, a restart of seconds); a
# longer outage fails the run, whose images the reconciler retries with backoff for as long as
# DEEPLENS_RETRY_BUDGET_SECONDS, without holding a run slot meanwhile.
RETRY = dg.RetryPolicy(
    max_retries=2, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class IngestBatch(dg.Config):
    """The images a run processes; the sensor fills it in. Empty rebuilds the whole tenant."""

    image_ids: list[str] = Field(
        default_factory=list,
        description="Image ids of this batch. Leave empty (a backfill) to rebuild the tenant.",
    )
