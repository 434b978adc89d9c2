"""What the reconciler needs to know about runs and collections, beyond Dagster's own records.

- Heartbeats: a run worker writes one every few seconds while it runs. A run whose heartbeat
  stopped (worker killed, hung, lost with its node, or the whole stack restarted under it) is
  found by the reconciler however the run was launched.
- Run outcomes: how each run that beat ended, recorded as the reconciler clears its heartbeat
  (what /metrics reports of runs: their workers are not scraped).
- Retired collections: the physical collection a reindex replaced, kept for a grace period so
  that the tenant can be rolled back to it, then dropped; and a rebuilt one that failed its
  retrieval check, kept as long for a look.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

OUTCOMES_KEPT = "7 days"


@dataclass(frozen=True)
class Heartbeat:
    run_id: str
    tenant_id: str | None
    host: str
    pid: int
    started_at: datetime
    beat_at: datetime
    silent_seconds: float


def beat(conn: psycopg.Connection, run_id: str, tenant_id: str | None, host: str, pid: int) -> None:
    conn.execute(
        "INSERT INTO deeplens.run_heartbeats (run_id, tenant_id, host, pid) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (run_id) DO UPDATE SET beat_at = now(), host = EXCLUDED.host,"
        " pid = EXCLUDED.pid",
        (run_id, tenant_id, host, pid),
    )


def end(conn: psycopg.Connection, run_id: str, outcome: str) -> None:
    """Clear the heartbeat of a run that ended, recording how it ended (`success`, `failure`,
    `canceled`, or `lost` when Dagster has no record of it) for /metrics; outcomes are kept
    for `OUTCOMES_KEPT`."""
    conn.execute(
        "WITH ended AS (DELETE FROM deeplens.run_heartbeats WHERE run_id = %s"
        " RETURNING run_id, tenant_id, started_at)"
        " INSERT INTO deeplens.run_outcomes (run_id, tenant_id, outcome, started_at)"
        " SELECT run_id, tenant_id, %s, started_at FROM ended ON CONFLICT (run_id) DO NOTHING",
        (run_id, outcome),
    )
    conn.execute(
        "DELETE FROM deeplens.run_outcomes WHERE ended_at < now() - %s::interval", (OUTCOMES_KEPT,)
    )


def heartbeats(conn: psycopg.Connection) -> dict[str, Heartbeat]:
    with conn.cursor(row_factory=class_row(Heartbeat)) as cur:
        cur.execute(
            "SELECT run_id, tenant_id, host, pid, started_at, beat_at,"
            " extract(epoch FROM now() - beat_at)::float8 AS silent_seconds"
            " FROM deeplens.run_heartbeats"
        )
        return {h.run_id: h for h in cur.fetchall()}


@dataclass(frozen=True)
class Retired:
    collection: str
    tenant_id: str
    alias: str
    replaced_by: str
    retired_at: datetime


def retire(
    conn: psycopg.Connection, tenant_id: str, alias: str, collection: str, replaced_by: str
) -> None:
    conn.execute(
        "INSERT INTO deeplens.retired_collections (collection, tenant_id, alias, replaced_by)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (collection) DO UPDATE"
        " SET replaced_by = EXCLUDED.replaced_by, retired_at = now()",
        (collection, tenant_id, alias, replaced_by),
    )


def expired(conn: psycopg.Connection, grace_seconds: float) -> list[Retired]:
    with conn.cursor(row_factory=class_row(Retired)) as cur:
        cur.execute(
            "SELECT collection, tenant_id, alias, replaced_by, retired_at"
            " FROM deeplens.retired_collections"
            " WHERE retired_at < now() - make_interval(secs => %s)",
            (grace_seconds,),
        )
        return cur.fetchall()


# `replaced_by` of a rebuilt collection that failed its check (kept a while, never served).
REJECTED = "(rejected)"


def latest_retired(conn: psycopg.Connection, alias: str) -> Retired | None:
    """The collection the alias served before its last swap (a rollback's target)."""
    with conn.cursor(row_factory=class_row(Retired)) as cur:
        cur.execute(
            "SELECT collection, tenant_id, alias, replaced_by, retired_at"
            " FROM deeplens.retired_collections WHERE alias = %s AND replaced_by <> %s"
            " ORDER BY retired_at DESC LIMIT 1",
            (alias, REJECTED),
        )
        return cur.fetchone()


def forget(conn: psycopg.Connection, collection: str) -> None:
    conn.execute("DELETE FROM deeplens.retired_collections WHERE collection = %s", (collection,))
