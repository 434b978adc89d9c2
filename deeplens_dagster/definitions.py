"""Assembles the DeepLens code location from its per-concern modules; no logic lives here."""

import dagster as dg

from deeplens_dagster.assets.checks import embeddings_are_unit_vectors
from deeplens_dagster.assets.ingest import embeddings, images, indexed_vectors
from deeplens_dagster.jobs import ingest_job
from deeplens_dagster.resources import (
    BlobStoreResource,
    CatalogResource,
    EmbedderResource,
    KafkaResource,
    QdrantResource,
)
from deeplens_dagster.sensors.failures import ingest_failure_sensor
from deeplens_dagster.sensors.uploads import image_upload_sensor

defs = dg.Definitions(
    assets=[images, embeddings, indexed_vectors],
    asset_checks=[embeddings_are_unit_vectors],
    jobs=[ingest_job],
    sensors=[image_upload_sensor, ingest_failure_sensor],
    resources={
        "catalog_db": CatalogResource(url=dg.EnvVar("DEEPLENS_DATABASE_URL")),
        "qdrant": QdrantResource(url=dg.EnvVar("DEEPLENS_QDRANT_URL")),
        "kafka": KafkaResource(bootstrap=dg.EnvVar("DEEPLENS_KAFKA_BOOTSTRAP")),
        "blobs": BlobStoreResource(root=dg.EnvVar("DEEPLENS_BLOB_ROOT")),
        "embedder": EmbedderResource(),
    },
)
