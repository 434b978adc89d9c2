"""What the routers share: the store, JSON bodies, Qdrant's envelopes, forwarding to a worker."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Future
from typing import Any

from fastapi import Request, Response

from deeplens_local.qdrant import jsonio
from deeplens_local.qdrant.errors import FormatError, ok_body
from deeplens_local.qdrant.store import Store
from deeplens_local.qdrant.workers import Reply

log = logging.getLogger(__name__)


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = jsonio.loads(raw) if raw else {}
    except ValueError as exc:
        raise FormatError(str(exc)) from exc
    if not isinstance(body, dict):
        raise FormatError("expected a JSON object")
    return body


def ok(result: Any, started: float, status: str = "ok") -> Response:
    return Response(ok_body(result, started, status), media_type="application/json")


def reply(status_and_body: Reply) -> Response:
    status, body = status_and_body
    return Response(body, status_code=status, media_type="application/json")


async def forward(request: Request, name: str, op: str, **path: str) -> Response:
    """Send the request to the worker of ``name`` (resolving aliases) and relay its answer.

    A write with ``wait=false`` (Qdrant's default) is answered as soon as it is queued; the
    worker applies it before anything queued after it, so later reads see it.
    """
    started = time.perf_counter()
    target = await store_of(request).resolve(name)
    params = {**request.query_params, **path}
    future = target.submit(op, params, await request.body())
    if request.query_params.get("wait", "false") == "false" and op in _ACKNOWLEDGED:
        future.add_done_callback(_log_failure)
        return ok({"operation_id": None, "status": "acknowledged"}, started)
    return reply(await asyncio.wrap_future(future))


def _log_failure(future: Future[Reply]) -> None:
    status, body = future.result()
    if status >= 400:
        log.warning("an update with wait=false failed: %s", body.decode(errors="replace"))


_ACKNOWLEDGED = frozenset(
    {
        "upsert",
        "delete",
        "set_payload",
        "overwrite_payload",
        "delete_payload",
        "clear_payload",
        "update_vectors",
        "delete_vectors",
        "create_index",
        "delete_index",
    }
)
