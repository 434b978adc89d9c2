"""The search cache in Redis: short-lived answers, invalidated per tenant by a generation counter.

A key names the tenant, the tenant's current generation, what was asked (the sha256 of the query
bytes or a stored image id) and how (top-K, filter, threshold, offset). Bumping
``deeplens:gen:{tenant}`` (the outbox relay does when it publishes ``processing.completed``; an
image's deletion does) makes every older answer unreachable; they expire.
The cache is an optimisation: when Redis fails, searches go on without it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

log = logging.getLogger(__name__)

DEFAULT_TTL = 60


def generation_key(tenant_id: str) -> str:
    return f"deeplens:gen:{tenant_id}"


class SearchCache:
    def __init__(self, client: redis.Redis, ttl: int = DEFAULT_TTL) -> None:
        self._redis = client
        self._ttl = ttl

    def key(self, tenant_id: str, kind: str, ident: str, asked: str) -> str | None:
        """The cache key for a query (`asked`: what else it asks, as a short string), or None
        when Redis cannot be reached."""
        try:
            generation = self._redis.get(generation_key(tenant_id))
        except redis.RedisError as exc:
            log.warning("search cache unavailable: %s", exc)
            return None
        gen = generation.decode() if isinstance(generation, bytes) else "0"
        return f"deeplens:search:{tenant_id}:{gen}:{kind}:{ident}:{asked}"

    def get(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        try:
            raw = self._redis.get(key)
        except redis.RedisError as exc:
            log.warning("search cache read failed: %s", exc)
            return None
        return dict(json.loads(raw)) if isinstance(raw, bytes) else None

    def put(self, key: str | None, value: dict[str, Any]) -> None:
        if key is None:
            return
        try:
            self._redis.set(key, json.dumps(value, separators=(",", ":")), ex=self._ttl)
        except redis.RedisError as exc:
            log.warning("search cache write failed: %s", exc)

    def ping(self) -> None:
        """Raise if Redis does not answer."""
        self._redis.ping()

    def close(self) -> None:
        self._redis.close()

    def invalidate(self, tenant_id: str) -> None:
        """Make every cached answer of the tenant stale."""
        try:
            self._redis.incr(generation_key(tenant_id))
        except redis.RedisError as exc:
            log.warning("could not invalidate the search cache of %s: %s", tenant_id, exc)
