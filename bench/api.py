"""The bench's view of the running system: the search API over HTTP, the catalog over SQL,
and Dagster's GraphQL."""

from __future__ import annotations

import json
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from bench.workload import Item
from deeplens.settings import Settings
from deeplens_local.stack.stack import Stack


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    api_key: str
    collection: str
    model: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}


@dataclass(frozen=True)
class System:
    api_url: str
    ui_url: str
    admin_key: str
    database_url: str
    settings: Settings

    @classmethod
    def of(cls, stack: Stack) -> System:
        return cls(
            api_url=stack.endpoints["api"].url,
            ui_url=stack.endpoints["ui"].url,
            admin_key=stack.env["DEEPLENS_ADMIN_KEY"],
            database_url=stack.env["DEEPLENS_DATABASE_URL"],
            settings=stack.child_settings(),
        )

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=timeout)

    def create_tenant(self, prefix: str, limits: dict[str, int | None] | None = None) -> Tenant:
        """A new tenant with the given limits; by default none, since the bench measures the
        system's throughput, not its rate limits (the `limiter` phase measures those)."""
        tenant_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
        admin = {"X-Admin-Key": self.admin_key}
        response = httpx.post(
            f"{self.api_url}/api/v1/admin/tenants",
            headers=admin,
            json={"tenantId": tenant_id, "name": f"Bench {prefix}"},
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
        unlimited = dict.fromkeys(body["limits"])
        httpx.put(
            f"{self.api_url}/api/v1/admin/tenants/{tenant_id}/limits",
            headers=admin,
            json={**unlimited, **(limits or {})},
            timeout=60,
        ).raise_for_status()
        return Tenant(tenant_id, body["apiKey"], body["collection"], body["model"])

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
    """An upload's multipart body, built ahead so that the load generator's own CPU time (on the
    same cores as the system) stays out of the measured window."""

    body: bytes
    content_type: str

    def request(self, tenant: Tenant) -> bytes:
        """The whole HTTP/1.1 request uploading this body for `tenant`."""
        head = (
            f"POST /api/v1/images HTTP/1.1\r\nHost: bench\r\nX-API-Key: {tenant.api_key}\r\n"
            f"Content-Type: {self.content_type}\r\nContent-Length: {len(self.body)}\r\n\r\n"
        )
        return head.encode() + self.body


def encode_upload(item: Item) -> Encoded:
    request = httpx.Request(
        "POST", "http://bench/", files={"file": (item.file_name, item.data, item.kind.mime)}
    )
    return Encoded(request.read(), request.headers["Content-Type"])


class LeanClient:
    """One keep-alive HTTP/1.1 connection on a plain socket, sending requests encoded ahead
    (`Encoded.request`) and reading just the status line, `Content-Length` and body: a few
    hundredths of a millisecond of CPU per upload, where `http.client` took 1-1.5 ms and httpx
    more. The load generator shares the system's cores, so what it spends is taken from what is
    measured."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        self._address = (url.hostname or "127.0.0.1", url.port or 80)
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def send(self, request: bytes) -> tuple[int, bytes]:
        """(status code, body) of one request; reconnects if the server closed the connection."""
        if self._sock is None:
            self._sock = socket.create_connection(self._address, self._timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer = b""
        self._sock.sendall(request)
        head = self._read_until(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        code = int(lines[0].split(b" ", 2)[1])
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(b":") for line in lines[1:])
        )
        body = self._read_exactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return code, body

    def upload(self, request: bytes) -> tuple[int, dict[str, Any]]:
        """(status code, JSON answer) of an upload (`Encoded.request`)."""
        code, body = self.send(request)
        return code, json.loads(body) if body else {}

    def _read_until(self, marker: bytes) -> bytes:
        assert self._sock is not None
        while (end := self._buffer.find(marker)) < 0:
            self._fill()
        head, self._buffer = self._buffer[:end], self._buffer[end + len(marker) :]
        return head

    def _read_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        body, self._buffer = self._buffer[:n], self._buffer[n:]
        return body

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            self.close()
            raise ConnectionError("the server closed the connection mid-answer")
        self._buffer += chunk

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

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
    client: httpx.Client,
    tenant: Tenant,
    data: bytes,
    mime: str,
    top_k: int = 10,
    filter_: str | None = None,
) -> tuple[float, dict[str, Any]]:
    """(round-trip ms, answer) of a search by query image (with a filter, JSON text)."""
    started = time.perf_counter()
    form = {"topK": str(top_k), **({"filter": filter_} if filter_ else {})}
    response = client.post(
        "/api/v1/search", headers=tenant.headers, files={"file": ("query", data, mime)}, data=form
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
