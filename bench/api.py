"""The bench's view of the running system: the search API over HTTP, the catalog over SQL,
and Dagster's GraphQL."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from bench.workload import Item
from deeplens.stack.stack import Stack


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    api_key: str
    collection: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}


@dataclass(frozen=True)
class System:
    api_url: str
    ui_url: str
    admin_key: str
    database_url: str
    qdrant_url: str

    @classmethod
    def of(cls, stack: Stack) -> System:
        return cls(
            api_url=stack.endpoints["api"].url,
            ui_url=stack.endpoints["ui"].url,
            admin_key=stack.env["DEEPLENS_ADMIN_KEY"],
            database_url=stack.env["DEEPLENS_DATABASE_URL"],
            qdrant_url=stack.env["DEEPLENS_QDRANT_URL"],
        )

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=timeout)

    def create_tenant(self, prefix: str) -> Tenant:
        tenant_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
        response = httpx.post(
            f"{self.api_url}/api/v1/admin/tenants",
            headers={"X-Admin-Key": self.admin_key},
            json={"tenantId": tenant_id, "name": f"Bench {prefix}"},
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
        return Tenant(tenant_id, body["apiKey"], body["collection"])

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"{self.ui_url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
        if "errors" in body:
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return dict(body["data"])

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url, autocommit=True)


@dataclass(frozen=True)
class Encoded:
    """An upload's multipart body, built ahead so that the load generator's own CPU time
    (on the same cores as the system) stays out of the measured window."""

    body: bytes
    content_type: str


def encode_upload(item: Item) -> Encoded:
    request = httpx.Request(
        "POST", "http://bench/", files={"file": (item.file_name, item.data, item.kind.mime)}
    )
    return Encoded(request.read(), request.headers["Content-Type"])


class LeanClient:
    """One keep-alive HTTP/1.1 connection through the standard library's `http.client`: about
    a third of httpx's CPU time per request. The load generator shares the system's cores, so
    what it spends is taken from what is measured."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        self._conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        self._conn.request("POST", path, body, headers)
        response = self._conn.getresponse()
        return response.status, response.read()

    def upload(self, tenant: Tenant, encoded: Encoded) -> tuple[int, dict[str, Any]]:
        """(status code, JSON answer) of an upload."""
        headers = {**tenant.headers, "Content-Type": encoded.content_type}
        code, body = self.post("/api/v1/images", encoded.body, headers)
        return code, json.loads(body) if body else {}

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def upload(
    client: httpx.Client, tenant: Tenant, item: Item, encoded: Encoded | None = None
) -> httpx.Response:
    encoded = encoded or encode_upload(item)
    return client.post(
        "/api/v1/images",
        headers={**tenant.headers, "Content-Type": encoded.content_type},
        content=encoded.body,
    )


def search_image(
    client: httpx.Client, tenant: Tenant, data: bytes, mime: str, top_k: int = 10
) -> tuple[float, dict[str, Any]]:
    """(round-trip ms, answer) of a search by query image."""
    started = time.perf_counter()
    response = client.post(
        "/api/v1/search",
        headers=tenant.headers,
        files={"file": ("query", data, mime)},
        data={"topK": str(top_k)},
    )
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, dict(response.json())


def similar(
    client: httpx.Client, tenant: Tenant, image_id: str, top_k: int = 10
) -> tuple[float, dict[str, Any]]:
    """(round-trip ms, answer) of a search by stored image id."""
    started = time.perf_counter()
    response = client.get(
        f"/api/v1/images/{image_id}/similar", headers=tenant.headers, params={"topK": top_k}
    )
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, dict(response.json())


def status(client: httpx.Client, tenant: Tenant, image_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/images/{image_id}/status", headers=tenant.headers)
    response.raise_for_status()
    return dict(response.json())


def status_counts(conn: psycopg.Connection, tenant_id: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM deeplens.images WHERE tenant_id = %s GROUP BY status",
        (tenant_id,),
    ).fetchall()
    return {str(s): int(n) for s, n in rows}


def terminal_since(
    conn: psycopg.Connection, tenant_id: str, seen: set[str]
) -> list[tuple[str, str]]:
    """(image id, status) of the tenant's completed or failed images not in `seen`."""
    rows = conn.execute(
        "SELECT image_id::text, status FROM deeplens.images"
        " WHERE tenant_id = %s AND status IN ('completed', 'failed')",
        (tenant_id,),
    ).fetchall()
    return [(str(i), str(s)) for i, s in rows if i not in seen]


def image_times(
    conn: psycopg.Connection, tenant_id: str
) -> list[tuple[str, str, datetime, datetime | None]]:
    """(image id, status, uploaded_at, indexed_at) of every image of the tenant."""
    rows = conn.execute(
        "SELECT image_id::text, status, uploaded_at, indexed_at FROM deeplens.images"
        " WHERE tenant_id = %s",
        (tenant_id,),
    ).fetchall()
    return [(str(i), str(s), u, x) for i, s, u, x in rows]


def parse_time(value: str) -> float:
    """An ISO timestamp from the API as epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
