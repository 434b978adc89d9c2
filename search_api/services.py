"""What the API holds for its lifetime: clients, the model, background threads.

Built in ``lifespan`` (nothing connects at import), closed on shutdown. Routes reach it through
``deps.ServicesDep``; tests replace it with ``app.dependency_overrides``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import redis
from anyio import CapacityLimiter
from confluent_kafka.admin import AdminClient
from dagster import DagsterInstance
from psycopg_pool import ConnectionPool
from qdrant_client import QdrantClient

from deeplens.blobs import BlobStore
from deeplens.catalog import tenants
from deeplens.catalog.tenants import Tenant
from deeplens.model.embedder import Embedder
from deeplens.model.registry import ModelSpec, get_model
from deeplens.settings import Settings
from search_api.auth import TenantKeys
from search_api.cache import SearchCache
from search_api.errors import ServiceUnavailable
from search_api.hub import StatusHub
from search_api.relay import OutboxRelay
from search_api.tenancy import TenantPartitions

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: ConnectionPool
    qdrant: QdrantClient
    redis: redis.Redis
    kafka_admin: AdminClient
    blobs: BlobStore
    keys: TenantKeys
    cache: SearchCache
    partitions: TenantPartitions
    hub: StatusHub
    relay: OutboxRelay
    upload_limiter: CapacityLimiter = field(default_factory=lambda: CapacityLimiter(1))
    model_spec: ModelSpec | None = None
    embedder: Embedder | None = None
    model_error: str | None = None

    @classmethod
    def create(cls, settings: Settings) -> Services:
        database_url = settings.require("database_url")
        db = ConnectionPool(
            database_url,
            min_size=2,
            max_size=20,
            open=True,
            name="deeplens-api",
            kwargs={"autocommit": True},
        )
        qdrant = QdrantClient(
            url=settings.require("qdrant_url"), api_key=settings.qdrant_api_key, timeout=10
        )
        cache_client = redis.Redis.from_url(settings.require("redis_url"), socket_timeout=2)
        bootstrap = settings.require("kafka_bootstrap")
        kafka_admin = AdminClient({"bootstrap.servers": bootstrap})
        cache = SearchCache(cache_client)

        def tenant_by_key_hash(digest: str) -> Tenant | None:
            with db.connection() as conn:
                return tenants.by_key_hash(conn, digest)

        keys = TenantKeys(tenant_by_key_hash)
        services = cls(
            settings=settings,
            db=db,
            qdrant=qdrant,
            redis=cache_client,
            kafka_admin=kafka_admin,
            blobs=BlobStore(settings.resolved_blob_root()),
            keys=keys,
            cache=cache,
            partitions=TenantPartitions(_dagster_instance()),
            upload_limiter=CapacityLimiter(settings.upload_concurrency),
            hub=StatusHub(database_url, on_tenant_deleted=keys.forget_tenant),
            relay=OutboxRelay(
                database_url,
                bootstrap,
                on_completed=cache.invalidate,
                requeue_after=settings.requeue_after_seconds,
            ),
        )
        services.load_model()
        return services

    def load_model(self) -> None:
        """Load the configured model; a failure is kept for /readyz instead of stopping the API."""
        try:
            spec = get_model(self.settings.model)
            _ = spec.version  # hash the file now, not in the first request
            self.embedder = Embedder(spec, decode_threads=0)
            self.model_spec = spec
        except Exception as exc:  # reported by /readyz and by the routes that need the model
            self.model_error = f"{type(exc).__name__}: {exc}"
            log.exception("could not load model %r", self.settings.model)

    def require_model_spec(self) -> ModelSpec:
        if self.model_spec is None:
            raise ServiceUnavailable(
                f"model {self.settings.model!r} is not loaded: {self.model_error}"
            )
        return self.model_spec

    def require_embedder(self) -> Embedder:
        if self.embedder is None:
            raise ServiceUnavailable(
                f"model {self.settings.model!r} is not loaded: {self.model_error}"
            )
        return self.embedder

    def start(self) -> None:
        """Start the background threads: the outbox relay and the status hub."""
        self.hub.start()
        self.relay.start()

    def close(self) -> None:
        self.relay.stop()
        self.hub.stop()
        if self.embedder is not None:
            self.embedder.close()
        self.partitions.close()
        self.db.close()
        self.qdrant.close()
        self.redis.close()


def _dagster_instance() -> DagsterInstance | None:
    """The Dagster instance named by DAGSTER_HOME (where tenants' partitions are registered)."""
    if not os.environ.get("DAGSTER_HOME"):
        log.warning("DAGSTER_HOME is not set: tenants cannot be created or deleted")
        return None
    return DagsterInstance.get()
