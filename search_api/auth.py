"""API keys to tenants, cached in-process so that uploads don't ask Postgres on every request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from deeplens.catalog.tenants import Tenant
from deeplens.keys import hash_key

DEFAULT_TTL = 30.0
MAX_ENTRIES = 10_000


class TenantKeys:
    """`lookup(api_key)` → the key's tenant or None; hits are remembered for `ttl` seconds.

    Unknown keys are not cached (a key that starts to exist works at once); a deleted tenant is
    forgotten at once in this process and within `ttl` elsewhere.
    """

    def __init__(self, load: Callable[[str], Tenant | None], ttl: float = DEFAULT_TTL) -> None:
        self._load = load
        self._ttl = ttl
        self._entries: dict[str, tuple[Tenant, float]] = {}
        self._lock = threading.Lock()

    def cached(self, api_key: str) -> Tenant | None:
        """The key's tenant if it is remembered (no I/O: safe on the event loop), else None."""
        with self._lock:
            entry = self._entries.get(hash_key(api_key))
        return entry[0] if entry is not None and entry[1] > time.monotonic() else None

    def lookup(self, api_key: str) -> Tenant | None:
        if (tenant := self.cached(api_key)) is not None:
            return tenant
        digest = hash_key(api_key)
        now = time.monotonic()
        tenant = self._load(digest)
        with self._lock:
            if tenant is None:
                self._entries.pop(digest, None)
            else:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                self._entries[digest] = (tenant, now + self._ttl)
        return tenant

    def forget_tenant(self, tenant_id: str) -> None:
        with self._lock:
            for digest in [d for d, (t, _) in self._entries.items() if t.tenant_id == tenant_id]:
                del self._entries[digest]
