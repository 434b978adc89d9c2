"""The upload sensor against the stack's real Kafka, through `build_sensor_context`."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import dagster as dg
import psycopg
import pytest

from deeplens import clients, events, vectors
from deeplens.catalog import tenants
from deeplens.clients import kafka_producer
from deeplens.kafka import produce_all
from deeplens.settings import Settings
from deeplens_dagster.jobs import ingest_job
from deeplens_dagster.resources import CatalogResource, KafkaResource
from deeplens_dagster.sensors.uploads import (
    WAIT_SECONDS,
    image_upload_sensor,
    read_cursor,
)
from deeplens_local.stack.stack import Stack
from tests.e2e.test_ingest import events_on
from tests.unit.test_batching import uploaded


@pytest.fixture
def tenant_id(stack: Stack) -> str:
    tenant = f"sensor-{uuid.uuid4().hex[:8]}"
    model = "efficientnet_lite0"
    client = clients.qdrant(stack.child_settings())
    alias = vectors.ensure_tenant_collection(client, tenant, model, 1280)
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"], autocommit=True) as conn:
        tenants.create(conn, tenant, "S", model, alias)
    return tenant


def sensor_resources(stack: Stack) -> dict[str, Any]:
    """The upload sensor's resources (on the stack's Kafka and catalog: the session's settings
    are the stack's)."""
    return {"kafka": KafkaResource(), "catalog_db": CatalogResource()}


def make_producer(bootstrap: str) -> Any:
    return kafka_producer(Settings(kafka_bootstrap=bootstrap))


def test_sensor_batches_per_tenant_and_advances_its_cursor(stack: Stack, tenant_id: str) -> None:
    instance = dg.DagsterInstance.ephemeral()
    bootstrap = stack.env["DEEPLENS_KAFKA_BOOTSTRAP"]
    resources = sensor_resources(stack)
    # Start from the end of the log as it is now: the sensor's own cursor from a first tick.
    with dg.build_sensor_context(resources=resources, instance=instance) as context:
        first = image_upload_sensor(context)
    assert isinstance(first, dg.SensorResult)
    cursor = first.cursor

    bad_key = f"bad-{uuid.uuid4().hex[:6]}"
    ids = [uuid.uuid4() for _ in range(3)]
    produce_all(
        make_producer(bootstrap),
        [(events.TOPIC_UPLOADED, tenant_id, uploaded(tenant_id, i)) for i in ids]
        + [(events.TOPIC_UPLOADED, bad_key, b'{"eventType": "image.uploaded", "oops": 1}')],
    )
    with dg.build_sensor_context(cursor=cursor, resources=resources, instance=instance) as context:
        result = image_upload_sensor(context)
    assert isinstance(result, dg.SensorResult)
    mine = [r for r in result.run_requests or [] if r.partition_key == tenant_id]
    assert len(mine) == 1
    request = mine[0]
    assert sorted(request.run_config["ops"]["images"]["config"]["image_ids"]) == sorted(
        str(i) for i in ids
    )
    assert request.run_key and f"/{tenant_id}/" in request.run_key
    # The tenant has no Dagster partition yet in this instance: the sensor adds it.
    added = [p for r in result.dynamic_partitions_requests or [] for p in r.partition_keys]
    assert tenant_id in added
    _, before = read_cursor(cursor)
    _, after = read_cursor(result.cursor)
    assert sum(after.values()) - sum(before.values()) >= 4

    # Same cursor again: the same run keys (Dagster dedupes them), nothing new is lost.
    with dg.build_sensor_context(cursor=cursor, resources=resources, instance=instance) as context:
        again = image_upload_sensor(context)
    assert isinstance(again, dg.SensorResult)
    assert request.run_key in {r.run_key for r in again.run_requests or []}

    # From the advanced cursor: nothing left to do.
    with dg.build_sensor_context(
        cursor=result.cursor, resources=resources, instance=instance
    ) as context:
        last = image_upload_sensor(context)
    assert isinstance(last, dg.SensorResult)
    assert not [r for r in last.run_requests or [] if r.partition_key == tenant_id]

    failed = [
        e
        for e in events_on(bootstrap, events.TOPIC_FAILED)
        if "oops" in str(e.get("data", {}).get("rawEvent", ""))  # type: ignore[union-attr]
    ]
    assert failed, "the malformed event must reach deeplens.processing.failed"
    assert "malformed" in json.dumps(failed[0]["data"])


