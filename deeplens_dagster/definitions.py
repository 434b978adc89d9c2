"""Assembles the DeepLens code location from its per-concern modules; no logic lives here.

Resources read their connection settings from ``DEEPLENS_*`` (see `deeplens.settings`) when a
run or sensor first uses them, through the same factories as the API.
"""

import dagster as dg

from deeplens_dagster.assets.duplicates import duplicate_groups
from deeplens_dagster.assets.freshness import uploads_searchable_in_time
from deeplens_dagster.assets.registry import all_assets, all_checks
from deeplens_dagster.jobs import duplicates_job, ingest_job
from deeplens_dagster.resources import (
    BlobStoreResource,
    CatalogResource,
    EmbedderResource,
    KafkaResource,
    QdrantResource,
)
from deeplens_dagster.sensors.duplicates import duplicates_sensor
from deeplens_dagster.sensors.failures import ingest_failure_sensor
from deeplens_dagster.sensors.freshness import tenant_freshness
from deeplens_dagster.sensors.reconciler import reconciler
from deeplens_dagster.sensors.tenants import tenant_partitions_sensor
from deeplens_dagster.sensors.uploads import image_upload_sensor

defs = dg.Definitions(
    assets=[*all_assets(), duplicate_groups],
    asset_checks=[*all_checks(), uploads_searchable_in_time],
    jobs=[ingest_job, duplicates_job],
    sensors=[
        image_upload_sensor,
        ingest_failure_sensor,
        tenant_partitions_sensor,
        reconciler,
        duplicates_sensor,
        tenant_freshness,
    ],
    # Every run in one process, asset backfills from the UI included (a process per step costs
    # a process start each, about 1.5 s of imports).
    executor=dg.in_process_executor,
    resources={
        "catalog_db": CatalogResource(),
        "qdrant": QdrantResource(),
        "kafka": KafkaResource(),
        "blobs": BlobStoreResource(),
        "embedder": EmbedderResource(),
    },
)
