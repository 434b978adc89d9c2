"""`image_upload_sensor` over a fake Kafka: upload events become one run request per tenant
batch, the cursor follows the offsets, and bad events go to `deeplens.processing.failed`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import psycopg
import pytest
from qdrant_client import QdrantClient

from deeplens import events
from deeplens.settings import Settings
from deeplens_dagster.jobs import ingest_job
from deeplens_dagster.partitions import TENANTS
from deeplens_dagster.resources import CatalogResource
from deeplens_dagster.sensors import uploads
from deeplens_dagster.sensors.uploads import image_upload_sensor, read_cursor
from tests.middle import seed
from tests.middle.fakes import FakeKafkaResource, KafkaLog, register, unregister
from tests.middle.seed import TenantUnderTest

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

CLUSTER = "fake-cluster"


def uploaded(tenant_id: str, image_id: uuid.UUID) -> bytes:
    """An `image.uploaded` event as the outbox relay publishes it."""
    return events.ImageUploaded(
        tenant_id=tenant_id,
        correlation_id=image_id,
        data=events.ImageUploadedData(
            image_id=image_id,
            file_path=f"{tenant_id}/ab/abc",
            file_name="a.jpg",
            file_size=10,
            content_type="image/jpeg",
        ),
    ).to_json()


@dataclass
class Broker:
    log: KafkaLog
    resources: dict[str, object]
    instance: dg.DagsterInstance

    def publish(self, partition: int, value: bytes) -> int:
        return self.log.append(events.TOPIC_UPLOADED, partition, value)

    def tick(self, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
        with dg.build_sensor_context(
            cursor=cursor, instance=self.instance, resources=self.resources
        ) as context:
            result = image_upload_sensor(context)
        assert isinstance(result, dg.SensorResult | dg.SkipReason)
        return result

    def failed_events(self) -> list[events.ProcessingFailed]:
        return [
            events.ProcessingFailed.model_validate_json(value)
            for topic, _, value in self.log.produced
            if topic == events.TOPIC_FAILED
        ]


@pytest.fixture
def broker(deeplens_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    """The upload topic with two partitions, the fake resource over it, a fresh instance.

    An idle tick would wait `WAIT_SECONDS` for a first upload; here it returns at once."""
    monkeypatch.setattr(uploads, "WAIT_SECONDS", 0.0)
    log = KafkaLog(CLUSTER, {events.TOPIC_UPLOADED: {0: [], 1: []}})
    key = register(log)
    resources: dict[str, object] = {
        "kafka": FakeKafkaResource(log_key=key),
        "catalog_db": CatalogResource(),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        yield Broker(log, resources, instance)
    unregister(key)
    assert log.consumers_closed == log.consumers_opened, "every consumer must be closed"


def image_ids(request: dg.RunRequest) -> list[str]:
    ids = [request.run_config["ops"][op]["config"]["image_ids"] for op in seed.INGEST_OPS]
    assert ids[0] == ids[1] == ids[2], "the three assets must get the same batch"
    return list(ids[0])


def test_events_become_one_run_per_tenant_batch_and_advance_the_cursor(
    broker: Broker,
    conn: psycopg.Connection,
    qdrant_client: QdrantClient,
    tenant: TenantUnderTest,
) -> None:
    """Two tenants' uploads over two partitions: one run request per tenant, keyed by the
    cluster, tenant and offset ranges, carrying the batch in its config for all three assets;
    the missing partitions are added; the malformed event and the one for an unknown tenant go
    to the failed topic with their reasons; the cursor moves past everything read."""
    a, b = tenant.tenant_id, seed.new_tenant_id("other")
    seed.create_tenant(conn, qdrant_client, b)
    ids = [uuid.uuid4() for _ in range(4)]
    ghost = seed.new_tenant_id("ghost")
    broker.publish(0, uploaded(a, ids[0]))
    broker.publish(0, uploaded(a, ids[1]))
    broker.publish(0, b'{"eventType": "image.uploaded", "oops": 1}')
    broker.publish(1, uploaded(b, ids[2]))
    broker.publish(1, uploaded(a, ids[3]))
    broker.publish(1, uploaded(ghost, uuid.uuid4()))

    result = broker.tick(None)

    assert isinstance(result, dg.SensorResult)
    by_tenant = {r.partition_key: r for r in result.run_requests or []}
    assert set(by_tenant) == {a, b}
    assert len(result.run_requests or []) == 2
    assert by_tenant[a].run_key == f"{events.TOPIC_UPLOADED}/{CLUSTER}/{a}/0:0-1,1:1-1"
    assert by_tenant[b].run_key == f"{events.TOPIC_UPLOADED}/{CLUSTER}/{b}/1:0-0"
    assert image_ids(by_tenant[a]) == [str(ids[0]), str(ids[1]), str(ids[3])]
    assert image_ids(by_tenant[b]) == [str(ids[2])]
    assert by_tenant[a].tags["deeplens/offsets"] == "0:0-1,1:1-1"
    assert by_tenant[a].tags["deeplens/images"] == "3"
    assert by_tenant[b].tags["deeplens/tenant"] == b
    assert read_cursor(result.cursor) == (CLUSTER, {0: 3, 1: 3})
    [added] = result.dynamic_partitions_requests or []
    assert isinstance(added, dg.AddDynamicPartitionsRequest)
    assert (added.partitions_def_name, list(added.partition_keys)) == (TENANTS, sorted([a, b]))

    rejected = {(e.data.source_partition, e.data.source_offset): e for e in broker.failed_events()}
    assert set(rejected) == {(0, 2), (1, 2)}
    malformed, unknown = rejected[(0, 2)], rejected[(1, 2)]
    assert malformed.data.reason.startswith("malformed image.uploaded event")
    assert "oops" in (malformed.data.raw_event or "")
    assert (malformed.data.stage, malformed.tenant_id) == ("sensor", "unknown")
    assert unknown.tenant_id == ghost
    assert "does not exist" in unknown.data.reason


def test_ticks_are_deterministic_and_a_cursor_is_never_read_twice(
    broker: Broker, tenant: TenantUnderTest
) -> None:
    """The same cursor gives the same run keys (so Dagster drops duplicate runs); the returned
    cursor gives nothing new until a new event arrives, and then only that event."""
    first_ids = [uuid.uuid4(), uuid.uuid4()]
    for image_id in first_ids:
        broker.publish(0, uploaded(tenant.tenant_id, image_id))
    first = broker.tick(None)
    assert isinstance(first, dg.SensorResult)
    [request] = first.run_requests or []

    replay = broker.tick(None)
    assert isinstance(replay, dg.SensorResult)
    assert [r.run_key for r in replay.run_requests or []] == [request.run_key]
    assert replay.cursor == first.cursor

    idle = broker.tick(first.cursor)
    assert isinstance(idle, dg.SensorResult)
    assert idle.run_requests in (None, [])
    assert idle.cursor == first.cursor
    assert broker.failed_events() == []

    late = uuid.uuid4()
    offset = broker.publish(1, uploaded(tenant.tenant_id, late))
    after = broker.tick(first.cursor)
    assert isinstance(after, dg.SensorResult)
    [next_request] = after.run_requests or []
    assert image_ids(next_request) == [str(late)]
    assert next_request.run_key == (
        f"{events.TOPIC_UPLOADED}/{CLUSTER}/{tenant.tenant_id}/1:{offset}-{offset}"
    )
    assert read_cursor(after.cursor) == (CLUSTER, {0: 2, 1: offset + 1})


def test_a_new_cluster_id_starts_the_offsets_over(broker: Broker, tenant: TenantUnderTest) -> None:
    """A cursor from another broker (an in-memory one that restarted) is not trusted: its
    offsets are dropped and the new log is read from the start."""
    image_id = uuid.uuid4()
    broker.publish(0, uploaded(tenant.tenant_id, image_id))
    stale = json.dumps({"cluster": "an-older-broker", "offsets": {"0": 500, "1": 7}})

    result = broker.tick(stale)

    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests or []
    assert image_ids(request) == [str(image_id)]
    assert read_cursor(result.cursor) == (CLUSTER, {0: 1, 1: 0})


def test_uploads_wait_on_kafka_while_the_run_slots_are_taken(
    broker: Broker, tenant: TenantUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `DEEPLENS_MAX_CONCURRENT_RUNS` ingest runs going (3 here, not the default), a tick
    skips without reading Kafka (the cursor stays); once a slot frees up, the waiting upload
    becomes a run."""
    monkeypatch.setenv("DEEPLENS_MAX_CONCURRENT_RUNS", "3")
    image_id = uuid.uuid4()
    broker.publish(0, uploaded(tenant.tenant_id, image_id))
    busy = [
        broker.instance.add_run(
            dg.DagsterRun(job_name=ingest_job.name, status=dg.DagsterRunStatus.STARTED)
        )
        for _ in range(3)
    ]

    held = broker.tick(None)

    assert isinstance(held, dg.SkipReason)
    assert "next batch" in (held.skip_message or "")
    assert broker.log.consumers_opened == 0

    broker.instance.report_run_failed(busy[0])
    freed = broker.tick(None)

    assert isinstance(freed, dg.SensorResult)
    [request] = freed.run_requests or []
    assert image_ids(request) == [str(image_id)]
