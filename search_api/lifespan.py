"""What the API holds for its lifetime: clients, the model, background threads.

Built in `lifespan` (nothing connects at import) by the shared factories in `deeplens.clients`,
put on ``app.state`` one by one, and closed on shutdown in reverse order. Logs and traces are set
up first, as the settings say (`deeplens.logs`, `deeplens.tracing`). Routes reach each
through its own dependency in `search_api.deps`; tests replace them with
``app.dependency_overrides``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager

from anyio import CapacityLimiter
from fastapi import FastAPI

from deeplens import clients, logs, tracing
from deeplens.cache import SearchCache
from deeplens.catalog import keys as api_keys
from deeplens.catalog import stats
from deeplens.catalog.keys import Identity
from deeplens.catalog.stats import PipelineStats
from deeplens.hub import StatusHub
from deeplens.metrics import PipelineCollector
from deeplens.relay import OutboxRelay
from deeplens.settings import Settings
from search_api.auth import TenantKeys
from search_api.embedding import QueryModel, QueryModels
from search_api.ratelimit import RateLimiter

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if app.state.settings is None:
        app.state.settings = Settings()
    settings: Settings = app.state.settings
    if not logging.getLogger().handlers:  # uvicorn configures only its own loggers
        logs.configure(settings)
    tracing.configure(settings, "deeplens-api")
    with ExitStack() as stack:
        state = app.state
        state.db = db = clients.postgres_pool(
            settings, "deeplens-api", min_size=2, statement_timeout=True
        )
        stack.callback(db.close)
        state.qdrant = clients.qdrant(settings, timeout=10)
        stack.callback(state.qdrant.close)
        redis = clients.redis_client(settings)
        stack.callback(redis.close)
        state.cache = cache = SearchCache(redis, retry_seconds=settings.redis_retry_seconds)

        def read_stats() -> PipelineStats:
            with db.connection() as conn:
                return stats.read(conn, settings.metrics_window_seconds)

        state.pipeline_metrics = PipelineCollector(read_stats, settings.metrics_window_seconds)
        state.kafka_admin = clients.kafka_admin(settings)
        state.blobs = clients.blob_store(settings)

        def identify(digest: str) -> Identity | None:
            """The key's identity; a key found is marked used (at most once per cache period)."""
            with db.connection() as conn:
                identity = api_keys.identify(conn, digest)
                if identity is not None:
                    api_keys.touch(conn, [identity.key_id])
                return identity

        state.keys = keys = TenantKeys(identify)
        state.rate_limiter = RateLimiter(
            settings.redis_url, settings.redis_timeout, settings.redis_retry_seconds
        )
        state.upload_limiter = CapacityLimiter(settings.upload_concurrency)
        state.query_limiter = CapacityLimiter(settings.query_concurrency)
        budget = settings.query_decode_budget_mb << 20
        state.model = QueryModel(settings.model).load(budget)
        state.models = QueryModels(state.model, settings.query_models, budget)
        stack.callback(state.models.close)
        state.hub = StatusHub(
            settings.require("database_url"), on_tenant_changed=keys.forget_tenant
        )
        state.hub.start()
        stack.callback(state.hub.stop)
        state.relay = None
        if settings.relay_in_api:
            state.relay = OutboxRelay(settings, on_completed=cache.invalidate)
            state.relay.start()
            stack.callback(state.relay.stop)
        yield
