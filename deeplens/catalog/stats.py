"""The pipeline's figures, read from the catalog for /metrics: images by tenant and status, how
long the backlog has waited, the outbox, how long recent uploads took to become searchable, and
the outcomes of recent runs. Run workers are short-lived processes that nothing scrapes: what
they did is in the catalog, so it is read from there: five aggregates, over indexes or small
tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from deeplens.catalog.retries import WAITING

QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class TenantImages:
    tenant_id: str
    status: str
    images: int
    # Since the oldest of them was uploaded.
    oldest_seconds: float


@dataclass
class PipelineStats:
    images: list[TenantImages] = field(default_factory=list)
    outbox_pending: int = 0
    outbox_oldest_seconds: float = 0.0
    # Images that became searchable within the window, and their upload-to-searchable times.
    searchable: int = 0
    searchable_seconds_sum: float = 0.0
    searchable_quantiles: dict[float, float] = field(default_factory=dict)
    runs_ended: dict[str, int] = field(default_factory=dict)
    runs_in_progress: int = 0

    def backlog(self) -> dict[str, tuple[int, float]]:
        """Per tenant: images accepted and not yet searchable or failed, and how long the
        oldest of them has waited since its upload."""
        out: dict[str, tuple[int, float]] = {}
        for row in self.images:
            if row.status in WAITING:
                count, oldest = out.get(row.tenant_id, (0, 0.0))
                out[row.tenant_id] = (count + row.images, max(oldest, row.oldest_seconds))
        return out


def read(conn: psycopg.Connection, window_seconds: float) -> PipelineStats:
    stats = PipelineStats()
    for tenant_id, status, count, oldest in conn.execute(
        "SELECT tenant_id, status, count(*), extract(epoch FROM now() - min(uploaded_at))::float8"
        " FROM deeplens.images GROUP BY tenant_id, status"
    ).fetchall():
        stats.images.append(TenantImages(tenant_id, status, int(count), float(oldest)))
    row = conn.execute(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)"
        " FROM deeplens.outbox WHERE sent_at IS NULL"
    ).fetchone()
    if row is not None:
        stats.outbox_pending, stats.outbox_oldest_seconds = int(row[0]), float(row[1])
    row = conn.execute(
        "SELECT count(*), coalesce(sum(d), 0), percentile_cont(%s::float8[]) WITHIN GROUP"
        " (ORDER BY d) FROM (SELECT extract(epoch FROM indexed_at - uploaded_at)::float8 AS d"
        " FROM deeplens.images WHERE indexed_at > now() - make_interval(secs => %s)) recent",
        (list(QUANTILES), window_seconds),
    ).fetchone()
    if row is not None:
        stats.searchable, stats.searchable_seconds_sum = int(row[0]), float(row[1])
        stats.searchable_quantiles = dict(zip(QUANTILES, row[2] or [], strict=False))
    stats.runs_ended = {
        str(outcome): int(count)
        for outcome, count in conn.execute(
            "SELECT outcome, count(*) FROM deeplens.run_outcomes"
            " WHERE ended_at > now() - make_interval(secs => %s) GROUP BY outcome",
            (window_seconds,),
        ).fetchall()
    }
    row = conn.execute("SELECT count(*) FROM deeplens.run_heartbeats").fetchone()
    stats.runs_in_progress = int(row[0]) if row else 0
    return stats


def backlog(conn: psycopg.Connection) -> dict[str, tuple[int, float]]:
    """Per tenant with any: images accepted and not yet searchable or failed, and the seconds
    since the oldest of them was uploaded."""
    rows = conn.execute(
        "SELECT tenant_id, count(*), extract(epoch FROM now() - min(uploaded_at))::float8"
        " FROM deeplens.images WHERE status = ANY(%s) GROUP BY tenant_id",
        (list(WAITING),),
    ).fetchall()
    return {r[0]: (int(r[1]), float(r[2])) for r in rows}
