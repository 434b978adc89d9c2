"""The API's small parts on their own: key cache, search cache, status fan-out, tenant undo."""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from deeplens import tenancy
from deeplens.cache import SearchCache, generation_key
from deeplens.catalog.tenants import Limits
from deeplens.hub import StatusHub
from deeplens.keys import hash_key
from search_api.auth import TenantKeys
from tests.api.conftest import IDENTITY, TENANT

# -- the key cache -----------------------------------------------------------------------------


def test_key_cache_remembers_hits_for_its_ttl() -> None:
    loads: list[str] = []

    def load(digest: str) -> Any:
        loads.append(digest)
        return IDENTITY if digest == hash_key("good") else None

    keys = TenantKeys(load, ttl=60)
    assert keys.lookup("good") is IDENTITY
    assert keys.lookup("good") is IDENTITY
    assert loads == [hash_key("good")]
    assert keys.lookup("bad") is None
    assert keys.lookup("bad") is None
    assert loads.count(hash_key("bad")) == 2, "unknown keys are not cached"
    keys.forget_tenant(TENANT.tenant_id)
    assert keys.lookup("good") is IDENTITY
    assert loads.count(hash_key("good")) == 2


def test_key_cache_expires() -> None:
    loads: list[str] = []
    keys = TenantKeys(lambda digest: loads.append(digest) or IDENTITY, ttl=0)
    keys.lookup("good")
    keys.lookup("good")
    assert len(loads) == 2


# -- the search cache --------------------------------------------------------------------------


class FakeRedis:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise redis.ConnectionError("Redis is down")

    def get(self, key: str) -> bytes | None:
        self._check()
        return self.data.get(key)

    def set(self, key: str, value: str, ex: int) -> None:
        self._check()
        self.data[key] = value.encode()

    def incr(self, key: str) -> None:
        self._check()
        self.data[key] = str(int(self.data.get(key, b"0")) + 1).encode()


def test_search_cache_is_invalidated_per_tenant() -> None:
    client = FakeRedis()
    cache = SearchCache(client)  # type: ignore[arg-type]
    mine = cache.key("acme", "image", "abc", "k10")
    theirs = cache.key("globex", "image", "abc", "k10")
    assert mine != theirs
    cache.put(mine, {"results": [1]})
    cache.put(theirs, {"results": [2]})
    assert cache.get(cache.key("acme", "image", "abc", "k10")) == {"results": [1]}
    assert cache.get(cache.key("acme", "image", "abc", "k5")) is None, "how it was asked counts"

    cache.invalidate("acme")
    assert client.data[generation_key("acme")] == b"1"
    assert cache.get(cache.key("acme", "image", "abc", "k10")) is None
    assert cache.get(cache.key("globex", "image", "abc", "k10")) == {"results": [2]}


def test_search_cache_steps_aside_when_redis_is_down() -> None:
    client = FakeRedis()
    cache = SearchCache(client)  # type: ignore[arg-type]
    client.down = True
    key = cache.key("acme", "id", "x", "k10")
    assert key is None
    assert cache.get(key) is None
    cache.put(key, {"results": []})
    cache.invalidate("acme")  # logs, never raises


# -- status fan-out ----------------------------------------------------------------------------


def test_hub_wakes_only_the_watchers_of_the_changed_image() -> None:
    hub = StatusHub("postgresql://unused")

    async def scenario() -> tuple[bool, bool]:
        watched = hub.subscribe("image-1")
        other = hub.subscribe("image-2")
        thread = threading.Thread(target=hub.publish, args=("image-1",))
        thread.start()
        await asyncio.wait_for(watched.wait(), timeout=2)
        thread.join()
        other_woken = True
        try:
            await asyncio.wait_for(other.wait(), timeout=0.2)
        except TimeoutError:
            other_woken = False
        hub.unsubscribe(watched)
        hub.unsubscribe(other)
        return True, other_woken

    assert asyncio.run(scenario()) == (True, False)
    assert not hub._subscribers


# -- tenant creation undoes what it did when a step fails --------------------------------------


def test_failed_tenant_creation_is_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    @contextmanager
    def connection() -> Any:
        yield object()

    monkeypatch.setattr(
        tenancy.tenants, "create", lambda conn, tid, *a: calls.append(f"row+{tid}") or TENANT
    )
    monkeypatch.setattr(tenancy.keys, "create", lambda conn, tid, *a: calls.append(f"key+{tid}"))
    monkeypatch.setattr(tenancy.tenants, "delete", lambda conn, tid: calls.append(f"row-{tid}"))
    monkeypatch.setattr(
        tenancy.vectors, "drop_tenant", lambda client, tid, model: calls.append("collection-")
    )

    def ensure_collection(client: object, tid: str, model: str, dim: int) -> None:
        calls.append(f"collection+{dim}")
        raise RuntimeError("Qdrant is down")

    monkeypatch.setattr(tenancy.vectors, "ensure_tenant_collection", ensure_collection)
    stores = SimpleNamespace(
        db=SimpleNamespace(connection=connection),
        qdrant=object(),
        blobs=SimpleNamespace(delete_tenant=lambda tid: calls.append("blobs-")),
        cache=SimpleNamespace(invalidate=lambda tid: calls.append("cache-")),
    )
    spec = SimpleNamespace(name="m", dimension=8)
    with pytest.raises(RuntimeError, match="Qdrant"):
        tenancy.create_tenant(stores, spec, "acme", "Acme", Limits())  # type: ignore[arg-type]
    assert calls == [
        "row+acme",
        "key+acme",
        "collection-",  # leftovers of an earlier tenant with this id
        "collection+8",
        "row-acme",  # undone; nothing else was written
    ]
