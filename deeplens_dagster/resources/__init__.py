"""Dagster resources: thin adapters over the project's plain modules."""

from deeplens_dagster.resources.blobs import BlobStoreResource
from deeplens_dagster.resources.catalog import CatalogResource
from deeplens_dagster.resources.embedder import EmbedderResource
from deeplens_dagster.resources.kafka import KafkaResource
from deeplens_dagster.resources.qdrant import QdrantResource

__all__ = [
    "BlobStoreResource",
    "CatalogResource",
    "EmbedderResource",
    "KafkaResource",
    "QdrantResource",
]
