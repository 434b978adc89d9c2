from __future__ import annotations

import dagster as dg
from pydantic import Field

RETRY = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class IngestBatch(dg.Config):
    """The images a run processes; the sensor fills it in. Empty rebuilds the whole tenant."""

    image_ids: list[str] = Field(
        default_factory=list,
        description="Image ids of this batch. Leave empty (a backfill) to rebuild the tenant.",
    )
