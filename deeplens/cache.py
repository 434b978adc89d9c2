"""The search cache in Redis: short-lived answers, invalidated per tenant by a generation counter.

A key names the tenant, the tenant's current generation, what was asked (the sha256 of the query
bytes or a stored image id) and how (top-K, filter, threshold, offset). Bumping
``deeplens:gen:{tenant}`` (the outbox relay does when it publishes ``processing.completed``; an
image's deletion does) makes every older answer unreachable; they expire.
The cache is an optimisation: when Redis fails, searches go on without it. After a failure (a
Redis that is down, or frozen past its socket timeout) a breaker keeps every call away from it
for `retry_seconds`, so that a frozen Redis costs one request its timeout, not each request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from prometheus_client import Counter
from purgatory import SyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

log = logging.getLogger(__name__)

DEFAULT_TTL = 60
BREAKER = "redis-search-cache"

T = TypeVar("T")

LOOKUPS = Counter(
    "deeplens_search_cache_lookups_total",
    "Searches looked up in the cache: hit, miss, or unavailable (Redis down: not looked up).",
    ["result"],
)


def generation_key(tenant_id: str) -> str:
    return f"deeplens:gen:{tenant_id}"


class SearchCache:
    def __init__(
        self, client: redis.Redis, ttl: int = DEFAULT_TTL, retry_seconds: float = 5.0
    ) -> None:
        self._redis = client
        self._ttl = ttl
        self._breakers = SyncCircuitBreakerFactory(default_threshold=1, default_ttl=retry_seconds)

    def _call(self, what: str, call: Callable[[], T]) -> T | None:
        """`call()`'s answer, or None when Redis fails now or failed within `retry_seconds`."""
        try:
            with self._breakers.get_breaker(BREAKER):
                return call()
        except OpenedState:
            return None
        except redis.RedisError as exc:
            log.warning("search cache: %s failed: %s", what, exc)
            return None

    def key(self, tenant_id: str, kind: str, ident: str, asked: str) -> str | None:
        """The cache key for a query (`asked`: what else it asks, as a short string), or None
        when Redis cannot be reached."""
        generation = self._call(
            "generation read", lambda: self._redis.get(generation_key(tenant_id))
        )
        if generation is None and not self._available():
            return None
        gen = generation.decode() if isinstance(generation, bytes) else "0"
        return f"deeplens:search:{tenant_id}:{gen}:{kind}:{ident}:{asked}"

    def get(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            LOOKUPS.labels("unavailable").inc()
            return None
        raw = self._call("read", lambda: self._redis.get(key))
        if isinstance(raw, bytes):
            LOOKUPS.labels("hit").inc()
            return dict(json.loads(raw))
        LOOKUPS.labels("miss" if self._available() else "unavailable").inc()
        return None

    def put(self, key: str | None, value: dict[str, Any]) -> None:
        if key is None:
            return
        encoded = json.dumps(value, separators=(",", ":"))
        self._call("write", lambda: self._redis.set(key, encoded, ex=self._ttl))

    def _available(self) -> bool:
        """Whether the last call reached Redis (the breaker is closed)."""
        return self._breakers.get_breaker(BREAKER).context.state == "closed"

    def ping(self) -> None:
        """Raise if Redis does not answer."""
        self._redis.ping()

    def close(self) -> None:
        self._redis.close()

    def invalidate(self, tenant_id: str) -> None:
        """Make every cached answer of the tenant stale.

        Not behind the breaker: a missed invalidation would serve stale answers for the cache's
        TTL, so each one is tried (the relay and admin calls, off the search path)."""
        try:
            self._redis.incr(generation_key(tenant_id))
        except redis.RedisError as exc:
            log.warning("could not invalidate the search cache of %s: %s", tenant_id, exc)