def test_a_changed_cluster_id_resets_the_offsets(stack: Stack) -> None:
    instance = dg.DagsterInstance.ephemeral()
    resources = sensor_resources(stack)
    stale = json.dumps({"cluster": "an-older-broker", "offsets": {"0": 10**9}})
    with dg.build_sensor_context(cursor=stale, resources=resources, instance=instance) as context:
        result = image_upload_sensor(context)
    assert isinstance(result, dg.SensorResult)
    cluster, offsets = read_cursor(result.cursor)
    assert cluster != "an-older-broker"
    assert offsets.get(0, 0) < 10**9


def test_uploads_wait_on_kafka_while_the_run_slots_are_taken(stack: Stack, tenant_id: str) -> None:
    instance = dg.DagsterInstance.ephemeral()
    bootstrap = stack.env["DEEPLENS_KAFKA_BOOTSTRAP"]
    resources = sensor_resources(stack)
    with dg.build_sensor_context(resources=resources, instance=instance) as context:
        first = image_upload_sensor(context)
    assert isinstance(first, dg.SensorResult)
    ids = [uuid.uuid4() for _ in range(2)]
    produce_all(
        make_producer(bootstrap),
        [(events.TOPIC_UPLOADED, tenant_id, uploaded(tenant_id, i)) for i in ids],
    )
    busy = [
        instance.add_run(
            dg.DagsterRun(job_name=ingest_job.name, status=dg.DagsterRunStatus.STARTED)
        )
        for _ in range(stack.child_settings().max_concurrent_runs)
    ]
    with dg.build_sensor_context(
        cursor=first.cursor, resources=resources, instance=instance
    ) as context:
        held = image_upload_sensor(context)
    assert isinstance(held, dg.SkipReason)
    assert "next batch" in (held.skip_message or "")

    # A slot frees up: the waiting uploads become one run, nothing was skipped over.
    instance.report_run_failed(busy[0])
    with dg.build_sensor_context(
        cursor=first.cursor, resources=resources, instance=instance
    ) as context:
        result = image_upload_sensor(context)
    assert isinstance(result, dg.SensorResult)
    mine = [r for r in result.run_requests or [] if r.partition_key == tenant_id]
    assert len(mine) == 1
    assert sorted(mine[0].run_config["ops"]["images"]["config"]["image_ids"]) == sorted(
        str(i) for i in ids
    )


def test_an_idle_tick_takes_up_an_upload_that_arrives_while_it_waits(
    stack: Stack, tenant_id: str
) -> None:
    """A tick with nothing to read waits for the first upload (WAIT_SECONDS) instead of leaving
    it to the next tick: the tick that was already running when the event was produced
    returns its run. (Retried if some other test's upload ends the wait first.)"""
    instance = dg.DagsterInstance.ephemeral()
    bootstrap = stack.env["DEEPLENS_KAFKA_BOOTSTRAP"]
    resources = sensor_resources(stack)
    with dg.build_sensor_context(resources=resources, instance=instance) as context:
        first = image_upload_sensor(context)
    assert isinstance(first, dg.SensorResult)
    cursor, taken = first.cursor, False
    for _ in range(3):
        image_id = uuid.uuid4()
        event = (events.TOPIC_UPLOADED, tenant_id, uploaded(tenant_id, image_id))
        late = threading.Timer(
            WAIT_SECONDS / 3, lambda e=event: produce_all(make_producer(bootstrap), [e])
        )
        late.start()
        with dg.build_sensor_context(cursor=cursor, resources=resources, instance=instance) as c:
            result = image_upload_sensor(c)
        late.join()
        assert isinstance(result, dg.SensorResult)
        ids = [
            i
            for r in result.run_requests or []
            if r.partition_key == tenant_id
            for i in r.run_config["ops"]["images"]["config"]["image_ids"]
        ]
        if str(image_id) in ids:
            taken = True
            break
        cursor = result.cursor
    assert taken, "an upload produced during an idle tick's wait must be in that tick's runs"
