"""The ingest assets, partitioned by tenant: ``images``, then for each registered model
``{model}/embeddings`` → ``{model}/indexed_vectors`` → ``{model}/serving_index``.

A model's assets carry its version (the file's checksum) as their code version, so that the UI
shows the tenants built with an older version as stale. A tenant holds several models (see
`deeplens.catalog.models`); a model's steps do nothing (no materialization) for a tenant that
does not hold it, so "materialize all" of a tenant builds only its own models.

A sensor batch runs ``images`` and ``embeddings`` + ``indexed_vectors`` of each model the tenant
keeps up; a rebuild (no batch: a backfill or "materialize") builds a new collection in
``indexed_vectors``, which a blocking retrieval check must pass before ``serving_index`` swaps
it in (and, when asked, makes the model the tenant's serving one).

Each step runs in a span of its upload's trace (`deeplens_dagster.tracing`) naming its images.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from deeplens import pipeline, tracing
from deeplens.catalog import images as catalog
from deeplens.catalog import models as tenant_models
from deeplens.catalog import tenants
from deeplens.model.registry import ModelSpec
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


def asset_key(model: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([model, name])


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
    own (a failed run retries exactly these). A rebuild that does not swap the serving model's
    index (the build of another model) takes none up: they stay with the sensor's runs. An
    image whose bytes are missing fails alone; a blob store that can't be reached fails the
    run, whose images are then retried.
    """
    tenant = _tenant(context, catalog_db)
    store = blobs.store
    if not store.available():
        raise pipeline.BlobStoreUnavailable(f"the blob store at {store.location} is unavailable")
    selected = context.run.asset_selection
    completes = (
        bool(config.image_ids)
        or selected is None
        or (asset_key(tenant.model, "serving_index") in selected)
    )
    with catalog_db.connection() as conn:
        rows = pipeline.select(conn, tenant.tenant_id, config.image_ids)
        tracing.correlate([r.correlation_id for r in rows])
        todo = [r.image_id for r in rows if r.status != "completed"] if completes else []
        catalog.mark_processing(conn, todo, run_id=context.run.run_id)
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


@dataclass(frozen=True)
class ModelAssets:
    """One registered model's three assets."""

    spec: ModelSpec
    embeddings: dg.AssetsDefinition
    indexed_vectors: dg.AssetsDefinition
    serving_index: dg.AssetsDefinition

    @property
    def all(self) -> list[dg.AssetsDefinition]:
        return [self.embeddings, self.indexed_vectors, self.serving_index]


def _held(
    context: dg.AssetExecutionContext, catalog_db: CatalogResource, model: str, batch: bool
) -> tuple[tenants.Tenant, tenant_models.TenantModel] | None:
    """The tenant and its hold of `model`, if this step has work: a rebuild builds any model
    the tenant holds (not retired); a batch updates the models it keeps up."""
    tenant = _tenant(context, catalog_db)
    with catalog_db.connection() as conn:
        held = tenant_models.get(conn, tenant.tenant_id, model)
    if held is None or held.state == tenant_models.RETIRED:
        context.log.info(
            f"tenant {tenant.tenant_id!r} does not hold model {model!r}: nothing to do (add it "
            f"with POST /api/v1/admin/tenants/{tenant.tenant_id}/models)"
        )
        return None
    if batch and not (held.serving or held.state in tenant_models.KEPT_UP):
        context.log.info(f"model {model!r} is {held.state}: its first build takes this batch")
        return None
    return tenant, held


def _check_version(held: tenant_models.TenantModel, spec: ModelSpec) -> None:
    """A batch must not mix vector spaces: its vectors go into an index built with the
    registered version of the model, or nowhere."""
    if held.model_version is not None and held.model_version != spec.version:
        raise dg.Failure(
            f"model {spec.name!r} of tenant {held.tenant_id!r} changed since its index was built "
            f"(version {held.model_version[:12]}, registered now {spec.version[:12]}): rebuild the "
            f'tenant\'s {spec.name} assets ("materialize changed" in the UI); its new uploads '
            "are retried meanwhile",
            allow_retries=False,
        )


def _target(
    context: dg.AssetExecutionContext, held: tenant_models.TenantModel, spec: ModelSpec
) -> pipeline.Target:
    return pipeline.Target(
        tenant_id=held.tenant_id,
        model=spec.name,
        model_version=spec.version,
        alias=held.alias,
        run_id=context.run.run_id,
        dim=spec.dimension,
    )


