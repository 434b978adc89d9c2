"""Tenant reindex: a run of the ingest job for the bulk tenant's partition without a batch, as
`deeplens reindex` launches it: it rebuilds the tenant's serving model into a new collection,
checks it and swaps the alias.

Three rebuilds: from the stored embeddings (the model unchanged: no inference); then with the
tenant's stored embeddings deleted first, as after a model change: decode + model + index of
every image, the throughput the reindex bar compares with the raw limit; then the same again as
an operator launches it from the UI, an asset backfill through the backfill daemon, timed against
the second. Runs last: a rebuild keeps only the catalog's images, so the scale phase's synthetic
vectors go.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench.context import Context, say
from deeplens_cli.admin import BACKFILL, LAUNCH_BACKFILL, backfill_params, rebuild_params

LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

RUN = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      status creationTime startTime endTime stepStats { stepKey startTime endTime }
      assetMaterializations {
        stepKey
        metadataEntries { label ... on JsonMetadataEntry { jsonString } }
      }
    }
  }
}
"""

LOGS = """
query ($runId: ID!) {
  logsForRun(runId: $runId, limit: 500) {
    ... on EventConnection { events { ... on MessageEvent { timestamp eventType stepKey } } }
  }
}
"""

DONE = {"SUCCESS", "FAILURE", "CANCELED"}

# Where a run's time goes before and around its steps: the first event of each of these kinds.
MILESTONES = (
    "RUN_ENQUEUED",
    "RUN_DEQUEUED",
    "RUN_STARTING",
    "RUN_START",
    "RESOURCE_INIT_SUCCESS",
    "STEP_START",
    "RUN_SUCCESS",
)


def run(ctx: Context) -> dict[str, Any]:
    tenant = ctx.bulk_tenant
    assert tenant is not None, "the bulk ingest phase runs first"
    with ctx.system.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM deeplens.images WHERE tenant_id = %s AND status = 'completed'",
            (tenant.tenant_id,),
        ).fetchone()
    images = int(row[0]) if row else 0
    from_stored = _rebuild(ctx, tenant.tenant_id, images)
    say(f"reindex from stored embeddings: {from_stored['images_per_second']} images/s")
    deleted = _forget_embeddings(ctx, tenant.tenant_id)
    full = _rebuild(ctx, tenant.tenant_id, images)
    raw = ctx.raw_images_per_second or float("nan")
    full["ratio_to_raw_limit"] = round(full["images_per_second"] / raw, 3)
    full["embeddings_deleted_first"] = deleted
    ips, ratio = full["images_per_second"], full["ratio_to_raw_limit"]
    say(f"reindex with inference: {ips} images/s = {ratio} of the raw limit")
    _forget_embeddings(ctx, tenant.tenant_id)
    by_backfill = _rebuild_by_backfill(ctx, tenant.tenant_id, images)
    by_backfill["time_to_ingest_job"] = round(
        by_backfill["seconds_launch_to_end"] / full["seconds_launch_to_end"], 3
    )
    say(
        f"reindex by a UI backfill: {by_backfill['seconds_launch_to_end']} s = "
        f"{by_backfill['time_to_ingest_job']} x the ingest job's"
    )
    return {
        "images": images,
        "from_stored_embeddings": from_stored,
        "with_inference": full,
        "by_backfill": by_backfill,
    }


def _forget_embeddings(ctx: Context, tenant_id: str) -> int:
    with ctx.system.connect() as conn:
        return int(
            conn.execute(
                "DELETE FROM deeplens.embeddings e USING deeplens.images i"
                " WHERE e.image_id = i.image_id AND i.tenant_id = %s",
                (tenant_id,),
            ).rowcount
        )


def _rebuild_by_backfill(ctx: Context, tenant_id: str, images: int) -> dict[str, Any]:
    """The rebuild as the UI launches it: an asset backfill of the serving model's assets for
    the tenant's partition, timed from the launch to its run's end (the swap)."""
    assert ctx.bulk_tenant is not None
    params = backfill_params(tenant_id, ctx.bulk_tenant.model)
    launched_at = time.time()
    answer = ctx.system.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"could not launch the reindex backfill: {answer}")
    deadline = time.monotonic() + ctx.config.ingest_timeout
    while True:
        state = ctx.system.graphql(BACKFILL, {"id": answer["backfillId"]})
        backfill = state["partitionBackfillOrError"]
        if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(1.0)
    [run_ref] = backfill["runs"] or [{"runId": None}]
    run = (
        ctx.system.graphql(RUN, {"runId": run_ref["runId"]})["runOrError"]
        if run_ref["runId"]
        else {}
    )
    end = run.get("endTime") or time.time()
    seconds = end - launched_at
    return {
        "backfill_id": answer["backfillId"],
        "status": backfill["status"],
        "run_id": run_ref["runId"],
        "seconds_launch_to_end": round(seconds, 2),
        "seconds_launch_to_backfill_done": round(
            (backfill.get("endTimestamp") or time.time()) - launched_at, 2
        ),
        "images_per_second": round(images / seconds, 2) if run.get("status") == "SUCCESS" else 0.0,
    }


def _rebuild(ctx: Context, tenant_id: str, images: int) -> dict[str, Any]:
    assert ctx.bulk_tenant is not None
    params = rebuild_params(tenant_id, ctx.bulk_tenant.model)
    launched_at = time.time()
    answer = ctx.system.graphql(LAUNCH, {"params": params})["launchRun"]
    if answer["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"could not launch the reindex run: {answer}")
    run_id = answer["run"]["runId"]
    deadline = time.monotonic() + ctx.config.ingest_timeout
    while True:
        state = ctx.system.graphql(RUN, {"runId": run_id})["runOrError"]
        if state["status"] in DONE or time.monotonic() > deadline:
            break
        time.sleep(2.0)  # the run's own endTime is what is measured; polling only costs CPU
    end = state.get("endTime") or time.time()
    seconds = end - launched_at
    steps = {
        s["stepKey"]: round(s["endTime"] - s["startTime"], 2)
        for s in state.get("stepStats") or []
        if s.get("startTime") and s.get("endTime")
    }
    return {
        "run_id": run_id,
        "status": state["status"],
        "seconds_launch_to_end": round(seconds, 2),
        "run_seconds": round(end - state["startTime"], 2) if state.get("startTime") else None,
        "steps_s": steps,
        "images_per_second": round(images / seconds, 2) if state["status"] == "SUCCESS" else 0.0,
        "timeline_s": _timeline(ctx, run_id, launched_at),
        "indexed_vectors_s": _index_parts(state),
    }


def _index_parts(state: dict[str, Any]) -> dict[str, float]:
    """The index steps' seconds by part (load, upsert, build_index; swap, complete)."""
    for materialization in state.get("assetMaterializations") or []:
        for entry in materialization.get("metadataEntries") or []:
            if entry.get("label") == "seconds_by_part" and entry.get("jsonString"):
                parts: dict[str, float] = json.loads(entry["jsonString"])
                return parts
    return {}


def _timeline(ctx: Context, run_id: str, launched_at: float) -> dict[str, float]:
    """Seconds from the launch request to the first event of each milestone kind."""
    logs = ctx.system.graphql(LOGS, {"runId": run_id})["logsForRun"]
    first: dict[str, float] = {}
    for event in logs.get("events") or []:
        kind = event.get("eventType")
        if kind in MILESTONES and kind not in first:
            first[kind] = round(int(event["timestamp"]) / 1000 - launched_at, 2)
    return {k: first[k] for k in MILESTONES if k in first}
