"""A tenant's models: the indexes it holds, one per model, and which one serves search.

States of a tenant's model:
- `pending`: added, its index not built yet (a rebuild of the model's assets builds it);
- `ready`: its index is built and verified; sensor batches keep it up to date;
- `rejected`: its last build failed the retrieval check (`last_check` says why); rebuild it to
  try again;
- `retired`: its index and stored vectors are gone.

The serving model is `tenants.model` (its alias `tenants.collection_alias`); switching it is one
update, announced on deeplens_tenant so that every API process takes it up at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

PENDING, READY, REJECTED, RETIRED = "pending", "ready", "rejected", "retired"
# States whose index sensor batches keep up to date (a pending model's first build takes every
# image there is when it runs).
KEPT_UP = (READY,)


@dataclass(frozen=True)
class TenantModel:
    tenant_id: str
    model: str
    alias: str
    state: str
    model_version: str | None
    collection: str | None
    candidate: str | None
    serve_when_verified: bool
    last_check: dict[str, Any] | None
    added_at: datetime
    built_at: datetime | None
    serving: bool


_COLUMNS = (
    "m.tenant_id, m.model, m.alias, m.state, m.model_version, m.collection, m.candidate,"
    " m.serve_when_verified, m.last_check, m.added_at, m.built_at, t.model = m.model AS serving"
)
_FROM = "deeplens.tenant_models m JOIN deeplens.tenants t USING (tenant_id)"


def of_tenant(conn: psycopg.Connection, tenant_id: str) -> list[TenantModel]:
    with conn.cursor(row_factory=class_row(TenantModel)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE m.tenant_id = %s ORDER BY m.added_at, m.model",
            (tenant_id,),
        )
        return cur.fetchall()


def get(conn: psycopg.Connection, tenant_id: str, model: str) -> TenantModel | None:
    with conn.cursor(row_factory=class_row(TenantModel)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE m.tenant_id = %s AND m.model = %s",
            (tenant_id, model),
        )
        return cur.fetchone()


def add(
    conn: psycopg.Connection,
    tenant_id: str,
    model: str,
    alias: str,
    state: str = PENDING,
    serve_when_verified: bool = False,
) -> TenantModel | None:
    """Add the model to the tenant (a retired one comes back as pending); None if the tenant
    already holds it."""
    conn.execute(
        "INSERT INTO deeplens.tenant_models (tenant_id, model, alias, state, serve_when_verified)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id, model) DO UPDATE"
        " SET state = EXCLUDED.state, serve_when_verified = EXCLUDED.serve_when_verified,"
        " added_at = now(), model_version = NULL, collection = NULL, last_check = NULL"
        " WHERE tenant_models.state = 'retired'",
        (tenant_id, model, alias, state, serve_when_verified),
    )
    found = get(conn, tenant_id, model)
    return found if found is not None and found.state == state else None


def built(
    conn: psycopg.Connection,
    tenant_id: str,
    model: str,
    model_version: str,
    collection: str,
    check: dict[str, Any] | None,
) -> None:
    """The model's index was (re)built with `model_version` and verified: it is ready."""
    conn.execute(
        "UPDATE deeplens.tenant_models SET state = 'ready', model_version = %s, collection = %s,"
        " candidate = NULL,"
        " last_check = coalesce(%s, last_check), built_at = now()"
        " WHERE tenant_id = %s AND model = %s",
        (model_version, collection, _json(check), tenant_id, model),
    )


def candidate(conn: psycopg.Connection, tenant_id: str, model: str, collection: str | None) -> None:
    """A rebuild built `collection` for the model; it is swapped in once verified."""
    conn.execute(
        "UPDATE deeplens.tenant_models SET candidate = %s WHERE tenant_id = %s AND model = %s",
        (collection, tenant_id, model),
    )


def indexed_into(conn: psycopg.Connection, tenant_id: str, model: str, collection: str) -> None:
    """The model's alias points at `collection` (a sensor batch's first index, a rollback)."""
    conn.execute(
        "UPDATE deeplens.tenant_models SET collection = %s WHERE tenant_id = %s AND model = %s",
        (collection, tenant_id, model),
    )


def record_check(
    conn: psycopg.Connection, tenant_id: str, model: str, check: dict[str, Any]
) -> None:
    """The retrieval check of the model's new index passed (`serving_index` reads it)."""
    conn.execute(
        "UPDATE deeplens.tenant_models SET last_check = %s WHERE tenant_id = %s AND model = %s",
        (_json(check), tenant_id, model),
    )


def reject(conn: psycopg.Connection, tenant_id: str, model: str, check: dict[str, Any]) -> None:
    """The model's new index failed its retrieval check; a model that never had an index is
    `rejected`, one that has keeps serving what it had."""
    conn.execute(
        "UPDATE deeplens.tenant_models SET last_check = %s, candidate = NULL,"
        " state = CASE WHEN state = 'ready' THEN 'ready' ELSE 'rejected' END"
        " WHERE tenant_id = %s AND model = %s",
        (_json(check), tenant_id, model),
    )


def serve(conn: psycopg.Connection, tenant_id: str, model: str) -> bool:
    """Make a ready model the tenant's serving model; False if it is not ready."""
    cur = conn.execute(
        "UPDATE deeplens.tenants t SET model = m.model, collection_alias = m.alias"
        " FROM deeplens.tenant_models m WHERE t.tenant_id = %s AND m.tenant_id = t.tenant_id"
        " AND m.model = %s AND m.state = 'ready'",
        (tenant_id, model),
    )
    if cur.rowcount:
        conn.execute(
            "UPDATE deeplens.tenant_models SET serve_when_verified = false"
            " WHERE tenant_id = %s AND model = %s",
            (tenant_id, model),
        )
    return cur.rowcount > 0


def retire(conn: psycopg.Connection, tenant_id: str, model: str) -> None:
    conn.execute(
        "UPDATE deeplens.tenant_models SET state = 'retired', collection = NULL,"
        " model_version = NULL, serve_when_verified = false"
        " WHERE tenant_id = %s AND model = %s",
        (tenant_id, model),
    )


def kept_up(conn: psycopg.Connection, tenant_id: str) -> list[str]:
    """The models whose index sensor batches update: the serving one and the other ready ones."""
    rows = conn.execute(
        "SELECT m.model FROM deeplens.tenant_models m JOIN deeplens.tenants t USING (tenant_id)"
        " WHERE m.tenant_id = %s AND (m.state = ANY(%s) OR m.model = t.model)"
        " ORDER BY m.model = t.model DESC, m.model",
        (tenant_id, list(KEPT_UP)),
    ).fetchall()
    return [r[0] for r in rows]


def _json(value: dict[str, Any] | None) -> Jsonb | None:
    return Jsonb(value) if value is not None else None
