"""The transactional outbox: rows written with the change they announce, published by a relay."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import psycopg


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    key: str
    payload: dict[str, object]
    # Kafka headers to publish with: the W3C trace context of whatever wrote the row.
    headers: dict[str, str] = field(default_factory=dict)

    def value(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":")).encode()

    @property
    def correlation_id(self) -> str | None:
        value = self.payload.get("correlationId")
        return str(value) if value else None


def claim(conn: psycopg.Connection, limit: int = 500) -> list[OutboxRow]:
    """Lock the oldest unsent rows, skipping rows another relay holds (inside a transaction)."""
    rows = conn.execute(
        "SELECT id, topic, key, payload, headers FROM deeplens.outbox WHERE sent_at IS NULL"
        " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    ).fetchall()
    return [OutboxRow(int(r[0]), str(r[1]), str(r[2]), dict(r[3]), dict(r[4] or {})) for r in rows]


def mark_sent(conn: psycopg.Connection, ids: list[int]) -> None:
    conn.execute("UPDATE deeplens.outbox SET sent_at = now() WHERE id = ANY(%s)", (ids,))


def pending(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM deeplens.outbox WHERE sent_at IS NULL").fetchone()
    return int(row[0]) if row else 0
