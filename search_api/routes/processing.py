"""Live processing status over a WebSocket: ``/hub/processing-status?imageId=...``.

The socket gets the image's status view at once, then again after each change (the app's one
LISTEN connection wakes it; see `deeplens.hub`), and is closed after a terminal status. The key
comes in the ``X-API-Key`` header or, for browsers, the ``apiKey`` query parameter. Errors are
sent as ``{"success": false, "detail": ...}`` before closing with code 4400/4401/4404.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import ConnectionPool

from deeplens.catalog import images
from deeplens.catalog.tenants import Tenant
from deeplens.status import status_view
from search_api.deps import API_KEY_HEADER, DbDep, HubDep, KeysDep, tenant_for_key

router = APIRouter(tags=["images"])

# Re-read the status this often even without a wake-up (a missed notification costs no more).
FALLBACK_POLL_SECONDS = 5.0


def _view(db: ConnectionPool, tenant: Tenant, image_id: uuid.UUID) -> dict[str, Any] | None:
    with db.connection() as conn:
        image = images.get(conn, image_id, tenant.tenant_id)
    return None if image is None else status_view(image, datetime.now(UTC))


async def _refuse(websocket: WebSocket, code: int, detail: str) -> None:
    await websocket.accept()
    await websocket.send_json({"success": False, "detail": detail})
    await websocket.close(code=code, reason=detail[:120])


@router.websocket("/hub/processing-status")
async def processing_status(
    websocket: WebSocket,
    db: DbDep,
    keys: KeysDep,
    hub: HubDep,
    image_id: Annotated[str | None, Query(alias="imageId")] = None,
    api_key: Annotated[str | None, Query(alias="apiKey")] = None,
) -> None:
    key = websocket.headers.get(API_KEY_HEADER) or api_key
    if not key:
        detail = f"missing API key: send it in the {API_KEY_HEADER} header or as ?apiKey="
        await _refuse(websocket, 4401, detail)
        return
    try:
        tenant = await run_in_threadpool(tenant_for_key, keys, key)
    except HTTPException as exc:
        await _refuse(websocket, 4401, str(exc.detail))
        return
    try:
        image_uuid = uuid.UUID(image_id or "")
    except ValueError:
        await _refuse(websocket, 4400, f"imageId {image_id!r} is not an image id (a UUID)")
        return

    subscription = hub.subscribe(str(image_uuid))  # before the first read: no gap
    try:
        view = await run_in_threadpool(_view, db, tenant, image_uuid)
        if view is None:
            await _refuse(websocket, 4404, f"no image {image_uuid} for this tenant")
            return
        await websocket.accept()
        await websocket.send_json(view)
        receiver = asyncio.create_task(_until_disconnect(websocket))
        try:
            while view["status"] not in images.TERMINAL:
                waiter = asyncio.create_task(subscription.wait())
                done, _ = await asyncio.wait(
                    {waiter, receiver},
                    timeout=FALLBACK_POLL_SECONDS,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if receiver in done:
                    waiter.cancel()
                    return
                if waiter not in done:
                    waiter.cancel()
                latest = await run_in_threadpool(_view, db, tenant, image_uuid)
                if latest is None:  # deleted with its tenant
                    await websocket.close(code=4404, reason="image deleted")
                    return
                if _changed(view, latest):
                    await websocket.send_json(latest)
                view = latest
            await websocket.close(code=1000, reason=f"image {view['status']}")
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await receiver
    except WebSocketDisconnect:
        return
    finally:
        hub.unsubscribe(subscription)


def _changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    fields = ("status", "lastUpdated", "percentComplete")
    return any(old.get(f) != new.get(f) for f in fields)


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
