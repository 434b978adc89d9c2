"""In-process fixtures: the app with its services replaced by fakes (no server is started)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from anyio import CapacityLimiter
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deeplens.blobs import LocalBlobStore
from deeplens.catalog.keys import Identity
from deeplens.catalog.tenants import Limits, Tenant
from deeplens.keys import hash_key
from deeplens.settings import Settings
from search_api import deps
from search_api.auth import TenantKeys
from search_api.main import create_app
from search_api.ratelimit import RateLimiter

API_KEY = "dlk_unit-test-key"
ADMIN_KEY = "unit-admin-key"
TENANT = Tenant(
    tenant_id="unit-tenant",
    name="Unit",
    model="efficientnet_lite0",
    collection_alias="tenant_unit-tenant_efficientnet_lite0_vectors",
    created_at=datetime(2025, 1, 1, tzinfo=UTC),
)
IDENTITY = Identity(tenant=TENANT, key_id="key_unit", read_only=False, limits=Limits())
# More keys of the same tenant: read-only, and one whose tenant may upload twice a second.
READ_ONLY_KEY = "dlk_unit-read-only"
SLOW_KEY = "dlk_unit-slow"
IDENTITIES = {
    hash_key(API_KEY): IDENTITY,
    hash_key(READ_ONLY_KEY): Identity(TENANT, "key_ro", read_only=True, limits=Limits()),
    hash_key(SLOW_KEY): Identity(TENANT, "key_slow", False, Limits(uploads_per_second=2)),
}


class Untouchable:
    """A client that fails the test if a route reaches it."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the {self.what} must not be used for this request")


@dataclass
class FakeServices:
    """What the app's dependencies give the routes: fakes, and nothing that connects."""

    settings: Settings
    blobs: LocalBlobStore
    db: Any = field(default_factory=lambda: Untouchable("database"))
    key_lookups: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)  # key hashes the catalog no longer knows
    upload_limiter: CapacityLimiter = field(default_factory=lambda: CapacityLimiter(1))

    def __post_init__(self) -> None:
        def load(digest: str) -> Identity | None:
            self.key_lookups.append(digest)
            return None if digest in self.revoked else IDENTITIES.get(digest)

        self.keys = TenantKeys(load)

    def install(self, app: FastAPI) -> None:
        # What the gate reads from the app's state (no Redis: rates are counted in process).
        app.state.keys = self.keys
        app.state.rate_limiter = RateLimiter(None)
        overrides: dict[Any, Any] = {
            deps.get_settings: lambda: self.settings,
            deps.get_db: lambda: self.db,
            deps.get_blobs: lambda: self.blobs,
            deps.get_keys: lambda: self.keys,
            deps.get_upload_limiter: lambda: self.upload_limiter,
            deps.get_query_limiter: lambda: self.upload_limiter,
            deps.get_qdrant: lambda: Untouchable("vector store"),
            deps.get_cache: lambda: Untouchable("search cache"),
            deps.get_hub: lambda: Untouchable("status hub"),
            deps.get_model: lambda: Untouchable("model"),
            deps.get_models: lambda: Untouchable("models"),
        }
        app.dependency_overrides.update(overrides)


@pytest.fixture
def fake_services(tmp_path: Path) -> FakeServices:
    # 429s are sent at once (the gate's pause is tested on its own).
    settings = Settings(
        admin_key=ADMIN_KEY,
        max_upload_bytes=200_000,
        blob_root=tmp_path,
        rate_limit_pause_seconds=0,
    )
    return FakeServices(settings=settings, blobs=LocalBlobStore(tmp_path / "blobs"))


@pytest.fixture
def client(fake_services: FakeServices) -> Iterator[TestClient]:
    """A client for an app whose lifespan never runs: nothing connects anywhere."""
    app = create_app(fake_services.settings)
    fake_services.install(app)
    yield TestClient(app)
    app.dependency_overrides.clear()
