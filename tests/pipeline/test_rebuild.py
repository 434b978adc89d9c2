"""A run without a batch (a backfill) rebuilds the tenant's index from stored embeddings and
swaps the alias: `dg.materialize` on the real stack's Postgres and Qdrant."""

from __future__ import annotations

import uuid

import dagster as dg
import httpx
import psycopg

from deeplens import clients, vectors
from deeplens.catalog import runs
from deeplens_dagster.assets.ingest import images
from deeplens_dagster.assets.registry import CHECKS, MODELS
from deeplens_dagster.partitions import TENANTS
from deeplens_dagster.resources import (
    BlobStoreResource,
    CatalogResource,
    EmbedderResource,
    QdrantResource,
)
from deeplens_local import synthetic
from deeplens_local.stack.stack import Stack
from tests.e2e.helpers import create_tenant, upload, wait_terminal


def test_backfill_rebuilds_into_a_new_collection_without_the_model(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, f"rebuild-{uuid.uuid4().hex[:6]}")
    tenant_id, key, alias = (
        str(tenant["tenantId"]),
        str(tenant["apiKey"]),
        str(tenant["collection"]),
    )
    with httpx.Client(base_url=api_url, timeout=30) as client:
        ids = []
        for seed in range(1000, 1006):
            response = upload(client, key, synthetic.photo_bytes(seed), f"{seed}.jpg")
            assert response.status_code == 202, response.text
            ids.append(response.json()["imageId"])
        wait_terminal(client, key, ids)

    qdrant = clients.qdrant(stack.child_settings())
    before = vectors.alias_target(qdrant, alias)
    assert before is not None and qdrant.count(alias, exact=True).count == 6

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TENANTS, [tenant_id])
    model = str(tenant["model"])
    result = dg.materialize(
        [images, *MODELS[model].all, *CHECKS[model]],
        partition_key=tenant_id,
        instance=instance,
        resources={
            "catalog_db": CatalogResource(),
            "qdrant": QdrantResource(),
            "blobs": BlobStoreResource(),
            "embedder": EmbedderResource(),
        },
    )
    assert result.success
    embedded = result.asset_materializations_for_node(f"{model}__embeddings")[0].metadata
    assert embedded["embedded"].value == 0 and embedded["reused_stored"].value == 6
    swapped = result.asset_materializations_for_node(f"{model}__serving_index")[0].metadata
    assert swapped["rebuilt_from"].value == before
    after = vectors.alias_target(qdrant, alias)
    assert after is not None and after != before
    assert qdrant.count(alias, exact=True).count == 6
    assert qdrant.collection_exists(before), "kept for a rollback until its grace period ends"
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        retired = runs.latest_retired(conn, alias)
    assert retired is not None and (retired.collection, retired.replaced_by) == (before, after)
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
