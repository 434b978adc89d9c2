"""Kafka → runs: reads `deeplens.images.uploaded` from the offsets in the cursor.

No consumer group and no commits: the cursor (per-partition offsets plus the broker's cluster
id) is the only state, and it advances exactly with the runs requested. A malformed event, or
one for a tenant that no longer exists, goes to `deeplens.processing.failed` with the reason.
A run's tags carry the trace context of its batch's first upload (`deeplens_dagster.tracing`).
"""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
from confluent_kafka import TopicPartition

from deeplens import batching, events
from deeplens.catalog import models as tenant_models
from deeplens.catalog import tenants
from deeplens.kafka import headers_of, produce_all
from deeplens_dagster.assets.registry import Selection, batch_selection
from deeplens_dagster.jobs import ingest_job
from deeplens_dagster.partitions import TENANTS, tenant_partitions
from deeplens_dagster.resources import CatalogResource, KafkaResource
from deeplens_dagster.tracing import run_tags

# Once the first message is in, a tick reads on for this long (or until a 0.2 s lull).
READ_SECONDS = 2.0
# Dagster's sensor daemon starts a tick every 5 s at best (whatever minimum_interval_seconds
# says). A tick that finds nothing waits this long for a first upload instead of returning: an
# upload is taken up as it arrives, not at the next tick, 2.5 s later on average.
WAIT_SECONDS = 4.0
# Ingest runs in flight are held to the run coordinator's limit (both are
# DEEPLENS_MAX_CONCURRENT_RUNS) and a run to DEEPLENS_MAX_BATCH images: beyond the limit a new
# run would only wait in the queue; its uploads wait on Kafka instead and join the next tick's
# batch, so a bulk upload becomes a few large runs (one process start each), not many small.
# A run older than this no longer holds new uploads back (a worker that died without its run
# being marked failed must not stop ingestion).
IN_FLIGHT_HORIZON = timedelta(minutes=15)
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def max_runtime(images: int) -> str:
    """A batch run's time limit (the `dagster/max_runtime` tag, enforced by run monitoring):
    generous, so that only a worker stuck while its heartbeat goes on (a deadlock) meets it;
    its images are then retried."""
    return str(int(300 + 0.5 * images))


def read_cursor(cursor: str | None) -> tuple[str | None, dict[int, int]]:
    if not cursor:
        return None, {}
    state = json.loads(cursor)
    return state.get("cluster"), {int(p): int(o) for p, o in state.get("offsets", {}).items()}


def write_cursor(cluster: str | None, offsets: dict[int, int]) -> str:
    return json.dumps(
        {"cluster": cluster, "offsets": {str(p): o for p, o in sorted(offsets.items())}}
    )


def in_flight_runs(instance: dg.DagsterInstance) -> int:
    """Ingest runs queued or running, created within `IN_FLIGHT_HORIZON`."""
    return instance.get_runs_count(
        dg.RunsFilter(
            job_name=ingest_job.name,
            statuses=IN_FLIGHT,
            created_after=datetime.now(UTC) - IN_FLIGHT_HORIZON,
        )
    )


