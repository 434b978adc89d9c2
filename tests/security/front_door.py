"""What the front-door tests share: the API's processes and their memory, a tenant's limits,
and a timed client."""

from __future__ import annotations

import statistics
from pathlib import Path

import httpx

from deeplens_local.stack.stack import Stack


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


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]
