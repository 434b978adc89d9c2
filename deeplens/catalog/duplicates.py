"""Duplicate groups of a tenant's images: vector hashes (exact tier), similarity edges (near
tier) and the groups computed from them (see `deeplens.duplicates`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg

TIERS = ("exact", "near")


@dataclass(frozen=True)
class Group:
    tier: str
    group_no: int
    image_ids: list[uuid.UUID]
    score: float


def ungrouped(conn: psycopg.Connection, tenant_id: str, limit: int) -> list[uuid.UUID]:
    """Completed images not yet looked at."""
    rows = conn.execute(
        "SELECT image_id FROM deeplens.images WHERE tenant_id = %s"
        " AND status = 'completed' AND grouped_at IS NULL ORDER BY uploaded_at LIMIT %s",
        (tenant_id, limit),
    ).fetchall()
    return [r[0] for r in rows]


def record(
    conn: psycopg.Connection,
    tenant_id: str,
    model: str,
    looked_at: list[uuid.UUID],
    edges: list[tuple[uuid.UUID, uuid.UUID, float]],
) -> None:
    """The looked-at images' vector hashes and similarity edges, in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "UPDATE deeplens.images i SET grouped_at = now(),"
            " vector_sha256 = (SELECT encode(sha256(e.vector), 'hex') FROM deeplens.embeddings e"
            "   WHERE e.image_id = i.image_id AND e.model = %s ORDER BY e.created_at DESC LIMIT 1)"
            " WHERE i.image_id = ANY(%s)",
            (model, looked_at),
        )
        cur.executemany(
            "INSERT INTO deeplens.duplicate_edges (tenant_id, a, b, score)"
            " SELECT %s, %s, %s, %s WHERE EXISTS (SELECT FROM deeplens.images WHERE image_id = %s)"
            " AND EXISTS (SELECT FROM deeplens.images WHERE image_id = %s)"
            " ON CONFLICT (a, b) DO UPDATE SET score = EXCLUDED.score",
            [(tenant_id, a, b, score, a, b) for a, b, score in edges],
        )


def exact_groups(conn: psycopg.Connection, tenant_id: str) -> list[list[uuid.UUID]]:
    rows = conn.execute(
        "SELECT array_agg(image_id ORDER BY uploaded_at) FROM deeplens.images"
        " WHERE tenant_id = %s AND vector_sha256 IS NOT NULL AND status = 'completed'"
        " GROUP BY vector_sha256 HAVING count(*) > 1",
        (tenant_id,),
    ).fetchall()
    return [list(r[0]) for r in rows]


def edges(
    conn: psycopg.Connection, tenant_id: str, threshold: float
) -> list[tuple[uuid.UUID, uuid.UUID, float]]:
    rows = conn.execute(
        "SELECT e.a, e.b, e.score FROM deeplens.duplicate_edges e"
        " JOIN deeplens.images ia ON ia.image_id = e.a JOIN deeplens.images ib ON ib.image_id = e.b"
        " WHERE e.tenant_id = %s AND e.score >= %s"
        " AND ia.status = 'completed' AND ib.status = 'completed'",
        (tenant_id, threshold),
    ).fetchall()
    return [(r[0], r[1], float(r[2])) for r in rows]


def replace_groups(conn: psycopg.Connection, tenant_id: str, groups: list[Group]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM deeplens.duplicate_groups WHERE tenant_id = %s", (tenant_id,))
        cur.executemany(
            "INSERT INTO deeplens.duplicate_groups"
            " (tenant_id, tier, group_no, image_id, score, size) VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (tenant_id, g.tier, g.group_no, image_id, g.score, len(g.image_ids))
                for g in groups
                for image_id in g.image_ids
            ],
        )


def page(
    conn: psycopg.Connection, tenant_id: str, tier: str, after: int, limit: int
) -> list[Group]:
    """Groups of the tier, largest first, from group number `after` on; members deleted since
    the groups were computed are left out, and a group left with one member is no group."""
    rows = conn.execute(
        "SELECT group_no, array_agg(d.image_id ORDER BY i.uploaded_at), max(d.score)"
        " FROM deeplens.duplicate_groups d JOIN deeplens.images i USING (image_id)"
        " WHERE d.tenant_id = %s AND d.tier = %s AND d.group_no >= %s"
        " AND i.status <> 'deleting'"
        " GROUP BY group_no HAVING count(*) > 1 ORDER BY group_no LIMIT %s",
        (tenant_id, tier, after, limit),
    ).fetchall()
    return [Group(tier, int(r[0]), list(r[1]), float(r[2])) for r in rows]


def set_threshold(conn: psycopg.Connection, tenant_id: str, threshold: float | None) -> None:
    """A new near-duplicate threshold: every image is looked at again (edges are kept only above
    the threshold they were found with)."""
    with conn.transaction():
        conn.execute(
            "UPDATE deeplens.tenants SET near_duplicate_threshold = %s WHERE tenant_id = %s",
            (threshold, tenant_id),
        )
        conn.execute("DELETE FROM deeplens.duplicate_edges WHERE tenant_id = %s", (tenant_id,))
        conn.execute(
            "UPDATE deeplens.images SET grouped_at = NULL WHERE tenant_id = %s", (tenant_id,)
        )


def threshold(conn: psycopg.Connection, tenant_id: str) -> float | None:
    row = conn.execute(
        "SELECT near_duplicate_threshold FROM deeplens.tenants WHERE tenant_id = %s", (tenant_id,)
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def tenants_with_ungrouped(conn: psycopg.Connection, quiet_seconds: float) -> list[str]:
    """Tenants with images not yet looked at, and no upload for `quiet_seconds`."""
    rows = conn.execute(
        "SELECT tenant_id FROM deeplens.images GROUP BY tenant_id"
        " HAVING bool_or(status = 'completed' AND grouped_at IS NULL)"
        " AND max(uploaded_at) < now() - make_interval(secs => %s)",
        (quiet_seconds,),
    ).fetchall()
    return [str(r[0]) for r in rows]
