"""Tenant rows, with their limits and usage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    model: str
    collection_alias: str
    created_at: datetime


TENANT_COLUMNS = "tenant_id, name, model, collection_alias, created_at"
_COLUMNS = TENANT_COLUMNS


@dataclass(frozen=True)
class Limits:
    """What a tenant may do; None means no limit. Rates are requests per second, shared by all
    the tenant's keys; quotas bound what it stores."""

    uploads_per_second: int | None = None
    searches_per_second: int | None = None
    reads_per_second: int | None = None
    max_images: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class Usage:
    images: int
    bytes: int


_LIMIT_COLUMNS = "uploads_per_second, searches_per_second, reads_per_second, max_images, max_bytes"


class TenantExists(Exception):
    pass


def create(
    conn: psycopg.Connection,
    tenant_id: str,
    name: str,
    model: str,
    alias: str,
    limits: Limits | None = None,
) -> Tenant:
    with conn.cursor(row_factory=class_row(Tenant)) as cur:
        cur.execute(
            f"INSERT INTO deeplens.tenants (tenant_id, name, model, collection_alias,"
            f" {_LIMIT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            f" ON CONFLICT (tenant_id) DO NOTHING RETURNING {_COLUMNS}",
            (tenant_id, name, model, alias, *_limit_values(limits or Limits())),
        )
        row = cur.fetchone()
    if row is None:
        raise TenantExists(tenant_id)
    return row


def get(conn: psycopg.Connection, tenant_id: str) -> Tenant | None:
    with conn.cursor(row_factory=class_row(Tenant)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM deeplens.tenants WHERE tenant_id = %s", (tenant_id,))
        return cur.fetchone()


def limits_and_usage(conn: psycopg.Connection, tenant_id: str) -> tuple[Limits, Usage] | None:
    row = conn.execute(
        f"SELECT {_LIMIT_COLUMNS}, image_count, byte_count FROM deeplens.tenants"
        " WHERE tenant_id = %s",
        (tenant_id,),
    ).fetchone()
    if row is None:
        return None
    return Limits(*row[:5]), Usage(images=row[5], bytes=row[6])


def set_limits(conn: psycopg.Connection, tenant_id: str, limits: Limits) -> bool:
    """Replace the tenant's limits (every API process hears of it through deeplens_tenant)."""
    assignments = ", ".join(f"{c.strip()} = %s" for c in _LIMIT_COLUMNS.split(","))
    cur = conn.execute(
        f"UPDATE deeplens.tenants SET {assignments} WHERE tenant_id = %s",
        (*_limit_values(limits), tenant_id),
    )
    return cur.rowcount > 0


def _limit_values(limits: Limits) -> tuple[int | None, ...]:
    return (
        limits.uploads_per_second,
        limits.searches_per_second,
        limits.reads_per_second,
        limits.max_images,
        limits.max_bytes,
    )


QUOTA_EXCEEDED = "DLQ01"  # the SQLSTATE an insert over the tenant's quota raises


def list_all(conn: psycopg.Connection) -> list[Tenant]:
    with conn.cursor(row_factory=class_row(Tenant)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM deeplens.tenants ORDER BY tenant_id")
        return cur.fetchall()


def empty(conn: psycopg.Connection) -> dict[str, str]:
    """The tenants without an image, with the model each serves."""
    rows = conn.execute("SELECT tenant_id, model FROM deeplens.tenants WHERE image_count = 0")
    return {r[0]: r[1] for r in rows.fetchall()}


def delete(conn: psycopg.Connection, tenant_id: str) -> bool:
    """Delete the tenant and, by cascade, its images and embeddings: one statement that may
    take a while for a large tenant, so free of the API's statement timeout."""
    with conn.transaction():
        conn.execute("SET LOCAL statement_timeout = 0")
        cur = conn.execute("DELETE FROM deeplens.tenants WHERE tenant_id = %s", (tenant_id,))
    return cur.rowcount > 0
