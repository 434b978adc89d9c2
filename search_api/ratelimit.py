"""Request rates, counted in Redis so that every API process shares them.

Each count is a sliding window of one second (`limits`' sliding-window counter: two Redis keys
and an atomic script per hit). Redis is optional: when it fails or is slow (past
``DEEPLENS_REDIS_TIMEOUT``) the breaker opens and, for ``DEEPLENS_REDIS_RETRY_SECONDS``, the
limits are counted in this process alone: the API fails open, still bounded per process, and
says so in the log and in `fail_open_hits`. A frozen Redis costs one request its timeout per
retry period, not every request.

A refusal is remembered in the process until its window resets: a client flooding past its
rate is answered 429 without another Redis call, so the flood costs the machine little.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

log = logging.getLogger(__name__)

BREAKER = "redis-rate-limits"
MAX_REMEMBERED = 10_000  # refusals remembered at once (each for about a second)


@dataclass(frozen=True)
class Verdict:
    """The answer for one request: allowed or not, and, for a refusal, what the ``RateLimit-*``
    headers say (an allowed request costs one Redis call; its window is not read back)."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w=1",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class RateLimiter:
    """`await check(name, per_second)`: may one more request counted under `name` go now?"""

    def __init__(
        self, redis_url: str | None, timeout: float = 0.1, retry_seconds: float = 5.0
    ) -> None:
        self._shared: SlidingWindowCounterRateLimiter | None = None
        if redis_url:
            storage = RedisStorage(
                _async_uri(redis_url),
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix="deeplens:rate",
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
            self._shared = SlidingWindowCounterRateLimiter(storage)
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._breakers = AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=retry_seconds)
        self._refused: dict[str, tuple[float, Verdict]] = {}
        self.fail_open_hits = 0

    def refused(self, name: str) -> Verdict | None:
        """The refusal this process remembers for `name`, if its window has not reset yet."""
        remembered = self._refused.get(name)
        if remembered is None:
            return None
        if time.monotonic() < remembered[0]:
            return remembered[1]
        self._refused.pop(name, None)
        return None

    async def check(self, name: str, per_second: int) -> Verdict:
        refused = self.refused(name)
        if refused is not None and refused.limit == per_second:
            return refused
        verdict = await self._count(name, per_second)
        if not verdict.allowed:
            if len(self._refused) > MAX_REMEMBERED:
                self._refused.clear()
            self._refused[name] = (time.monotonic() + verdict.reset_seconds, verdict)
        return verdict

    async def _count(self, name: str, per_second: int) -> Verdict:
        item = RateLimitItemPerSecond(per_second)
        if self._shared is not None:
            try:
                breaker = await self._breakers.get_breaker(BREAKER)
                async with breaker:
                    return await _verdict(self._shared, item, name)
            except OpenedState:
                pass
            except (StorageError, OSError, TimeoutError) as exc:
                log.warning("rate limits: Redis failed (%s); counting in this process", exc)
        self.fail_open_hits += self._shared is not None
        return await _verdict(self._local, item, name)


async def _verdict(
    limiter: SlidingWindowCounterRateLimiter, item: RateLimitItemPerSecond, name: str
) -> Verdict:
    if await limiter.hit(item, name):
        return Verdict(True, item.amount, 0, 0)
    stats = await limiter.get_window_stats(item, name)
    reset = max(1, math.ceil(stats.reset_time - time.time()))
    return Verdict(False, item.amount, stats.remaining, reset)


def _async_uri(redis_url: str) -> str:
    """`limits` picks its async storage by the ``async+`` scheme prefix."""
    scheme = urlsplit(redis_url).scheme
    return f"async+{redis_url}" if scheme in ("redis", "rediss", "unix") else redis_url
