"""API keys to identities (tenant, key id, limits), cached in-process so that requests don't ask
Postgres every time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from deeplens.catalog.keys import Identity
from deeplens.keys import hash_key

DEFAULT_TTL = 30.0
MAX_ENTRIES = 10_000


class TenantKeys:
    """`lookup(api_key)` → the key's identity or None; hits are remembered for `ttl` seconds.

    Unknown keys are not cached (a key that starts to exist works at once). A tenant whose key
    is revoked, whose limits change or which is deleted is forgotten by every API process as
    soon as the catalog's notification arrives (`forget_tenant`), and within `ttl` at worst.
    """

    def __init__(self, load: Callable[[str], Identity | None], ttl: float = DEFAULT_TTL) -> None:
        self._load = load
        self._ttl = ttl
        self._entries: dict[str, tuple[Identity, float]] = {}
        self._lock = threading.Lock()

    def cached(self, api_key: str) -> Identity | None:
        """The key's identity if it is remembered (no I/O: safe on the event loop), else None."""
        with self._lock:
            entry = self._entries.get(hash_key(api_key))
        return entry[0] if entry is not None and entry[1] > time.monotonic() else None

    def lookup(self, api_key: str) -> Identity | None:
        if (identity := self.cached(api_key)) is not None:
            return identity
        digest = hash_key(api_key)
        now = time.monotonic()
        identity = self._load(digest)
        with self._lock:
            if identity is None:
                self._entries.pop(digest, None)
            else:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                self._entries[digest] = (identity, now + self._ttl)
        return identity

    def forget_tenant(self, tenant_id: str) -> None:
        with self._lock:
            for digest in [
                d for d, (i, _) in self._entries.items() if i.tenant.tenant_id == tenant_id
            ]:
                del self._entries[digest]
