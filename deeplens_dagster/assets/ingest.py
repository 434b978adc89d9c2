"""The ingest assets, ``images`` → ``embeddings`` → ``indexed_vectors``, partitioned by tenant.

Each step runs in a span of its upload's trace (`deeplens_dagster.tracing`) naming its images.
"""

import time

import dagster as dg

from deeplens import pipeline, tracing
from deeplens.catalog import images as catalog
from deeplens.catalog import tenants
from deeplens_dagster.assets.config import RETRY, IngestBatch
from deeplens_dagster.partitions import tenant_partitions
from deeplens_dagster.resources import (
    BlobStoreResource,
    CatalogResource,
    EmbedderResource,
    QdrantResource,
)
from deeplens_dagster.tracing import traced_step


def _tenant(context: dg.AssetExecutionContext, catalog_db: CatalogResource) -> tenants.Tenant:
    with catalog_db.connection() as conn:
        tenant = tenants.get(conn, context.partition_key)
    if tenant is None:
        raise dg.Failure(f"tenant {context.partition_key!r} does not exist", allow_retries=False)
    return tenant


def _sample(ids: list[str], n: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.json(ids[:n])


@dg.asset(
    partitions_def=tenant_partitions,
    group_name="ingest",
    kinds={"postgres", "python"},
    retry_policy=RETRY,
    description=None,
)
@traced_step
def images(
    context: dg.AssetExecutionContext,
    config: IngestBatch,
    catalog_db: CatalogResource,
    blobs: BlobStoreResource,
) -> dg.MaterializeResult:
    """Uploaded images of the tenant taken up for processing.

    A sensor run names its batch (image ids read from `deeplens.images.uploaded`, with the Kafka
    offsets in the run's tags); a run without a batch (a backfill) takes every image of the
    tenant. Images already searchable are skipped; the rest move to `processing`, as this run's
    own (a failed run retries exactly these). An image whose bytes are missing fails alone; a
    blob store that can't be reached fails the run, whose images are then retried.
    """
    tenant = _tenant(context, catalog_db)
    store = blobs.store
    if not store.available():
        raise pipeline.BlobStoreUnavailable(f"the blob store at {store.location} is unavailable")
    with catalog_db.connection() as conn:
        rows = pipeline.select(conn, tenant.tenant_id, config.image_ids)
        tracing.correlate([r.correlation_id for r in rows])
        todo = [r.image_id for r in rows if r.status != "completed"]
        catalog.mark_processing(conn, todo, run_id=context.run_id)
        gone = store.missing([r.blob_key for r in rows])
        missing = {r.image_id: pipeline.MISSING_BLOB for r in rows if r.blob_key in gone}
        failed = pipeline.fail(conn, tenant.tenant_id, missing, stage="images")
    tags = context.run.tags
    return dg.MaterializeResult(
        metadata={
            "tenant": tenant.tenant_id,
            "mode": "batch" if config.image_ids else "rebuild",
            "batch_size": len(config.image_ids),
            "images": len(rows),
            "to_process": len(todo),
            "already_completed": len(rows) - len(todo),
            "missing_blobs": failed,
            "kafka_offsets": tags.get("deeplens/offsets", "n/a"),
            "bytes": sum(r.file_size for r in rows),
            "sample_image_ids": _sample([str(r.image_id) for r in rows]),
        }
    )


@dg.asset(
    deps=[images],
    partitions_def=tenant_partitions,
    group_name="ingest",
    kinds={"onnx", "postgres"},
    retry_policy=RETRY,
)
@traced_step
def embeddings(
    context: dg.AssetExecutionContext,
    config: IngestBatch,
    catalog_db: CatalogResource,
    blobs: BlobStoreResource,
    embedder: EmbedderResource,
    qdrant: QdrantResource,
) -> dg.MaterializeResult:
    """L2-normalised image embeddings from the tenant's ONNX model, stored in PostgreSQL.

    Stored per (image, model) with the model's version (its file checksum), so the index can be
    rebuilt without running the model again. An image that fails to decode is marked `failed`
    with the reason; the rest of the batch goes on.
    """
    qdrant.connect_in_background()  # for `indexed_vectors`: its import overlaps inference
    tenant = _tenant(context, catalog_db)
    spec = embedder.spec(tenant.model)
    with catalog_db.connection() as conn:
        rows = [
            r
            for r in pipeline.select(conn, tenant.tenant_id, config.image_ids)
            if r.status != "failed"
        ]
        tracing.correlate([r.correlation_id for r in rows])
        outcome = pipeline.embed(
            conn,
            blobs.store,
            rows,
            lambda chunks: embedder.embed_stream(tenant.model, chunks),
            spec.name,
            spec.version,
            chunk=max(embedder.max_batch * 4, 64),
            dimension=spec.dimension,
        )
        pipeline.fail(conn, tenant.tenant_id, outcome.failed, stage="embeddings")
    per_image = outcome.seconds / outcome.embedded * 1000 if outcome.embedded else 0.0
    return dg.MaterializeResult(
        metadata={
            "tenant": tenant.tenant_id,
            "model": spec.name,
            "model_version": spec.version[:12],
            "dimension": spec.dimension,
            "embedded": outcome.embedded,
            "reused_stored": outcome.reused,
            "failed": len(outcome.failed),
            "failures": dg.MetadataValue.json(
                {str(k): v for k, v in list(outcome.failed.items())[:10]}
            ),
            "inference_batch_size": embedder.max_batch,
            "seconds": dg.MetadataValue.float(round(outcome.seconds, 3)),
            "ms_per_image": dg.MetadataValue.float(round(per_image, 2)),
        }
    )


@dg.asset(
    deps=[embeddings],
    partitions_def=tenant_partitions,
    group_name="ingest",
    kinds={"qdrant"},
    retry_policy=RETRY,
)
@traced_step
def indexed_vectors(
    context: dg.AssetExecutionContext,
    config: IngestBatch,
    catalog_db: CatalogResource,
    qdrant: QdrantResource,
    embedder: EmbedderResource,
) -> dg.MaterializeResult:
    """The tenant's vectors in Qdrant, searchable under the alias `tenant_{id}_{model}_vectors`.

    A sensor batch is upserted into the live collection; a rebuild (a backfill) builds a new
    physical collection from the stored embeddings and swaps the alias atomically, so search
    never sees a half-built index. Images become `completed` and get their
    `processing.completed` event.
    """
    tenant = _tenant(context, catalog_db)
    spec = embedder.spec(tenant.model)
    started = time.perf_counter()
    with catalog_db.connection() as conn:
        rows = pipeline.select(conn, tenant.tenant_id, config.image_ids)
        tracing.correlate([r.correlation_id for r in rows])
        outcome = pipeline.index(
            conn,
            qdrant.client,
            tenant.collection_alias,
            rows,
            spec.name,
            spec.version,
            rebuild=not config.image_ids,
            tenant_id=tenant.tenant_id,
            dim=spec.dimension,
        )
    points = qdrant.client.count(tenant.collection_alias, exact=True).count
    return dg.MaterializeResult(
        metadata={
            "tenant": tenant.tenant_id,
            "collection_alias": tenant.collection_alias,
            "collection": outcome.collection,
            "rebuilt_from": outcome.rebuilt_from or "n/a",
            "upserted": outcome.indexed,
            "newly_searchable": outcome.completed,
            "without_vector": len(outcome.missing_vectors),
            "points_in_collection": points,
            "model": spec.name,
            "model_version": spec.version[:12],
            "seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
            "seconds_by_part": dg.MetadataValue.json(outcome.timings),
        }
    )
