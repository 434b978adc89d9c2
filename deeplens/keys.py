"""Tenant API keys: random, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "dlk_"


def new_api_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()
