"""Asset checks of each model's assets, per tenant partition.

- ``{model}/embeddings`` `vectors_are_valid` (blocking): what the run is about to index has the
  model's dimension, is finite and unit-length, and is not one vector repeated.
- ``{model}/indexed_vectors`` `retrieval_not_worse` (blocking): a rebuilt index finds augmented
  copies of the tenant's own images at top-1 at least as often as the serving index does; only
  then does ``serving_index`` swap it in (or make the model the serving one).
- ``{model}/serving_index`` `index_reconciled`: the alias exists, holds one point per searchable
  image, and its points carry the current model version.
"""

import random
import time
import uuid
from datetime import UTC, datetime

import dagster as dg
import numpy as np

from deeplens import quality
from deeplens.catalog import embeddings as stored
from deeplens.catalog import images as catalog
from deeplens.catalog import models as tenant_models
from deeplens.catalog import runs as run_records
from deeplens.catalog import tenants
from deeplens.model.registry import ModelConfigError, ModelSpec, get_model
from deeplens.quality import RetrievalReport, check_vectors, recall_at_1
from deeplens_dagster.assets.ingest import ModelAssets
from deeplens_dagster.resources import (
    BlobStoreResource,
    CatalogResource,
    EmbedderResource,
    QdrantResource,
)
from deeplens_dagster.sensors.failures import batch_of

SAMPLE = 5000
# Queries of the retrieval check: augmented copies of this many of the tenant's images.
RETRIEVAL_QUERIES = 64
# A new model passes if its recall@1 is at most this much below the serving index's.
RETRIEVAL_TOLERANCE = 0.05
# Where the serving side can't be measured (its version's file is gone), the floor to meet.
RETRIEVAL_FLOOR = 0.9


def model_checks(assets: ModelAssets) -> list[dg.AssetChecksDefinition]:
    spec = assets.spec
    return [
        _vectors_check(spec, assets.embeddings),
        _retrieval_check(spec, assets.indexed_vectors),
        _reconciled_check(spec, assets.serving_index),
    ]


def _vectors_check(spec: ModelSpec, asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name="vectors_are_valid", blocking=True)
    def vectors_are_valid(
        context: dg.AssetCheckExecutionContext, catalog_db: CatalogResource
    ) -> dg.AssetCheckResult:
        """The run's embeddings have the model's dimension, are finite and unit-length.

        It checks what this run wrote and is about to index: its batch, or, for a rebuild, the
        vectors it stored (at most 5,000; a rebuild from stored vectors wrote none). Blocking:
        if it fails, `indexed_vectors` does not run, and the run's images are retried rather
        than indexed."""
        tenant_id = context.op_execution_context.partition_key
        run = context.op_execution_context.run
        with catalog_db.connection() as conn:
            if batch := [uuid.UUID(i) for i in batch_of(run)]:
                found = stored.load(conn, spec.name, spec.version, batch[:SAMPLE])
            else:
                started = context.instance.get_run_stats(run.run_id).start_time or time.time()
                since = datetime.fromtimestamp(started, UTC)
                found = stored.written_since(
                    conn, tenant_id, spec.name, spec.version, since, SAMPLE
                )
        report = check_vectors(list(found.values()), spec.dimension)
        return dg.AssetCheckResult(
            passed=report.passed,
            description=report.describe(),
            metadata={
                "tenant": tenant_id,
                "checked": report.count,
                "dimension": spec.dimension,
                "wrong_dimension": report.wrong_dimension,
                "non_finite": report.non_finite,
                "off_unit_norm": report.off_unit_norm,
                "min_norm": dg.MetadataValue.float(report.min_norm),
                "max_norm": dg.MetadataValue.float(report.max_norm),
                "duplicate_vectors": report.duplicate_rows,
            },
        )

    return vectors_are_valid


