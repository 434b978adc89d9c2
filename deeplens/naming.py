"""Tenant ids, the seeds' collection naming, and point ids."""

from __future__ import annotations

import re
import time
import uuid

TENANT_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class InvalidTenantId(ValueError):
    pass


def validate_tenant_id(tenant_id: str) -> str:
    if not TENANT_ID_RE.fullmatch(tenant_id):
        raise InvalidTenantId(
            f"invalid tenant id {tenant_id!r}: use 1-63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return tenant_id


def collection_alias(tenant_id: str, model: str) -> str:
    """The name clients and the API use: ``tenant_{tenantId}_{model}_vectors`` (from the seeds)."""
    return f"tenant_{tenant_id}_{model}_vectors"


def physical_collection(tenant_id: str, model: str, version: int | None = None) -> str:
    """A versioned collection behind the alias; a reindex builds a new one and swaps the alias."""
    return f"{collection_alias(tenant_id, model)}_v{version or time.time_ns() // 1_000_000}"


def point_id(image_id: uuid.UUID | str) -> str:
    """Point ids are the image ids, so every upsert of an image is idempotent."""
    return str(uuid.UUID(str(image_id)))
