"""The reconciler: nothing accepted is stranded, whatever failed and wherever the system runs.

Every tick it
1. fails runs whose worker stopped beating (killed, hung, lost with its node, or left `STARTED`
   by a restart), killing a hung worker on this host, so that no such run holds a run slot;
   the failure sensor then retries their images;
2. retries images left behind: `processing` in a run that ended without finishing them, or
   accepted but never taken up by a run (an event lost with a broker's log, say);
3. requests runs for images whose next retry is due (one run per tenant; a tenant's runs queue
   behind each other);
4. drops the collections a reindex replaced, once their grace period is over.

It keeps in its cursor since when it has watched without a gap: a run is judged silent only
after the reconciler itself has been watching for longer than the silence, so that an outage of
the catalog (which stops heartbeats and the reconciler alike) kills nothing on recovery.
"""

import hashlib
import json
import os
import signal
import socket
import time
import uuid
from pathlib import Path

import dagster as dg
import psycopg

from deeplens import pipeline
from deeplens.catalog import retries
from deeplens.catalog import runs as run_records
from deeplens_dagster.jobs import ingest_job
from deeplens_dagster.partitions import TENANTS, tenant_partitions
from deeplens_dagster.resources import CatalogResource, QdrantResource
from deeplens_dagster.sensors.uploads import IN_FLIGHT, kept_up, max_runtime

TICK_SECONDS = 10
# A tick more than this after the one before means the reconciler was not watching meanwhile.
GAP_SECONDS = 3 * TICK_SECONDS
# An image `processing` in a run that ended at least this long ago counts as left behind (the
# run's own failure handling goes first).
ORPHAN_AFTER_SECONDS = 30.0
ENDED = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}


def read_cursor(cursor: str | None, now: float) -> float:
    """Since when the reconciler has watched without a gap."""
    state = json.loads(cursor) if cursor else {}
    last, since = state.get("last"), state.get("watching_since")
    if last is None or since is None or now - float(last) > GAP_SECONDS:
        return now
    return float(since)


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=TICK_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Fails runs whose worker died or hung, retries images left behind, requests the runs of "
        "retries that are due, and drops reindexed-away collections after their grace period."
    ),
)
def reconciler(
    context: dg.SensorEvaluationContext, catalog_db: CatalogResource, qdrant: QdrantResource
) -> dg.SensorResult:
    now = time.time()
    watching_since = read_cursor(context.cursor, now)
    settings = catalog_db.settings
    policy = retries.RetryPolicy.of(settings)
    instance = context.instance
    with catalog_db.connection() as conn:
        beats = run_records.heartbeats(conn)
        _forget_ended(context, conn, beats)
        if now - watching_since > settings.run_dead_after_seconds:
            _fail_silent_runs(context, beats, settings.run_dead_after_seconds)
        _retry_left_behind(context, conn, policy, settings.stuck_after_seconds)
        for retired in run_records.expired(conn, settings.collection_grace_seconds):
            if _drop_retired(context, qdrant, retired.collection):
                run_records.forget(conn, retired.collection)
        due = retries.claim_due(conn)
    selections = kept_up(catalog_db, set(due))
    requests = [
        dg.RunRequest(
            run_key=_retry_key(tenant_id, part, now),
            partition_key=tenant_id,
            asset_selection=selections[tenant_id].assets,
            asset_check_keys=selections[tenant_id].checks,
            run_config=selections[tenant_id].run_config([str(i) for i in part]),
            tags={
                "deeplens/tenant": tenant_id,
                "deeplens/retry": "true",
                "deeplens/images": str(len(part)),
                "dagster/max_runtime": max_runtime(len(part)),
            },
        )
        for tenant_id, ids in sorted(due.items())
        for part in _chunks(ids, settings.max_batch)
    ]
    if requests:
        context.log.info("requesting %d retry run(s) for %s", len(requests), sorted(due))
    missing = sorted(set(due) - set(instance.get_dynamic_partitions(TENANTS)))
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({"last": now, "watching_since": watching_since}),
        dynamic_partitions_requests=[tenant_partitions.build_add_request(missing)]
        if missing
        else None,
    )


def _fail_silent_runs(
    context: dg.SensorEvaluationContext,
    beats: dict[str, run_records.Heartbeat],
    dead_after: float,
) -> None:
    instance = context.instance
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        if "dagster/partition" not in run.tags:
            continue
        beat = beats.get(run.run_id)
        if beat is not None:
            silent = beat.silent_seconds
        else:
            record = instance.get_run_record_by_id(run.run_id)
            started = record.start_time if record is not None else None
            silent = time.time() - started if started else 0.0
        if silent <= dead_after:
            continue
        killed = beat is not None and _kill_worker(beat)
        message = (
            f"the run worker stopped answering ({silent:.0f}s without a heartbeat"
            f"{'; killed' if killed else ''}); its images will be retried"
        )
        context.log.warning("run %s: %s", run.run_id[:8], message)
        instance.report_run_failed(run, message=message)


