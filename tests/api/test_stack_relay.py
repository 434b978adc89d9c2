"""The outbox relay through a Kafka outage: nothing lost, nothing crashes, it catches up.

The relay under test works on a scratch database in the stack's Postgres and on a Kafka broker
of its own, started only after the relay has been failing for a while: the stack's catalog and
topics (which the API's relay and the pipeline use) are never touched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg.conninfo import make_conninfo

from deeplens import events
from deeplens.cache import SearchCache, generation_key
from deeplens.catalog import images, outbox, tenants
from deeplens.catalog.images import NewImage
from deeplens.catalog.schema import migrate
from deeplens.kafka import ensure_topics
from deeplens.relay import OutboxRelay
from deeplens.settings import Settings
from deeplens_local.stack import servers
from deeplens_local.stack.stack import Stack
from deeplens_local.stack.wait import free_port
from tests.api.stack_helpers import find_event, unique_id, wait_for

pytestmark = pytest.mark.stack

# Fail fast while the broker is away, and keep librdkafka's connection errors out of the log.
FAST_FAIL = {"message.timeout.ms": 1000, "log_level": 0}


@pytest.fixture
def scratch_db(stack: Stack) -> Iterator[str]:
    url = stack.env["DEEPLENS_DATABASE_URL"]
    name = f"relay_{uuid.uuid4().hex[:10]}"
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    scratch = make_conninfo(url, dbname=name)
    with psycopg.connect(scratch) as conn:
        migrate(conn)
    yield scratch
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def seed(database_url: str, tenant_id: str, n: int, completed: bool) -> list[uuid.UUID]:
    """A tenant with `n` uploaded images (each with its outbox row), and a completion event."""
    ids = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        tenants.create(conn, tenant_id, "Relay", "m", "alias")
        for i in range(n):
            digest = uuid.uuid4().hex
            new = NewImage(
                tenant_id=tenant_id,
                sha256=digest,
                blob_key=f"{tenant_id}/{digest}",
                file_name=f"{i}.jpg",
                content_type="image/jpeg",
                file_size=10,
                width=1,
                height=1,
                uploaded_by=None,
                metadata={},
            )
            image, created = images.insert_with_event(conn, new)
            assert created
            ids.append(image.image_id)
        if completed:
            event = events.Envelope(
                event_type="processing.completed",
                tenant_id=tenant_id,
                correlation_id=uuid.uuid4(),
                data={"imageId": str(ids[0])},
            )
            images.enqueue(conn, events.TOPIC_COMPLETED, tenant_id, event)
    return ids


def statuses(database_url: str, ids: list[uuid.UUID]) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status FROM deeplens.images WHERE image_id = ANY(%s)", (ids,)
        ).fetchall()
    return {str(r[0]) for r in rows}


def pending(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return outbox.pending(conn)


def test_relay_survives_a_kafka_outage_and_catches_up(
    stack: Stack, scratch_db: str, tmp_path: Path
) -> None:
    tenant_id = unique_id("relay")
    ids = seed(scratch_db, tenant_id, 3, completed=True)
    assert pending(scratch_db) == 4
    cache_client = redis.Redis.from_url(stack.env["DEEPLENS_REDIS_URL"])
    generation = generation_key(tenant_id)
    port = free_port()
    relay = OutboxRelay(
        Settings(database_url=scratch_db, kafka_bootstrap=f"127.0.0.1:{port}"),
        on_completed=SearchCache(cache_client).invalidate,
        poll_interval=0.2,
        max_backoff=0.5,
        producer_config=FAST_FAIL,
    )
    relay.start()
    broker = None
    try:
        time.sleep(3)  # several failed attempts against a broker that is not there
        assert relay.running, "a Kafka outage must not kill the relay thread"
        assert relay.published == 0
        assert pending(scratch_db) == 4, "nothing is marked sent while Kafka is down"
        assert statuses(scratch_db, ids) == {"uploaded"}
        assert cache_client.get(generation) is None

        broker = servers.start_kafka(port, tmp_path / "logs")
        ensure_topics(Settings(kafka_bootstrap=broker.url))
        assert wait_for(lambda: pending(scratch_db) == 0, timeout=60), "the relay catches up"
        assert statuses(scratch_db, ids) == {"queued"}
        assert int(cache_client.get(generation) or 0) == 1, "completion invalidates the cache"

        # NOTIFY wakes the relay: a new upload is published without waiting for Kafka to fail.
        more = seed(scratch_db, unique_id("relay"), 1, completed=False)
        assert wait_for(lambda: statuses(scratch_db, more) == {"queued"}, timeout=10)
        for image_id in ids:
            event = find_event(broker.url, events.TOPIC_UPLOADED, str(image_id))
            assert event is not None and event["tenantId"] == tenant_id
            assert event["eventType"] == "image.uploaded"
    finally:
        relay.stop()
        cache_client.delete(generation)
        if broker is not None:
            broker.process.stop()


def test_one_relay_publishes_and_a_standby_takes_over(stack: Stack, scratch_db: str) -> None:
    bootstrap = stack.env["DEEPLENS_KAFKA_BOOTSTRAP"]
    first, second = (
        OutboxRelay(
            Settings(database_url=scratch_db, kafka_bootstrap=bootstrap),
            poll_interval=0.2,
            standby_interval=0.2,
        )
        for _ in range(2)
    )
    first.start()
    try:
        assert wait_for(lambda: first.leading, timeout=10)
        second.start()
        ids = seed(scratch_db, unique_id("relay"), 3, completed=False)
        assert wait_for(lambda: statuses(scratch_db, ids) == {"queued"}, timeout=20)
        assert first.published == 3
        assert not second.leading and second.published == 0, "a second relay stands by"

        first.stop()
        assert wait_for(lambda: second.leading, timeout=10), "the standby takes over"
        more = seed(scratch_db, unique_id("relay"), 2, completed=False)
        assert wait_for(lambda: statuses(scratch_db, more) == {"queued"}, timeout=20)
        assert second.published == 2
    finally:
        first.stop()
        second.stop()
