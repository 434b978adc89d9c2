"""Polling until a server really answers: no fixed sleeps."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class NotReady(Exception):
    pass


def wait_until(
    probe: Callable[[], T],
    what: str,
    timeout: float = 60.0,
    interval: float = 0.1,
    alive: Callable[[], None] | None = None,
) -> T:
    """Call ``probe`` until it returns without raising; ``alive`` raises if the server died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            return probe()
        except Exception as exc:  # any failure of the probe means "not yet"
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} did not answer within {timeout:.0f}s (last error: {last!r})")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
