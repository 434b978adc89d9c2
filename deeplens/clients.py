"""One factory per client, called by every runtime (the API, Dagster resources, the relay, the
CLI) with the same `Settings`: a connection setting can't reach one and miss another.

Nothing here connects at import; heavy client libraries are imported when a factory is called.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from deeplens.blobs import BlobStore, LocalBlobStore, S3BlobStore
from deeplens.settings import Settings

if TYPE_CHECKING:
    import redis
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient
    from mypy_boto3_s3 import S3Client
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
    """The store of the image bytes: the directory `blob_root`, or the bucket `s3_bucket`."""
    if settings.blob_store == "s3":
        return S3BlobStore(s3_client(settings), settings.require("s3_bucket"), settings.s3_prefix)
    return LocalBlobStore(settings.resolved_blob_root())


def s3_client(settings: Settings, attempts: int = 3) -> S3Client:
    """boto3's S3 client for the blob store, with the settings' credentials, or else boto3's own
    chain (its variables and files, IRSA on Kubernetes, an instance role).

    Every request is bounded by `s3_timeout` and tried `attempts` times in all (standard retry
    mode: connection errors, timeouts, throttling and 5xx, with backoff), so that a store that
    is down fails an upload within seconds rather than holding it.
    """
    import boto3
    from botocore.config import Config

    key_id = settings.secret("s3_access_key_id")
    secret = settings.secret("s3_secret_access_key")
    if (key_id is None) != (secret is None):
        raise RuntimeError(
            "DEEPLENS_S3_ACCESS_KEY_ID and DEEPLENS_S3_SECRET_ACCESS_KEY go together: set both, "
            "or neither for boto3's own credentials"
        )
    config = Config(
        connect_timeout=settings.s3_timeout,
        read_timeout=settings.s3_timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        # An S3-compatible store is addressed by path: virtual hosts need a DNS name per bucket.
        s3={"addressing_style": "path"} if settings.s3_endpoint_url else None,
    )
    # A session of its own: boto3's default one must not be shared across threads.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=config,
    )
