"""The clients the API holds for its lifetime: created in ``lifespan``, closed on shutdown."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from confluent_kafka.admin import AdminClient
from psycopg_pool import ConnectionPool
from qdrant_client import QdrantClient

from deeplens.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: ConnectionPool
    qdrant: QdrantClient
    redis: redis.Redis
    kafka_admin: AdminClient

    @classmethod
    def create(cls, settings: Settings) -> Services:
        db = ConnectionPool(
            settings.require("database_url"),
            min_size=2,
            max_size=20,
            open=True,
            name="deeplens-api",
            kwargs={"autocommit": True},
        )
        qdrant = QdrantClient(
            url=settings.require("qdrant_url"), api_key=settings.qdrant_api_key, timeout=10
        )
        cache = redis.Redis.from_url(settings.require("redis_url"), socket_timeout=2)
        kafka_admin = AdminClient({"bootstrap.servers": settings.require("kafka_bootstrap")})
        return cls(settings=settings, db=db, qdrant=qdrant, redis=cache, kafka_admin=kafka_admin)

    def close(self) -> None:
        self.db.close()
        self.qdrant.close()
        self.redis.close()
