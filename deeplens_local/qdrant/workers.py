"""The server's handle on one collection's worker process (see ``worker.py``).

Requests go down one pipe through one pump thread, in the order they were submitted, and come
back as ``(status, JSON body)``. The event loop never blocks: it awaits the returned future.
Workers are started from a ``forkserver`` that has already imported ``qdrant_edge``, so starting
one costs a fork, not an interpreter start, and never forks this threaded process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from concurrent.futures import Future
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from deeplens_local.qdrant import worker
from deeplens_local.qdrant.errors import QdrantError, collection_not_found, error_body

log = logging.getLogger(__name__)

Reply = tuple[int, bytes]
_Item = tuple[tuple[str, dict[str, str], bytes], "Future[Reply]"]

START_TIMEOUT = 300.0  # loading a big shard replays its WAL
STOP_TIMEOUT = 60.0  # a close waits for a running optimization


class Worker:
    def __init__(self, name: str, process: BaseProcess, conn: Connection, optimizing: Any) -> None:
        self.name = name
        self.last_info: dict[str, Any] | None = None
        self._process = process
        self._conn = conn
        self._optimizing = optimizing
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._dead = False
        self._pump_thread = threading.Thread(target=self._pump, name=f"qdrant-{name}", daemon=True)
        self._pump_thread.start()

    @classmethod
    def start(
        cls,
        ctx: ForkServerContext,
        name: str,
        directory: Path,
        create: dict[str, Any] | None,
        optimize_delay: float,
    ) -> Worker:
        """Start the worker of the collection in ``directory`` (blocking until it is ready)."""
        parent, child = ctx.Pipe()
        optimizing = ctx.Value("b", 0, lock=False)
        level = logging.getLogger("deeplens").getEffectiveLevel()
        args = (child, str(directory), create, optimizing, optimize_delay, level)
        process = ctx.Process(target=worker.serve, args=args, name=f"qdrant-local:{name}")
        process.daemon = True
        process.start()
        child.close()
        try:
            if not parent.poll(START_TIMEOUT):
                raise QdrantError(f"the worker of collection {name} did not start")
            status, body = parent.recv()
        except (EOFError, OSError, QdrantError) as exc:
            process.kill()
            raise QdrantError(f"the worker of collection {name} failed to start: {exc}") from exc
        if status != 200:
            process.join()
            raise _error_from(status, body)
        return cls(name, process, parent, optimizing)

    @property
    def optimizing(self) -> bool:
        return bool(self._optimizing.value)

    @property
    def dead(self) -> bool:
        """The process has exited (crashed or killed): the store restarts it on next use."""
        return self._dead or not (self._closed or self._process.is_alive())

    def submit(self, op: str, params: dict[str, str], body: bytes) -> Future[Reply]:
        future: Future[Reply] = Future()
        with self._lock:
            if self._closed:
                error = collection_not_found(self.name)
                future.set_result((error.status, error_body(error, time.perf_counter())))
            else:
                self._queue.put(((op, params, body), future))
        return future

    def _pump(self) -> None:
        while (item := self._queue.get()) is not None:
            message, future = item
            wanted = future.set_running_or_notify_cancel()  # a write runs even if nobody waits
            reply = self._dead_reply()
            if not self._dead:
                try:
                    self._conn.send(message)
                    reply = self._conn.recv()
                except (EOFError, OSError):
                    log.error("the worker of collection %s exited", self.name)
                    self._dead = True
                    reply = self._dead_reply()
            if wanted:
                future.set_result(reply)

    def _dead_reply(self) -> Reply:
        error = QdrantError(f"the worker process of collection {self.name} exited")
        return error.status, error_body(error, time.perf_counter())

    def stop(self) -> None:
        """Let queued requests finish, then close the shard and end the process (blocking)."""
        with self._lock:
            self._closed = True
            self._queue.put(None)
        self._pump_thread.join()
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._process.join(STOP_TIMEOUT)
        if self._process.is_alive():
            log.warning("the worker of collection %s did not stop; killing it", self.name)
            self._process.kill()
            self._process.join()
        self._conn.close()


def _error_from(status: int, body: bytes) -> QdrantError:
    error = QdrantError(json.loads(body)["status"]["error"])
    error.status = status
    error.prefix = ""
    return error
