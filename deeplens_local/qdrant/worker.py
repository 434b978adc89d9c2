"""The process that owns one collection's edge shard.

Why a process per collection: ``qdrant_edge`` keeps the GIL for the whole of every call, and
``EdgeShard.optimize()`` (the HNSW build) runs for seconds to minutes; in the server's own
process it would stop every request. Here it stops only this collection's requests, which wait
in the pipe, in order. Requests are handled one at a time, so writes are serialized per
collection by construction.

The optimizer (HNSW indexing, segment merges) runs once writes have paused for
``optimize_delay`` seconds, or at once when a client asks for the collection's info while it
has vectors to index (a writer that is done and waits for green, as a rebuild does); while it
runs, the shared ``optimizing`` flag is set, so the front can answer collection info without
waiting.
"""

from __future__ import annotations

import logging
import signal
import time
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

from deeplens_local.qdrant.collection import WRITE_OPS, Collection
from deeplens_local.qdrant.errors import QdrantError, error_body, from_edge

log = logging.getLogger(__name__)

_POLL = 0.5  # seconds between checks of the stop flag while idle
_stopping = False


def _stop(signum: int, frame: FrameType | None) -> None:
    global _stopping
    _stopping = True


def serve(
    conn: Connection,
    directory: str,
    create: dict[str, Any] | None,
    optimizing: Any,
    optimize_delay: float,
    log_level: int,
) -> None:
    """Process entry point: open (or ``create``) the collection, then answer requests.

    Stops on ``None`` from the front, on EOF (the front died), or on SIGTERM / SIGINT, and
    closes the shard cleanly in every case.
    """
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        path = Path(directory)
        if create is not None:
            collection = Collection.create(path, create["name"], create["config"])
        else:
            collection = Collection.open(path)
    except Exception as exc:
        log.exception("cannot open collection at %s", directory)
        error = exc if isinstance(exc, QdrantError) else from_edge(exc)
        conn.send((error.status, error_body(error, time.perf_counter())))
        return
    conn.send((200, b"ready"))
    try:
        _loop(conn, collection, optimizing, optimize_delay)
    finally:
        collection.close()
        log.info("closed collection %s", collection.meta["name"])


def _loop(conn: Connection, collection: Collection, optimizing: Any, delay: float) -> None:
    """Answer requests in order; optimize once writes pause for ``delay`` seconds, or at once
    when the unindexed backlog grows too big to keep waiting (a writer that never pauses) or
    when someone asks for the info of a collection with vectors to index (waits for green)."""
    last_write = time.monotonic()  # a freshly opened shard may have optimizations pending
    while not _stopping:
        wait = _POLL
        if collection.dirty:
            wait = min(wait, max(0.0, last_write + delay - time.monotonic()))
        try:
            message = conn.recv() if conn.poll(wait) else ()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if not message:
            if collection.dirty and time.monotonic() - last_write >= delay:
                _optimize(collection, optimizing)
            continue
        op, params, body = message
        try:
            conn.send(collection.handle(op, params, body))
        except OSError:
            return
        if op in WRITE_OPS:
            last_write = time.monotonic()
            if collection.backlog():
                _optimize(collection, optimizing)
        elif op == "info" and collection.pending():
            _optimize(collection, optimizing)


def _optimize(collection: Collection, optimizing: Any) -> None:
    optimizing.value = 1
    try:
        collection.optimize()
    except Exception:
        log.exception("optimizing %s failed", collection.meta["name"])
        collection.dirty = False
    finally:
        optimizing.value = 0
