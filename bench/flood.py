"""A flood of requests from one key, made by another process as a remote client would, and the
timed searches of another tenant meanwhile: used by the bench's fairness phase and by
tests/security."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import random
import threading
import time
import uuid

import httpx


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


def timed_searches(
    client: httpx.Client, headers: dict[str, str], image_id: str, n: int
) -> list[float]:
    """Milliseconds of `n` searches by a stored image (each answered 200), each asking a
    different page so that none is answered from the cache."""
    took = []
    base = random.randrange(9_000)  # another run's pages are other pages
    for i in range(n):
        page = {"topK": 1 + i % 100, "offset": base + i // 100}
        started = time.perf_counter()
        response = client.get(f"/api/v1/images/{image_id}/similar", params=page, headers=headers)
        took.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return took
