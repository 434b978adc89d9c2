"""Tenant rows."""

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


_COLUMNS = "tenant_id, name, model, collection_alias, created_at"


class TenantExists(Exception):
    pass


def create(
    conn: psycopg.Connection, tenant_id: str, name: str, key_hash: str, model: str, alias: str
) -> Tenant:
    with conn.cursor(row_factory=class_row(Tenant)) as cur:
        cur.execute(
            f"INSERT INTO deeplens.tenants (tenant_id, name, api_key_hash, model, collection_alias)"
            f" VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id) DO NOTHING RETURNING {_COLUMNS}",
            (tenant_id, name, key_hash, model, alias),
        )
        row = cur.fetchone()
    if row is None:
        raise TenantExists(tenant_id)
    return row


def get(conn: psycopg.Connection, tenant_id: str) -> Tenant | None:
    with conn.cursor(row_factory=class_row(Tenant)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM deeplens.tenants WHERE tenant_id = %s", (tenant_id,))
        return cur.fetchone()


def by_key_hash(conn: psycopg.Connection, key_hash: str) -> Tenant | None:
    with conn.cursor(row_factory=class_row(Tenant)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM deeplens.tenants WHERE api_key_hash = %s", (key_hash,))
        return cur.fetchone()


def list_all(conn: psycopg.Connection) -> list[Tenant]:
    with conn.cursor(row_factory=class_row(Tenant)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM deeplens.tenants ORDER BY tenant_id")
        return cur.fetchall()


def delete(conn: psycopg.Connection, tenant_id: str) -> bool:
    """Delete the tenant and, by cascade, its images and embeddings."""
    cur = conn.execute("DELETE FROM deeplens.tenants WHERE tenant_id = %s", (tenant_id,))
    return cur.rowcount > 0
