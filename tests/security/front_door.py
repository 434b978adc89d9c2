"""What the front-door tests share: the API's processes and their memory, a tenant's limits,
and a timed client."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import random
import statistics
import threading
import time
import uuid
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


def flood(api_url: str, headers: dict[str, str], threads: int, seconds: float) -> dict[int, int]:
    """Status reads of random ids from `threads` threads for `seconds`: the answers by status.

    Run in a process of its own (`flooding`), so that the flooder's threads don't hold the
    measuring process's interpreter lock, at the lowest CPU priority: it stands for a client on
    another machine, so what is measured is what answering the flood costs the API, not what
    making it costs this one.
    """
    os.nice(19)
    answers: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        with httpx.Client(base_url=api_url, timeout=30) as client:
            while time.monotonic() < deadline:
                path = f"/api/v1/images/{uuid.uuid4()}/status"
                code = client.get(path, headers=headers).status_code
                with lock:
                    answers[code] = answers.get(code, 0) + 1

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return answers


def flooding(
    api_url: str, headers: dict[str, str], threads: int, seconds: float
) -> concurrent.futures.Future[dict[int, int]]:
    """`flood` started in another process; the future gives its answers."""
    pool = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn")
    )
    future = pool.submit(flood, api_url, headers, threads, seconds)
    pool.shutdown(wait=False)
    return future