def _retrieval_check(spec: ModelSpec, asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name="retrieval_not_worse", blocking=True)
    def retrieval_not_worse(
        context: dg.AssetCheckExecutionContext,
        catalog_db: CatalogResource,
        blobs: BlobStoreResource,
        embedder: EmbedderResource,
        qdrant: QdrantResource,
    ) -> dg.AssetCheckResult:
        """A rebuilt index finds near-duplicates of the tenant's own images (scaled, cropped,
        brightened, recompressed copies of up to 64 of them) at top-1 at least as often as the
        serving index, within 0.05. For a rebuild of the serving model's own version the stored
        vectors are the queries. Blocking: `serving_index` swaps only a collection that passed;
        one that failed is dropped after the grace period and the serving model stays."""
        tenant_id = context.op_execution_context.partition_key
        run_id = context.op_execution_context.run_id
        if batch_of(context.op_execution_context.run):
            return dg.AssetCheckResult(passed=True, description="a sensor batch builds no index")
        with catalog_db.connection() as conn:
            tenant = tenants.get(conn, tenant_id)
            held = tenant_models.get(conn, tenant_id, spec.name)
            serving = tenant_models.get(conn, tenant_id, tenant.model) if tenant else None
            if tenant is None or held is None or serving is None or held.candidate is None:
                return dg.AssetCheckResult(
                    passed=False, description=f"no new {spec.name} index of {tenant_id!r} to check"
                )
            done = [r.image_id for r in catalog.for_tenant(conn, tenant_id, ("completed",))]
            have = stored.load(conn, spec.name, spec.version, done)
            sample = sorted(
                random.Random(tenant_id).sample(sorted(have), min(len(have), RETRIEVAL_QUERIES))
            )
            rows = {r.image_id: r for r in catalog.get_many(conn, tenant_id, sample)}
        client = qdrant.client
        same = held.serving and held.model_version in (None, spec.version)
        if same:
            found = [_top1(client, held.candidate, have[i]) for i in sample]
            report = RetrievalReport(
                len(sample),
                recall_at_1(sample, found),
                None,
                RETRIEVAL_TOLERANCE,
                RETRIEVAL_FLOOR,
                "stored",
                "the serving model's own version: its stored vectors find themselves",
            )
        else:
            originals = {i: blobs.store.get(rows[i].blob_key) for i in sample if i in rows}
            queries = {i: quality.augmented(data) for i, data in originals.items()}
            ids = list(queries)
            found = _search_all(embedder, spec.name, client, held.candidate, ids, queries)
            serving_recall, note = None, ""
            try:
                serving_spec = get_model(serving.model)
            except ModelConfigError as exc:
                serving_spec, note = None, f"the serving model is not registered: {exc}"
            if serving_spec is not None and serving.model_version not in (
                None,
                serving_spec.version,
            ):
                serving_spec = None
                note = "the serving index's model version is no longer registered"
            if serving_spec is not None:
                on_serving = _search_all(
                    embedder, serving_spec.name, client, serving.alias, ids, queries
                )
                serving_recall = recall_at_1(ids, on_serving)
            report = RetrievalReport(
                len(ids),
                recall_at_1(ids, found),
                serving_recall,
                RETRIEVAL_TOLERANCE,
                RETRIEVAL_FLOOR,
                "augmented",
                note,
            )
        result = {
            **report.as_dict(),
            "runId": run_id,
            "model": spec.name,
            "modelVersion": spec.version,
            "against": serving.model,
        }
        with catalog_db.connection() as conn, conn.transaction():
            if report.passed:
                tenant_models.record_check(conn, tenant_id, spec.name, result)
            else:
                tenant_models.reject(conn, tenant_id, spec.name, result)
                # Kept a while for a look, then dropped by the reconciler.
                run_records.retire(
                    conn, tenant_id, held.alias, held.candidate, run_records.REJECTED
                )
        context.log.info(f"{spec.name} for {tenant_id}: {report.describe()}")
        return dg.AssetCheckResult(
            passed=report.passed,
            description=report.describe(),
            metadata={
                "tenant": tenant_id,
                "candidate": held.candidate,
                "serving_model": serving.model,
                "queries": report.sampled,
                "recall_at_1": dg.MetadataValue.float(round(report.recall, 4)),
                "serving_recall_at_1": dg.MetadataValue.float(
                    round(report.serving_recall, 4) if report.serving_recall is not None else -1.0
                ),
                "mode": report.mode,
            },
        )

    return retrieval_not_worse


def _top1(client: object, collection: str, vector: np.ndarray) -> uuid.UUID | None:
    from deeplens import vectors  # qdrant-client is slow to import: not when the location loads

    hits = vectors.search(client, collection, vector, 1)  # type: ignore[arg-type]
    return hits[0].image_id if hits else None


def _search_all(
    embedder: EmbedderResource,
    model: str,
    client: object,
    collection: str,
    ids: list[uuid.UUID],
    queries: dict[uuid.UUID, bytes],
) -> list[uuid.UUID | None]:
    """Each query embedded by `model` and its first hit in `collection` (None if it could not
    be decoded)."""
    found: list[uuid.UUID | None] = [None] * len(ids)
    for vecs, errors in embedder.embed_stream(model, [[queries[i] for i in ids]]):
        ok = [n for n in range(len(ids)) if n not in errors]
        for n, vec in zip(ok, vecs, strict=True):
            found[n] = _top1(client, collection, vec)
    return found


def _reconciled_check(spec: ModelSpec, asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name="index_reconciled")
    def index_reconciled(
        context: dg.AssetCheckExecutionContext,
        catalog_db: CatalogResource,
        qdrant: QdrantResource,
    ) -> dg.AssetCheckResult:
        """The model's alias exists, holds one point per searchable image, and a sample of its
        points carries the current model version."""
        from deeplens import vectors

        tenant_id = context.op_execution_context.partition_key
        with catalog_db.connection() as conn:
            held = tenant_models.get(conn, tenant_id, spec.name)
            completed = catalog.count_by_status(conn, tenant_id).get("completed", 0)
        if held is None:
            return dg.AssetCheckResult(
                passed=False, description=f"{tenant_id!r} has no {spec.name}"
            )
        client = qdrant.client
        target = vectors.alias_target(client, held.alias)
        points = vectors.count(client, held.alias) if target else 0
        sample = client.scroll(held.alias, limit=20, with_payload=True)[0] if target else []
        stale = [
            str(p.id)
            for p in sample
            if (p.payload or {}).get("lineage", {}).get("modelVersion") != spec.version
        ]
        problems = []
        if target is None:
            problems.append(f"the alias {held.alias} does not exist")
        if points != completed:
            problems.append(f"{points} points for {completed} searchable images")
        if stale:
            problems.append(
                f"{len(stale)} of {len(sample)} sampled points lack version {spec.version[:12]}"
            )
        return dg.AssetCheckResult(
            passed=not problems,
            description="; ".join(problems) or f"{points} points, one per searchable image",
            metadata={
                "tenant": tenant_id,
                "alias": held.alias,
                "collection": target or "none",
                "points": points,
                "searchable_images": completed,
                "stale_points_in_sample": len(stale),
            },
        )

    return index_reconciled
