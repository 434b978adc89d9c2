"""A tenant's API keys: stored as SHA-256 hashes, each with a public id and a label.

The secret is shown once, when the key is made. A key is revoked by deleting its row; a trigger
announces the tenant on ``deeplens_tenant`` so that every API process drops its cached keys.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from deeplens.catalog.tenants import TENANT_COLUMNS, Limits, Tenant


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant_id: str
    label: str
    read_only: bool
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class Identity:
    """Who an API key speaks for: the tenant, the key (never its secret) and the tenant's
    limits at the time it was looked up."""

    tenant: Tenant
    key_id: str
    read_only: bool
    limits: Limits


_COLUMNS = "key_id, tenant_id, label, read_only, created_at, last_used_at"


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def create(
    conn: psycopg.Connection, tenant_id: str, key_hash: str, label: str, read_only: bool = False
) -> ApiKey:
    with conn.cursor(row_factory=class_row(ApiKey)) as cur:
        cur.execute(
            "INSERT INTO deeplens.api_keys (key_id, tenant_id, key_hash, label, read_only)"
            f" VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (new_key_id(), tenant_id, key_hash, label, read_only),
        )
        row = cur.fetchone()
    assert row is not None
    return row


def list_for(conn: psycopg.Connection, tenant_id: str) -> list[ApiKey]:
    with conn.cursor(row_factory=class_row(ApiKey)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM deeplens.api_keys WHERE tenant_id = %s ORDER BY created_at",
            (tenant_id,),
        )
        return cur.fetchall()


def revoke(conn: psycopg.Connection, tenant_id: str, key_id: str) -> bool:
    cur = conn.execute(
        "DELETE FROM deeplens.api_keys WHERE tenant_id = %s AND key_id = %s", (tenant_id, key_id)
    )
    return cur.rowcount > 0


def identify(conn: psycopg.Connection, key_hash: str) -> Identity | None:
    """The identity behind a key's hash, or None for an unknown (or revoked) key."""
    tenant_columns = ", ".join(f"t.{c.strip()}" for c in TENANT_COLUMNS.split(","))
    row = conn.execute(
        f"SELECT {tenant_columns}, k.key_id, k.read_only, t.uploads_per_second,"
        " t.searches_per_second, t.reads_per_second, t.max_images, t.max_bytes"
        " FROM deeplens.api_keys k JOIN deeplens.tenants t USING (tenant_id)"
        " WHERE k.key_hash = %s",
        (key_hash,),
    ).fetchone()
    if row is None:
        return None
    width = len(TENANT_COLUMNS.split(","))
    return Identity(
        tenant=Tenant(*row[:width]),
        key_id=row[width],
        read_only=row[width + 1],
        limits=Limits(*row[width + 2 :]),
    )


def touch(conn: psycopg.Connection, key_ids: list[str]) -> None:
    """Record that these keys were used just now."""
    if key_ids:
        conn.execute(
            "UPDATE deeplens.api_keys SET last_used_at = now() WHERE key_id = ANY(%s)",
            (key_ids,),
        )
