"""Kafka plumbing shared by the API (outbox relay), the sensors and the assets."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from deeplens.events import TOPICS

log = logging.getLogger(__name__)


def ensure_topics(bootstrap: str, topics: dict[str, int] = TOPICS, timeout: float = 15) -> None:
    """Create the project's topics if they are missing (idempotent)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [NewTopic(t, n, 1) for t, n in topics.items() if t not in existing]
    if not wanted:
        return
    for topic, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result()
            log.info("created topic %s", topic)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def cluster_id(bootstrap: str, timeout: float = 5) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return str(admin.list_topics(timeout=timeout).cluster_id)


def make_producer(bootstrap: str, **overrides: Any) -> Producer:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 15000,
    }
    config.update(overrides)
    return Producer(config)


def produce_all(
    producer: Producer, messages: list[tuple[str, str, bytes]], timeout: float = 15
) -> None:
    """Produce (topic, key, value) messages and wait until every one is acknowledged."""
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for topic, key, value in messages:
        producer.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(timeout)
    if remaining or errors:
        raise KafkaException(
            f"{remaining} message(s) not delivered within {timeout}s; errors: {errors[:3]}"
        )
