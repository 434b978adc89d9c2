from __future__ import annotations

import uuid

import dagster as dg
from confluent_kafka import Consumer, Producer
from pydantic import PrivateAttr

from deeplens import clients
from deeplens_dagster.resources.settings import SettingsResource


class KafkaResource(SettingsResource):
    """Kafka: a producer for events, and consumers with explicit partition assignment
    (``DEEPLENS_KAFKA_*``: bootstrap servers, and SASL/TLS for managed clusters)."""

    _producer: Producer | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._producer = None  # created on first use: most ticks produce nothing

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._producer is not None:
            self._producer.flush(10)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = clients.kafka_producer(self.settings)
        return self._producer

    def consumer(self) -> Consumer:
        """A consumer that never joins a group: the caller assigns partitions and offsets."""
        return clients.kafka_consumer(
            self.settings,
            group_id=f"deeplens-sensor-{uuid.uuid4()}",
            # The broker answers a fetch as soon as there is data; this only bounds how long it
            # holds an empty one. At 50 ms a sensor tick waiting for uploads cost the broker 20
            # fetches a second.
            **{"fetch.wait.max.ms": 500},
        )
