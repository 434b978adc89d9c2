"""One factory per client, called by every runtime (the API, Dagster resources, the relay, the
CLI) with the same `Settings`: a connection setting can't reach one and miss another.

Nothing here connects at import; heavy client libraries are imported when a factory is called.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from deeplens.blobs import BlobStore
from deeplens.settings import Settings

if TYPE_CHECKING:
    import redis
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient
    from psycopg_pool import ConnectionPool
    from qdrant_client import QdrantClient


def postgres_pool(
    settings: Settings,
    name: str,
    min_size: int = 1,
    max_size: int | None = None,
    statement_timeout: bool = False,
) -> ConnectionPool:
    """A pool of autocommit connections to the catalog (opened at once, connecting lazily),
    named `name` in ``pg_stat_activity`` unless the URL names them.

    With `statement_timeout` the server cancels any statement that runs longer than
    `database_statement_timeout_ms`, so that one hung query can't hold a request and a pooled
    connection for ever (the API asks for it). Migrations and a run's bulk statements may
    legitimately run longer, so the other callers don't.
    """
    from psycopg_pool import ConnectionPool

    url = settings.require("database_url")
    kwargs: dict[str, Any] = {"autocommit": True, "fallback_application_name": name}
    if statement_timeout:
        kwargs["options"] = postgres_options(url, settings.database_statement_timeout_ms)
    return ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size or settings.database_pool_size,
        open=True,
        name=name,
        kwargs=kwargs,
    )


def postgres_options(url: str, statement_timeout_ms: int) -> str:
    """libpq ``options`` for connections to `url` with a statement timeout.

    An ``options`` parameter replaces the one the URL (or else ``PGOPTIONS``) gives, so those are
    kept in front of the timeout.
    """
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url).get("options") or os.environ.get("PGOPTIONS", "")
    return f"{given} -c statement_timeout={statement_timeout_ms}".strip()


def qdrant(settings: Settings, timeout: int | None = None) -> QdrantClient:
    from qdrant_client import QdrantClient

    return QdrantClient(
        url=settings.require("qdrant_url"),
        api_key=settings.secret("qdrant_api_key"),
        timeout=timeout or settings.qdrant_timeout,
    )


def redis_client(settings: Settings) -> redis.Redis:
    import redis

    return redis.Redis.from_url(
        settings.require("redis_url"),
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
    )


def kafka_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings shared by producers, consumers and admin clients."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.require("kafka_bootstrap"),
        "security.protocol": settings.kafka_security_protocol,
    }
    optional = {
        "sasl.mechanism": settings.kafka_sasl_mechanism,
        "sasl.username": settings.kafka_sasl_username,
        "sasl.password": settings.secret("kafka_sasl_password"),
        "ssl.ca.location": settings.kafka_ssl_ca_location,
        "ssl.certificate.location": settings.kafka_ssl_certificate_location,
        "ssl.key.location": settings.kafka_ssl_key_location,
    }
    config.update({k: v for k, v in optional.items() if v is not None})
    return config


def kafka_producer(settings: Settings, **overrides: Any) -> Producer:
    """An idempotent producer that waits for every in-sync replica."""
    from confluent_kafka import Producer

    config: dict[str, Any] = {
        **kafka_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 15000,
    }
    config.update(overrides)
    return Producer(config)


def kafka_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer that commits nothing by itself: callers assign partitions and offsets."""
    from confluent_kafka import Consumer

    config: dict[str, Any] = {
        **kafka_config(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
    }
    config.update(overrides)
    return Consumer(config)


def kafka_admin(settings: Settings, **overrides: Any) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient({**kafka_config(settings), **overrides})


def blob_store(settings: Settings) -> BlobStore:
    return BlobStore(settings.resolved_blob_root())
