"""The outbox relay: publishes the catalog's outbox rows to Kafka from a background thread.

The API process hosts one by default (``DEEPLENS_RELAY_IN_API``); ``deeplens relay`` runs one on
its own where a deployment separates them. Besides publishing, it moves announced uploads to
``queued`` and makes the search cache of a tenant with newly completed images stale. Images whose
event was lost on the way are the reconciler's (`deeplens_dagster.sensors.reconciler`).

It wakes on ``NOTIFY deeplens_outbox`` (and polls every second in case a wake-up is missed),
claims unsent rows with ``FOR UPDATE SKIP LOCKED``, produces them, and in the same transaction
marks them sent and moves announced uploads to ``queued``. Each message carries the trace context
its row was written in (`deeplens.tracing`). When Kafka or Postgres is down it logs,
backs off and catches up later; uploads never wait for it. Delivery is at least once: a crash
between produce and commit publishes again.

One relay publishes at a time: each API process runs one, and the one holding a session-level
advisory lock leads while the others stand by, trying for the lock every few seconds (a leader
that dies loses its session, and with it the lock). Relays side by side would be correct (rows
are claimed with SKIP LOCKED) but every upload's NOTIFY would wake them all to race for it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from confluent_kafka import Producer
from opentelemetry.trace import SpanKind, StatusCode

from deeplens import clients, events, logs, tracing
from deeplens.catalog import images, outbox
from deeplens.kafka import produce_all
from deeplens.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "deeplens_outbox"
LEADER_LOCK = "deeplens.outbox_relay"


class OutboxRelay:
    def __init__(
        self,
        settings: Settings,
        on_completed: Callable[[str], None] | None = None,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        max_backoff: float = 10.0,
        producer_config: dict[str, Any] | None = None,
        standby_interval: float = 3.0,
    ) -> None:
        self._settings = settings
        self._database_url = settings.require("database_url")
        self._on_completed = on_completed
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_backoff = max_backoff
        self._producer_config = producer_config or {}
        self._standby_interval = standby_interval
        self._leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._producer: Producer | None = None
        self.published = 0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close_conn()
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        backoff = self._poll_interval
        while not self._stop.is_set():
            try:
                conn = self._connection()
                if not self._lead(conn):
                    self._stop.wait(self._standby_interval)
                    continue
                while not self._stop.is_set() and self.publish_batch(conn):
                    pass
                backoff = self._poll_interval
                for _ in conn.notifies(timeout=self._poll_interval, stop_after=1):
                    pass
            except Exception as exc:  # the relay logs and retries; it never dies
                log.warning(
                    "outbox relay: %s: %s; retrying in %.1fs", type(exc).__name__, exc, backoff
                )
                self._recover(exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    def publish_batch(self, conn: psycopg.Connection) -> int:
        """Publish one batch of unsent rows; returns how many were published (0: none left)."""
        completed: set[str] = set()
        with conn.transaction():
            rows = outbox.claim(conn, self._batch_size)
            if not rows:
                return 0
            self._produce(rows)
            outbox.mark_sent(conn, [r.id for r in rows])
            uploaded: list[uuid.UUID] = []
            for row in rows:
                data = row.payload.get("data")
                image_id = data.get("imageId") if isinstance(data, dict) else None
                if row.topic == events.TOPIC_UPLOADED and image_id:
                    uploaded.append(uuid.UUID(str(image_id)))
                elif row.topic == events.TOPIC_COMPLETED:
                    completed.add(str(row.payload.get("tenantId") or row.key))
            if uploaded:
                images.mark_queued(conn, uploaded)
        self.published += len(rows)
        log.debug("outbox relay published %d event(s)", len(rows))
        if log.isEnabledFor(logging.DEBUG):
            for row in rows:
                event = row.payload.get("eventType")
                log.debug(
                    "published %s to %s",
                    event,
                    row.topic,
                    extra=logs.correlation(row.correlation_id),
                )
        if self._on_completed is not None:
            for tenant_id in completed:
                self._on_completed(tenant_id)
        return len(rows)

    def _produce(self, rows: list[outbox.OutboxRow]) -> None:
        """Produce the rows and wait for their acknowledgement. When tracing, each is published
        in a span that is a child of the context the row was written in, and that span's
        context goes with the message as its ``traceparent`` header; otherwise the row's
        headers go as they are."""
        if not tracing.enabled():
            produce_all(self._kafka(), [(r.topic, r.key, r.value(), r.headers) for r in rows])
            return
        spans = [
            tracing.start_span(
                f"publish {row.topic}", row.headers, SpanKind.PRODUCER, _attributes(row)
            )
            for row in rows
        ]
        messages = [
            (row.topic, row.key, row.value(), tracing.headers_of(span) or row.headers)
            for row, span in zip(rows, spans, strict=True)
        ]
        try:
            produce_all(self._kafka(), messages)
        except Exception as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, str(exc))
            raise
        finally:
            for span in spans:
                span.end()

    @property
    def leading(self) -> bool:
        """Whether this relay is the one publishing (it holds the leader lock)."""
        return self._leading

    def _lead(self, conn: psycopg.Connection) -> bool:
        """Take the leader lock if free (kept for the session); listen once leading."""
        if not self._leading:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (LEADER_LOCK,)
            ).fetchone()
            if row is None or not row[0]:
                return False
            conn.execute(f"LISTEN {CHANNEL}")
            self._leading = True
            log.info("outbox relay: leading")
        return True

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._leading = False  # a new session holds no lock
            self._conn = psycopg.connect(self._database_url, autocommit=True, connect_timeout=5)
        return self._conn

    def _kafka(self) -> Producer:
        if self._producer is None:
            self._producer = clients.kafka_producer(self._settings, **self._producer_config)
        return self._producer

    def _recover(self, exc: Exception) -> None:
        if isinstance(exc, psycopg.Error):
            self._close_conn()
        else:
            # A failed produce may leave messages queued in the producer: drop them (their rows
            # stay unsent and are claimed again) and start the next attempt with a fresh one.
            if self._producer is not None:
                self._producer.purge()
                self._producer.flush(0)
                self._producer = None

    def _close_conn(self) -> None:
        self._leading = False
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


def _attributes(row: outbox.OutboxRow) -> dict[str, str]:
    """A publish span's attributes: the messaging conventions' and the event's ids."""
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": row.topic,
        "messaging.kafka.message.key": row.key,
        tracing.CORRELATION_ID: row.correlation_id,
        tracing.TENANT_ID: str(row.payload.get("tenantId") or row.key),
        "deeplens.event_type": row.payload.get("eventType"),
    }
    return {k: str(v) for k, v in attributes.items() if v}
