"""Kafka topics and delivery, shared by the relay, the sensors and `deeplens migrate`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

from deeplens.clients import kafka_admin
from deeplens.events import TOPIC_UPLOADED, TOPICS
from deeplens.settings import Settings

log = logging.getLogger(__name__)


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Partitions per topic: the seeds' counts, the upload topic's from settings."""
    return {**TOPICS, TOPIC_UPLOADED: settings.kafka_topic_partitions}


def ensure_topics(settings: Settings, timeout: float = 15) -> list[str]:
    """Create the project's missing topics with the configured partitions and replication
    factor; returns the topics created (none when all exist: idempotent)."""
    admin = kafka_admin(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(t, n, settings.kafka_replication_factor)
        for t, n in topic_partitions(settings).items()
        if t not in existing
    ]
    created: list[str] = []
    if not wanted:
        return created
    for topic, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result()
            log.info("created topic %s", topic)
            created.append(topic)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def cluster_id(settings: Settings, timeout: float = 5) -> str:
    return str(kafka_admin(settings).list_topics(timeout=timeout).cluster_id)


Outgoing = tuple[str, str, bytes] | tuple[str, str, bytes, Mapping[str, str]]


def produce_all(producer: Producer, messages: Sequence[Outgoing], timeout: float = 15) -> None:
    """Produce (topic, key, value[, headers]) messages and wait until every one is
    acknowledged."""
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for message in messages:
        topic, key, value = message[0], message[1], message[2]
        headers: dict[str, str | bytes | None] | None = (
            dict(message[3]) if len(message) == 4 and message[3] else None
        )
        producer.produce(
            topic, key=key.encode(), value=value, on_delivery=on_delivery, headers=headers
        )
        producer.poll(0)
    remaining = producer.flush(timeout)
    if remaining or errors:
        raise KafkaException(
            f"{remaining} message(s) not delivered within {timeout}s; errors: {errors[:3]}"
        )


KafkaHeaders = Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]]


def headers_of(raw: KafkaHeaders | None) -> dict[str, str]:
    """A consumed message's headers (the last of a repeated name), as text."""
    pairs = raw.items() if isinstance(raw, Mapping) else raw or []
    return {
        name: value.decode(errors="replace") if isinstance(value, bytes) else value
        for name, value in pairs
        if value is not None
    }