def _forget_ended(
    context: dg.SensorEvaluationContext,
    conn: psycopg.Connection,
    beats: dict[str, run_records.Heartbeat],
) -> None:
    """Heartbeats of runs that have ended (a run beats one last time as it ends), with how
    they ended."""
    for run_id in list(beats):
        run = context.instance.get_run_by_id(run_id)
        if run is None or run.status in ENDED:
            run_records.end(conn, run_id, run.status.value.lower() if run else "lost")
            del beats[run_id]


def _kill_worker(beat: run_records.Heartbeat) -> bool:
    """Kill a hung run worker on this host (a stopped process does not answer SIGTERM)."""
    if beat.host != socket.gethostname() or not is_run_worker(beat.pid):
        return False  # elsewhere (its pod is Kubernetes'), gone, or the pid was reused
    try:
        os.kill(beat.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def is_run_worker(pid: int) -> bool:
    """Whether `pid` is a Dagster run worker: `dagster api execute_run`, or a multiprocessing
    child of a code server (`dagster api grpc`), which is how the default launcher runs one."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        parent_command = Path(f"/proc/{parent}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    if b"execute_run" in command:
        return True
    return b"spawn_main" in command and b"api\x00grpc" in parent_command


def _retry_left_behind(
    context: dg.SensorEvaluationContext,
    conn: psycopg.Connection,
    policy: retries.RetryPolicy,
    stuck_after: float,
) -> None:
    instance = context.instance
    orphans: dict[tuple[str, str, str | None], list[uuid.UUID]] = {}
    ended: dict[str | None, str | None] = {}  # run id -> why its images are left behind

    def left_behind(run_id: str | None) -> str | None:
        """Why a `processing` image of this run is left behind, or None while it is not."""
        if run_id not in ended:
            record = instance.get_run_record_by_id(run_id) if run_id else None
            if record is None:
                ended[run_id] = "no run is processing it"
            elif record.dagster_run.status not in ENDED:
                ended[run_id] = None
            elif record.end_time and time.time() - record.end_time < ORPHAN_AFTER_SECONDS:
                ended[run_id] = None  # the run's own failure handling goes first
            else:
                status = record.dagster_run.status.value.lower()
                ended[run_id] = f"run {str(run_id)[:8]} ended ({status}) without finishing it"
        return ended[run_id]

    for image in retries.waiting_since(conn, ("processing",), ORPHAN_AFTER_SECONDS):
        if (reason := left_behind(image.run_id)) is not None:
            key = (image.tenant_id, reason, image.run_id)
            orphans.setdefault(key, []).append(image.image_id)
    # A tenant with a run queued or under way may have images waiting for it: not stuck.
    busy = {
        run.tags.get("dagster/partition")
        for run in instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT))
    }
    for image in retries.waiting_since(conn, ("uploaded", "queued"), stuck_after):
        if image.tenant_id in busy:
            continue
        reason = f"not taken up by a run within {stuck_after:.0f}s (its upload event was lost?)"
        orphans.setdefault((image.tenant_id, reason, None), []).append(image.image_id)
    for (tenant_id, reason, run_id), ids in orphans.items():
        outcome = pipeline.retry_later(
            conn, tenant_id, ids, reason, policy, stage="reconciler", run_id=run_id
        )
        context.log.warning(
            "tenant %s: %d image(s) left behind (%s): %d to retry, %d out of budget",
            tenant_id,
            len(ids),
            reason,
            len(outcome.retrying),
            len(outcome.gave_up),
        )


def _drop_retired(context: dg.SensorEvaluationContext, qdrant: QdrantResource, name: str) -> bool:
    try:
        qdrant.client.delete_collection(name)
    except Exception as exc:  # Qdrant down: dropped at a later tick
        context.log.warning("could not drop the retired collection %s: %s", name, exc)
        return False
    context.log.info("dropped %s, replaced by a reindex past its grace period", name)
    return True


def _retry_key(tenant_id: str, ids: list[uuid.UUID], now: float) -> str:
    digest = hashlib.sha1("".join(sorted(str(i) for i in ids)).encode()).hexdigest()[:12]
    return f"retry/{tenant_id}/{digest}/{int(now)}"


def _chunks(ids: list[uuid.UUID], size: int) -> list[list[uuid.UUID]]:
    return [ids[o : o + size] for o in range(0, len(ids), size)]
