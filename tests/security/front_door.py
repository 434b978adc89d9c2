"""What the front-door tests share: the API's processes and their memory, a tenant's limits,
and a timed client."""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import httpx

from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import TenantHandle


def api_pids(stack: Stack) -> list[int]:
    """The API's supervisor and its worker processes."""
    root = stack.process("search-api").pid
    children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
    return [root, *map(int, children)]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def total_rss_mib(stack: Stack) -> float:
    return sum(rss_mib(pid) for pid in api_pids(stack))


def set_limits(api_url: str, admin_key: str, tenant_id: str, **limits: int | None) -> None:
    response = httpx.put(
        f"{api_url}/api/v1/admin/tenants/{tenant_id}/limits",
        headers={"X-Admin-Key": admin_key},
        json=limits,
        timeout=30,
    )
    assert response.status_code == 200, response.text


def timed_searches(
    client: httpx.Client, tenant: TenantHandle, image_id: str, n: int
) -> list[float]:
    """Milliseconds of `n` searches by a stored image (each answered 200), each asking a
    different page so that none is answered from the cache."""
    took = []
    base = random.randrange(9_000)  # another run's pages are other pages
    for i in range(n):
        page = {"topK": 1 + i % 100, "offset": base + i // 100}
        started = time.perf_counter()
        response = client.get(
            f"/api/v1/images/{image_id}/similar", params=page, headers=tenant.headers
        )
        took.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return took


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]
