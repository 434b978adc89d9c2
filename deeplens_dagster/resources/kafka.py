from __future__ import annotations

import uuid

import dagster as dg
from confluent_kafka import Consumer, Producer
from pydantic import Field, PrivateAttr

from deeplens.kafka import make_producer


class KafkaResource(dg.ConfigurableResource):
    """Kafka: a producer for events, and consumers with explicit partition assignment."""

    bootstrap: str = Field(description="Kafka bootstrap servers (DEEPLENS_KAFKA_BOOTSTRAP).")

    _producer: Producer | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._producer = None  # created on first use: most ticks produce nothing

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._producer is not None:
            self._producer.flush(10)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = make_producer(self.bootstrap)
        return self._producer

    def consumer(self) -> Consumer:
        """A consumer that never joins a group: the caller assigns partitions and offsets."""
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"deeplens-sensor-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                # The broker answers a fetch as soon as there is data; this only bounds how long
                # it holds an empty one. At 50 ms a sensor tick waiting for uploads cost the
                # broker 20 fetches a second.
                "fetch.wait.max.ms": 500,
            }
        )