def model_assets(spec: ModelSpec) -> ModelAssets:
    """The assets of one registered model: its embeddings, its index and the serving swap."""
    model = spec.name
    common: dict[str, Any] = {
        "partitions_def": tenant_partitions,
        "group_name": "ingest",
        "retry_policy": RETRY,
        "code_version": spec.version,
        "output_required": False,
    }

    @dg.asset(
        key=asset_key(model, "embeddings"),
        deps=[images],
        kinds={"onnx", "postgres"},
        description=f"L2-normalised {spec.dimension}-d image embeddings from {model}, stored in "
        "PostgreSQL per image and model version, so an index can be rebuilt without running the "
        "model again. An image that fails to decode is marked `failed` with the reason; the rest "
        "of the batch goes on.",
        **common,
    )
    @traced_step
    def embeddings(
        context: dg.AssetExecutionContext,
        config: IngestBatch,
        catalog_db: CatalogResource,
        blobs: BlobStoreResource,
        embedder: EmbedderResource,
        qdrant: QdrantResource,
    ) -> Iterator[dg.MaterializeResult]:
        qdrant.connect_in_background()  # for `indexed_vectors`: its import overlaps inference
        found = _held(context, catalog_db, model, batch=bool(config.image_ids))
        if found is None:
            return
        tenant, held = found
        if config.image_ids:
            _check_version(held, spec)
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
                lambda chunks: embedder.embed_stream(model, chunks),
                spec.name,
                spec.version,
                chunk=max(embedder.max_batch * 4, 64),
                dimension=spec.dimension,
            )
            pipeline.fail(conn, tenant.tenant_id, outcome.failed, stage="embeddings")
        per_image = outcome.seconds / outcome.embedded * 1000 if outcome.embedded else 0.0
        yield dg.MaterializeResult(
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
        key=asset_key(model, "indexed_vectors"),
        deps=[embeddings],
        kinds={"qdrant"},
        description=f"The tenant's {model} vectors in Qdrant. A sensor batch is upserted under "
        f"the alias `tenant_{{id}}_{model}_vectors` (and, for the serving model, its images "
        "become `completed`); a rebuild builds a new physical collection beside the live one, "
        "which the blocking retrieval check must pass before `serving_index` swaps it in.",
        **common,
    )
    @traced_step
    def indexed_vectors(
        context: dg.AssetExecutionContext,
        config: IngestBatch,
        catalog_db: CatalogResource,
        qdrant: QdrantResource,
    ) -> Iterator[dg.MaterializeResult]:
        batch = bool(config.image_ids)
        found = _held(context, catalog_db, model, batch=batch)
        if found is None:
            return
        tenant, held = found
        target = _target(context, held, spec)
        started = time.perf_counter()
        with catalog_db.connection() as conn:
            rows = pipeline.select(conn, tenant.tenant_id, config.image_ids)
            tracing.correlate([r.correlation_id for r in rows])
            if batch:
                outcome = pipeline.index_batch(conn, qdrant.client, target, rows, held.serving)
            else:
                outcome = pipeline.build(conn, qdrant.client, target, rows)
                tenant_models.candidate(conn, tenant.tenant_id, model, outcome.collection)
        points = qdrant.client.count(outcome.collection, exact=True).count
        yield dg.MaterializeResult(
            metadata={
                "tenant": tenant.tenant_id,
                "mode": "batch" if batch else "rebuild",
                "collection_alias": held.alias,
                "collection": outcome.collection,
                "serving_model": held.serving,
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

    @dg.asset(
        key=asset_key(model, "serving_index"),
        deps=[indexed_vectors],
        kinds={"qdrant"},
        description=f"The {model} index searches read. After a rebuild whose retrieval check "
        "passed, the model's alias is swapped onto the new collection in one atomic request "
        "(the replaced one is kept for a rollback), and a model added with `serve: true` becomes "
        "the tenant's serving model.",
        **common,
    )
    @traced_step
    def serving_index(
        context: dg.AssetExecutionContext,
        config: IngestBatch,
        catalog_db: CatalogResource,
        qdrant: QdrantResource,
    ) -> Iterator[dg.MaterializeResult]:
        if config.image_ids:
            context.log.info("a sensor batch updates the live index itself: nothing to swap")
            return
        found = _held(context, catalog_db, model, batch=False)
        if found is None:
            return
        tenant, held = found
        check = held.last_check or {}
        verified = check.get("runId") == context.run.run_id and check.get("passed")
        if not held.candidate or not verified:
            raise dg.Failure(
                f"no verified {model} collection from this run to swap in (the retrieval check "
                f"of `{model}/indexed_vectors` must run and pass in the same run): "
                f"{check.get('description', 'no check result')}",
                allow_retries=False,
            )
        target = _target(context, held, spec)
        run_started = datetime.fromtimestamp(
            context.instance.get_run_stats(context.run.run_id).start_time or time.time(), UTC
        )
        with catalog_db.connection() as conn:
            rows = pipeline.select(conn, tenant.tenant_id, [])
            serve = held.serving or held.serve_when_verified
            outcome = pipeline.promote(
                conn, qdrant.client, target, held.candidate, rows, run_started, complete=serve
            )
            with conn.transaction():
                tenant_models.built(
                    conn, tenant.tenant_id, model, spec.version, held.candidate, None
                )
                switched = serve and not held.serving
                if switched:
                    tenant_models.serve(conn, tenant.tenant_id, model)
            points = qdrant.client.count(held.alias, exact=True).count
        yield dg.MaterializeResult(
            metadata={
                "tenant": tenant.tenant_id,
                "collection_alias": held.alias,
                "collection": held.candidate,
                "rebuilt_from": outcome.rebuilt_from or "n/a",
                "serving_model": serve,
                "switched_serving_model": switched,
                "newly_searchable": outcome.completed,
                "points_in_collection": points,
                "model": spec.name,
                "model_version": spec.version[:12],
                "seconds_by_part": dg.MetadataValue.json(outcome.timings),
            }
        )

    return ModelAssets(spec, embeddings, indexed_vectors, serving_index)