def read_messages(
    kafka: KafkaResource,
    offsets: dict[int, int],
    cluster: str | None,
    limit: int,
    wait: float = 0.0,
) -> tuple[str, dict[int, int], list[batching.Message]]:
    """Up to `limit` messages from each partition's cursor offset on, waiting up to `wait`
    seconds for the first one; resets offsets if the broker is new."""
    consumer = kafka.consumer()
    try:
        metadata = consumer.list_topics(events.TOPIC_UPLOADED, timeout=10)
        current_cluster = str(metadata.cluster_id)
        if cluster is not None and cluster != current_cluster:
            offsets = {}  # a different (or restarted, in-memory) broker: its log starts over
        topic = metadata.topics.get(events.TOPIC_UPLOADED)
        partitions = sorted(topic.partitions) if topic is not None else []
        start = {p: offsets.get(p, 0) for p in partitions}
        if not partitions:
            return current_cluster, start, []
        consumer.assign([TopicPartition(events.TOPIC_UPLOADED, p, o) for p, o in start.items()])
        out: list[batching.Message] = []
        waiting_until = time.monotonic() + wait
        deadline: float | None = None  # READ_SECONDS after the first message
        while len(out) < limit:
            got = consumer.consume(min(1000, limit - len(out)), timeout=0.2)
            out.extend(
                batching.Message(
                    m.partition() or 0, m.offset() or 0, m.value(), headers_of(m.headers())
                )
                for m in got
                if m.error() is None
            )
            now = time.monotonic()
            if not out:
                if now >= waiting_until:
                    break  # nothing within `wait`
                continue
            if deadline is None:
                deadline = now + READ_SECONDS
            if not got or now >= deadline:
                break  # a lull, or read long enough
        return current_cluster, start, out
    finally:
        consumer.close()


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Turns upload events on Kafka into ingest runs, one per tenant batch; while "
        "DEEPLENS_MAX_CONCURRENT_RUNS ingest runs are queued or running, new uploads wait for "
        "the next batch."
    ),
)
def image_upload_sensor(
    context: dg.SensorEvaluationContext, kafka: KafkaResource, catalog_db: CatalogResource
) -> dg.SensorResult | dg.SkipReason:
    settings = catalog_db.settings
    busy = in_flight_runs(context.instance)
    if busy >= settings.max_concurrent_runs:
        return dg.SkipReason(
            f"{busy} ingest runs queued or running; new uploads join the next batch"
        )
    cluster, offsets = read_cursor(context.cursor)
    cluster, start, messages = read_messages(
        kafka,
        offsets,
        cluster,
        limit=(settings.max_concurrent_runs - busy) * settings.max_batch,
        wait=WAIT_SECONDS,
    )
    known: dict[str, bool] = {}

    def tenant_exists(tenant_id: str) -> bool:
        if tenant_id not in known:
            with catalog_db.connection() as conn:
                known[tenant_id] = tenants.get(conn, tenant_id) is not None
        return known[tenant_id]

    plan = batching.plan(messages, tenant_exists, settings.max_batch, start, cluster)
    if plan.rejected:
        produce_all(kafka.producer, [_rejection(r) for r in plan.rejected])
        context.log.warning(
            "sent %d bad upload event(s) to %s", len(plan.rejected), events.TOPIC_FAILED
        )
    selections = kept_up(catalog_db, {b.tenant_id for b in plan.batches})
    requests = [
        dg.RunRequest(
            run_key=batch.run_key,
            partition_key=batch.tenant_id,
            asset_selection=selections[batch.tenant_id].assets,
            asset_check_keys=selections[batch.tenant_id].checks,
            run_config=selections[batch.tenant_id].run_config(batch.image_ids),
            tags={
                "deeplens/tenant": batch.tenant_id,
                "deeplens/offsets": batch.offsets,
                "deeplens/images": str(len(batch.image_ids)),
                "dagster/max_runtime": max_runtime(len(batch.image_ids)),
                **run_tags(batch.trace),
            },
        )
        for batch in plan.batches
    ]
    # A tenant in the catalog whose partition is missing (e.g. Dagster's storage was reset)
    # gets it back, so that its runs can be requested.
    missing = sorted(
        {b.tenant_id for b in plan.batches} - set(context.instance.get_dynamic_partitions(TENANTS))
    )
    return dg.SensorResult(
        run_requests=requests,
        cursor=write_cursor(cluster, plan.next_offsets),
        dynamic_partitions_requests=[tenant_partitions.build_add_request(missing)]
        if missing
        else None,
    )


def kept_up(catalog_db: CatalogResource, tenant_ids: set[str]) -> dict[str, Selection]:
    """What a batch of each tenant runs: the tenant's models that batches keep up."""
    if not tenant_ids:
        return {}
    with catalog_db.connection() as conn:
        return {t: batch_selection(tenant_models.kept_up(conn, t)) for t in tenant_ids}


def _rejection(rejected: batching.Rejected) -> tuple[str, str, bytes]:
    raw = (rejected.message.value or b"")[:2000].decode("utf-8", errors="replace")
    event = events.ProcessingFailed(
        tenant_id=rejected.tenant_id or "unknown",
        correlation_id=rejected.image_id or _uuid_from(rejected.message),
        data=events.ProcessingFailedData(
            image_id=rejected.image_id,
            reason=rejected.reason,
            stage="sensor",
            source_topic=events.TOPIC_UPLOADED,
            source_partition=rejected.message.partition,
            source_offset=rejected.message.offset,
            raw_event=raw,
        ),
    )
    return events.TOPIC_FAILED, rejected.tenant_id or "unknown", event.to_json()


def _uuid_from(message: batching.Message) -> uuid.UUID:
    return uuid.uuid5(
        uuid.NAMESPACE_URL, f"{events.TOPIC_UPLOADED}/{message.partition}/{message.offset}"
    )
