"""Live processing status over a WebSocket: ``/hub/processing-status?imageId=...``.

The socket gets the image's status view at once, then again after each change, and is closed
after a terminal status. Changes are pushed: the app's one LISTEN connection wakes the sockets
whose image changed (see `deeplens.hub`), so a socket that waits costs no catalog reads.

The key is never taken from the URL (URLs end up in access logs and browser history). It comes
in the ``X-API-Key`` header or, from a browser (which can't set headers on a WebSocket), as a
subprotocol: offer ``deeplens`` and ``deeplens.key.<key>``, and the server selects ``deeplens``::

    new WebSocket(url, ["deeplens", "deeplens.key." + apiKey])

A key may hold `Settings.websockets_per_key` sockets at once in each API process. Refusals are
sent as ``{"success": false, "detail": ...}`` before closing with code 4400 (not an image id),
4401 (no key, or an unknown one), 4404 (no such image) or 4429 (too many sockets for the key).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, WebSocket, WebSocketDisconnect, status
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import ConnectionPool

from deeplens.catalog import images
from deeplens.catalog.tenants import Tenant
from deeplens.hub import Subscription, TooManySubscriptions
from deeplens.keys import hash_key
from deeplens.status import status_view
from search_api import audit, gate
from search_api.deps import (
    API_KEY_HEADER,
    DbDep,
    HubDep,
    SettingsDep,
)

router = APIRouter(tags=["images"])

SUBPROTOCOL = "deeplens"
KEY_SUBPROTOCOL_PREFIX = "deeplens.key."
# A close frame carries at most 125 bytes: the code's 2, and the reason's.
MAX_CLOSE_REASON_BYTES = 123
# How much of what a client sent a refusal repeats.
MAX_ECHO_CHARS = 80
HOW_TO_SEND_THE_KEY = (
    f"send it in the {API_KEY_HEADER} header, or (from a browser) offer the subprotocols "
    f"{SUBPROTOCOL} and {KEY_SUBPROTOCOL_PREFIX}<key>"
)


def close_reason(detail: str) -> str:
    """`detail` cut to what a close frame can carry, at a character boundary."""
    return detail.encode(errors="replace")[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


def shorten(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _offered_key(websocket: WebSocket) -> str:
    """The key from the header, or else from a ``deeplens.key.<key>`` subprotocol; 401 without
    one, and for one in the URL."""
    if "apiKey" in websocket.query_params:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"the API key is not accepted in the URL: {HOW_TO_SEND_THE_KEY}",
        )
    if key := websocket.headers.get(API_KEY_HEADER):
        return key
    for protocol in websocket.scope.get("subprotocols", ()):
        if protocol.startswith(KEY_SUBPROTOCOL_PREFIX):
            return str(protocol[len(KEY_SUBPROTOCOL_PREFIX) :])
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing API key: {HOW_TO_SEND_THE_KEY}")


async def _accept(websocket: WebSocket) -> None:
    """Accept, selecting ``deeplens`` when it was offered (a browser fails a handshake whose
    offered subprotocols are all left unselected)."""
    offered = websocket.scope.get("subprotocols", ())
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)


async def _refuse(websocket: WebSocket, code: int, detail: str) -> None:
    await _accept(websocket)
    await websocket.send_json({"success": False, "detail": detail})
    await websocket.close(code=code, reason=close_reason(detail))


# WebSocket close codes for the gate's refusals (1013: try again later).
REFUSAL_CODES = {401: 4401, 429: 4429, 503: 1013}


async def _authenticate(websocket: WebSocket) -> tuple[Tenant, str] | None:
    """The socket's tenant and its key; None once the socket has been refused (and the
    failure audited)."""
    try:
        key = _offered_key(websocket)
    except HTTPException as exc:
        audit.record("auth.failed", websocket, scope="websocket", reason=exc.detail)
        await _refuse(websocket, 4401, str(exc.detail))
        return None
    try:
        identity = await gate.identify(websocket, key, "websocket")
    except gate.Refused as refused:
        await _refuse(websocket, REFUSAL_CODES.get(refused.status_code, 4401), refused.detail)
        return None
    return identity.tenant, key


def _view(db: ConnectionPool, tenant: Tenant, image_id: uuid.UUID) -> dict[str, Any] | None:
    with db.connection() as conn:
        image = images.get(conn, image_id, tenant.tenant_id)
    return None if image is None else status_view(image, datetime.now(UTC))


@router.websocket("/hub/processing-status")
async def processing_status(
    websocket: WebSocket,
    db: DbDep,
    hub: HubDep,
    settings: SettingsDep,
    image_id: Annotated[str | None, Query(alias="imageId")] = None,
) -> None:
    authenticated = await _authenticate(websocket)
    if authenticated is None:
        return
    tenant, key = authenticated
    try:
        image_uuid = uuid.UUID(image_id or "")
    except ValueError:
        shown = shorten(image_id or "")
        await _refuse(websocket, 4400, f"imageId {shown!r} is not an image id (a UUID)")
        return
    try:
        # Before the first read: a change in between still wakes the socket.
        subscription = hub.subscribe(
            str(image_uuid),
            tenant.tenant_id,
            owner=hash_key(key),
            limit=settings.websockets_per_key,
        )
    except TooManySubscriptions as exc:
        detail = f"too many status sockets for this API key: {exc.limit} per API process at once"
        await _refuse(websocket, 4429, detail)
        return
    try:
        await _watch(websocket, db, tenant, image_uuid, subscription, key)
    except WebSocketDisconnect:
        return
    finally:
        hub.unsubscribe(subscription)


async def _watch(
    websocket: WebSocket,
    db: ConnectionPool,
    tenant: Tenant,
    image_id: uuid.UUID,
    subscription: Subscription,
    key: str,
) -> None:
    """Send the status, then each change, until a terminal status, the client goes away or
    its key is revoked (a revocation wakes the tenant's sockets; each checks its key)."""
    view = await run_in_threadpool(_view, db, tenant, image_id)
    if view is None:
        await _refuse(websocket, 4404, f"no image {image_id} for this tenant")
        return
    await _accept(websocket)
    await websocket.send_json(view)
    receiver = asyncio.create_task(_until_disconnect(websocket))
    try:
        while view["status"] not in images.TERMINAL:
            waiter = asyncio.create_task(subscription.wait())
            done, _ = await asyncio.wait({waiter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                waiter.cancel()
                return
            if not await _still_valid(websocket, key):
                await websocket.close(code=4401, reason="the API key was revoked")
                return
            latest = await run_in_threadpool(_view, db, tenant, image_id)
            if latest is None:  # deleted, or its tenant was
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


async def _still_valid(websocket: WebSocket, key: str) -> bool:
    """Whether the key still speaks for its tenant (no I/O while it is cached); a refusal for
    any other reason than the key (a rate, the catalog down) gives it the benefit of doubt."""
    try:
        await gate.identify(websocket, key, "websocket")
    except gate.Refused as refused:
        return refused.status_code != 401
    return True


def _changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    fields = ("status", "lastUpdated", "percentComplete")
    return any(old.get(f) != new.get(f) for f in fields)


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
