"""What the API holds for its lifetime: clients, the model, background threads.

Built in `lifespan` (nothing connects at import) by the shared factories in `deeplens.clients`,
put on ``app.state`` one by one, and closed on shutdown in reverse order. Routes reach each
through its own dependency in `search_api.deps`; tests replace them with
``app.dependency_overrides``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager

from anyio import CapacityLimiter
from fastapi import FastAPI

from deeplens import clients
from deeplens.cache import SearchCache
from deeplens.catalog import tenants
from deeplens.catalog.tenants import Tenant
from deeplens.hub import StatusHub
from deeplens.relay import OutboxRelay
from deeplens.settings import Settings
from search_api.auth import TenantKeys
from search_api.embedding import QueryModel

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if app.state.settings is None:
        app.state.settings = Settings()
    settings: Settings = app.state.settings
    if not logging.getLogger().handlers:  # uvicorn configures only its own loggers
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    with ExitStack() as stack:
        state = app.state
        state.db = db = clients.postgres_pool(settings, "deeplens-api", min_size=2)
        stack.callback(db.close)
        state.qdrant = clients.qdrant(settings, timeout=10)
        stack.callback(state.qdrant.close)
        redis = clients.redis_client(settings)
        stack.callback(redis.close)
        state.cache = cache = SearchCache(redis)
        state.kafka_admin = clients.kafka_admin(settings)
        state.blobs = clients.blob_store(settings)

        def tenant_by_key_hash(digest: str) -> Tenant | None:
            with db.connection() as conn:
                return tenants.by_key_hash(conn, digest)

        state.keys = keys = TenantKeys(tenant_by_key_hash)
        state.upload_limiter = CapacityLimiter(settings.upload_concurrency)
        state.model = QueryModel(settings.model).load()
        stack.callback(state.model.close)
        state.hub = StatusHub(
            settings.require("database_url"), on_tenant_deleted=keys.forget_tenant
        )
        state.hub.start()
        stack.callback(state.hub.stop)
        state.relay = None
        if settings.relay_in_api:
            state.relay = OutboxRelay(settings, on_completed=cache.invalidate)
            state.relay.start()
            stack.callback(state.relay.stop)
        yield
