"""Materialising the ingest assets of one tenant partition, as the sensor's runs do."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import psycopg
from qdrant_client import QdrantClient

from deeplens.blobs import BlobStore
from deeplens.catalog.images import Image
from deeplens_dagster.assets.ingest import images
from deeplens_dagster.assets.registry import CHECKS, MODELS
from tests.middle import seed

DEFAULT = MODELS[seed.MODEL]
embeddings, indexed_vectors, serving_index = DEFAULT.all
[embeddings_are_unit_vectors, retrieval_not_worse, index_reconciled] = CHECKS[seed.MODEL]
INGEST: Sequence[Any] = (images, embeddings, indexed_vectors)
# A rebuild (no batch) runs what a backfill of the model runs: its index swapped in once checked.
REBUILD: Sequence[Any] = (*INGEST, serving_index, retrieval_not_worse)


def ingest(
    tenant_id: str,
    instance: dg.DagsterInstance,
    resources: Mapping[str, object],
    image_ids: list[uuid.UUID] | None = None,
    assets: Sequence[Any] = INGEST,
    check: bool = False,
    raise_on_error: bool = True,
    tags: Mapping[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """A run of `assets` (default: the default model's) for the tenant: a batch of `image_ids`,
    or with none a rebuild (a backfill, with the swap and its retrieval check); with `check`,
    the blocking embeddings check runs too."""
    ops = tuple(a.op.name for a in assets if isinstance(a, dg.AssetsDefinition))
    if not image_ids and assets is INGEST:
        assets = REBUILD
    return dg.materialize(
        [*assets, *([embeddings_are_unit_vectors] if check else [])],
        partition_key=tenant_id,
        instance=instance,
        resources=dict(resources),
        run_config=seed.batch_config(image_ids, ops) if image_ids else None,
        raise_on_error=raise_on_error,
        tags=dict(tags or {}),
    )


def node(asset: str) -> str:
    """The op of an asset named by its last part (the default model's, for a model's asset)."""
    return asset if asset in ("images", "duplicate_groups") else f"{seed.MODEL}__{asset}"


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The plain values of the asset's (single) materialisation's metadata."""
    [materialization] = result.asset_materializations_for_node(node(asset))
    return {k: v.value for k, v in materialization.metadata.items()}


@dataclass(frozen=True)
class Tenancy:
    """One tenant of the catalog, with what its runs use and what the tests look at."""

    tenant_id: str
    alias: str
    conn: psycopg.Connection
    blobs: BlobStore
    qdrant: QdrantClient
    instance: dg.DagsterInstance
    resources: Mapping[str, object]

    def upload(self, data: bytes, name: str = "photo.jpg", store_blob: bool = True) -> Image:
        return seed.upload(self.conn, self.blobs, self.tenant_id, data, name, store_blob)

    def upload_photos(self, *seeds: int) -> list[uuid.UUID]:
        return [self.upload(seed.photo(n), f"{n}.jpg").image_id for n in seeds]

    def run(
        self,
        image_ids: list[uuid.UUID] | None = None,
        resources: Mapping[str, object] | None = None,
        **options: Any,
    ) -> dg.ExecuteInProcessResult:
        """`ingest` of this tenant, with its resources or `resources` (`options` as there)."""
        return ingest(
            self.tenant_id, self.instance, resources or self.resources, image_ids, **options
        )

    def statuses(self) -> dict[uuid.UUID, tuple[str, str | None]]:
        return seed.statuses(self.conn, self.tenant_id)

    def points(self) -> seed.Points:
        return seed.points(self.qdrant, self.alias)

    def embedded_at(self) -> dict[uuid.UUID, Any]:
        return seed.embedded_at(self.conn, self.tenant_id)

    def outbox(self, topic: str) -> list[dict[str, Any]]:
        return seed.outbox_payloads(self.conn, self.tenant_id, topic)

    def outbox_ids(self, topic: str) -> list[uuid.UUID]:
        return seed.outbox_image_ids(self.conn, self.tenant_id, topic)
