"""Helpers for tests over real HTTP against the `stack` fixture: tenants, DB counts, events."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer, TopicPartition

from deeplens_local.stack.stack import Stack


@dataclass(frozen=True)
class TenantHandle:
    tenant_id: str
    api_key: str
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_tenant(api_url: str, admin_key: str, prefix: str) -> TenantHandle:
    tenant_id = unique_id(prefix)
    response = httpx.post(
        f"{api_url}/api/v1/admin/tenants",
        headers={"X-Admin-Key": admin_key},
        json={"tenantId": tenant_id, "name": prefix.title()},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return TenantHandle(tenant_id, body["apiKey"], body)


def delete_tenant(api_url: str, admin_key: str, tenant_id: str) -> httpx.Response:
    return httpx.delete(
        f"{api_url}/api/v1/admin/tenants/{tenant_id}",
        headers={"X-Admin-Key": admin_key},
        timeout=60,
    )


@dataclass(frozen=True)
class Footprint:
    """What a tenant has written: image rows, outbox rows and blob files."""

    images: int
    outbox: int
    blobs: int


def footprint(stack: Stack, tenant_id: str) -> Footprint:
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        images = conn.execute(
            "SELECT count(*) FROM deeplens.images WHERE tenant_id = %s", (tenant_id,)
        ).fetchone()
        outbox = conn.execute(
            "SELECT count(*) FROM deeplens.outbox WHERE key = %s", (tenant_id,)
        ).fetchone()
    folder = Path(stack.env["DEEPLENS_BLOB_ROOT"]) / tenant_id
    blobs = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
    assert images is not None and outbox is not None
    return Footprint(int(images[0]), int(outbox[0]), blobs)


def find_event(
    bootstrap: str, topic: str, image_id: str, timeout: float = 30
) -> dict[str, Any] | None:
    """The event on `topic` about `image_id`, read from offset 0 of every partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"api-tests-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                value = message.value()
                if message.error() is not None or value is None:
                    continue
                event = json.loads(value)
                if event.get("data", {}).get("imageId") == image_id:
                    return dict(event)
        return None
    finally:
        consumer.close()


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
