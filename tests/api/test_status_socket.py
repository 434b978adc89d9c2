"""The status WebSocket in-process, with fakes: where the key may come from, what a refusal
looks like (close reasons fit a close frame, whatever the client sent), and the per-key cap."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from deeplens.hub import StatusHub, TooManySubscriptions
from deeplens.keys import hash_key
from search_api import deps
from search_api.main import create_app
from search_api.routes import processing
from search_api.routes.processing import MAX_CLOSE_REASON_BYTES, close_reason, shorten
from tests.api.conftest import API_KEY, SLOW_KEY, TENANT, FakeServices

IMAGE_ID = str(uuid.uuid4())
PATH = f"/hub/processing-status?imageId={IMAGE_ID}"
CAP = 2


def view(status: str = "processing") -> dict[str, Any]:
    return {"imageId": IMAGE_ID, "status": status, "lastUpdated": "t", "percentComplete": 50}


@pytest.fixture
def hub() -> StatusHub:
    return StatusHub("postgresql://unused")  # never started: nothing is published


@pytest.fixture
def sockets(
    fake_services: FakeServices, hub: StatusHub, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """A client of an app whose images are all `processing` (no catalog is read)."""
    monkeypatch.setattr(processing, "_view", lambda db, tenant, image_id: view())
    settings = fake_services.settings.model_copy(update={"websockets_per_key": CAP})
    app = create_app(settings)
    fake_services.install(app)
    app.dependency_overrides.update(
        {
            deps.get_hub: lambda: hub,
            deps.get_settings: lambda: settings,
        }
    )
    yield TestClient(app)
    app.dependency_overrides.clear()


def refusal(client: TestClient, path: str, **kwargs: Any) -> tuple[dict[str, Any], int, str]:
    """The refusal's JSON, close code and close reason."""
    with client.websocket_connect(path, **kwargs) as socket:
        body = socket.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    return body, closed.value.code, closed.value.reason


# -- close reasons -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "detail", ["short", "é" * 200, "x" * 122 + "é", "😀" * 40, "a\x00b\r\n" * 50]
)
def test_a_close_reason_fits_a_close_frame_at_a_character_boundary(detail: str) -> None:
    reason = close_reason(detail)
    assert len(reason.encode()) <= MAX_CLOSE_REASON_BYTES
    assert detail.startswith(reason)
    assert reason == detail or len(reason.encode()) > MAX_CLOSE_REASON_BYTES - 4


def test_an_echoed_value_is_shortened_with_an_ellipsis() -> None:
    assert shorten("abc") == "abc"
    long = shorten("x" * 10_000)
    assert len(long) == processing.MAX_ECHO_CHARS and long.endswith("…")


@pytest.mark.parametrize("image_id", ["bildé-🖼", "x" * 10_000, "a\x00b\x07c", "%ff%fe"])
def test_any_image_id_gets_a_clean_4400(sockets: TestClient, image_id: str) -> None:
    body, code, reason = refusal(
        sockets,
        "/hub/processing-status",
        params={"imageId": image_id},
        headers={"X-API-Key": API_KEY},
    )
    assert code == 4400
    assert len(reason.encode()) <= MAX_CLOSE_REASON_BYTES
    assert "not an image id" in body["detail"] and len(body["detail"]) < 200


# -- the key -----------------------------------------------------------------------------------


def test_the_key_in_the_header_is_accepted(sockets: TestClient) -> None:
    with sockets.websocket_connect(PATH, headers={"X-API-Key": API_KEY}) as socket:
        assert socket.receive_json()["status"] == "processing"


def test_the_key_as_a_subprotocol_is_accepted_and_deeplens_selected(sockets: TestClient) -> None:
    offered = ["deeplens", f"deeplens.key.{API_KEY}"]
    with sockets.websocket_connect(PATH, subprotocols=offered) as socket:
        assert socket.accepted_subprotocol == "deeplens"
        assert socket.receive_json()["imageId"] == IMAGE_ID


@pytest.mark.parametrize(
    ("path", "kwargs", "said"),
    [
        (f"{PATH}&apiKey={API_KEY}", {}, "not accepted in the URL"),
        (PATH, {}, "missing API key"),
        (PATH, {"headers": {"X-API-Key": "dlk_nobody"}}, "unknown API key"),
        (PATH, {"subprotocols": ["deeplens", "deeplens.key.dlk_nobody"]}, "unknown API key"),
    ],
)
def test_a_refused_key_is_4401_and_audited_without_the_key(
    sockets: TestClient,
    caplog: pytest.LogCaptureFixture,
    path: str,
    kwargs: dict[str, Any],
    said: str,
) -> None:
    with caplog.at_level(logging.INFO, logger="deeplens.audit"):
        body, code, reason = refusal(sockets, path, **kwargs)
    assert code == 4401 and said in body["detail"] and reason
    audited = [r.getMessage() for r in caplog.records if r.name == "deeplens.audit"]
    assert len(audited) == 1 and '"audit":"auth.failed"' in audited[0]
    assert API_KEY not in audited[0] and "dlk_nobody" not in audited[0]


# -- the per-key cap ---------------------------------------------------------------------------


def test_a_key_holds_at_most_its_cap_of_sockets(sockets: TestClient, hub: StatusHub) -> None:
    auth = {"headers": {"X-API-Key": API_KEY}}
    with (
        sockets.websocket_connect(PATH, **auth) as first,
        sockets.websocket_connect(PATH, **auth) as second,
    ):
        assert first.receive_json()["status"] == second.receive_json()["status"] == "processing"
        body, code, reason = refusal(sockets, PATH, **auth)
        assert code == 4429 and "too many" in body["detail"] and "per API process" in reason
    assert not hub._held  # both places were given back when their sockets went
    with sockets.websocket_connect(PATH, **auth) as again:
        assert again.receive_json()["status"] == "processing"


def test_the_hub_counts_subscriptions_per_owner_and_gives_them_back() -> None:
    hub = StatusHub("postgresql://unused")

    async def scenario() -> None:
        held = [hub.subscribe("image-1", "t", owner="a", limit=2) for _ in range(2)]
        with pytest.raises(TooManySubscriptions):
            hub.subscribe("image-2", "t", owner="a", limit=2)
        other = hub.subscribe("image-1", "t", owner="b", limit=2)  # another key: its own count
        hub.unsubscribe(held[0])
        hub.unsubscribe(held[0])  # twice: given back once
        held[1:] += [hub.subscribe("image-3", "t", owner="a", limit=2)]
        with pytest.raises(TooManySubscriptions):
            hub.subscribe("image-3", "t", owner="a", limit=2)
        for subscription in [*held[1:], other]:
            hub.unsubscribe(subscription)

    asyncio.run(scenario())
    assert not hub._held and not hub._subscribers


def test_the_hub_wakes_a_tenants_watchers_when_the_tenant_is_announced() -> None:
    hub = StatusHub("postgresql://unused")

    async def scenario() -> tuple[bool, bool]:
        mine = hub.subscribe("image-1", "acme")
        other = hub.subscribe("image-2", "globex")
        hub._wake_all("acme")
        woken = await _woken(mine)
        other_woken = await _woken(other)
        hub.unsubscribe(mine)
        hub.unsubscribe(other)
        return woken, other_woken

    assert asyncio.run(scenario()) == (True, False)


async def _woken(subscription: Any) -> bool:
    try:
        await asyncio.wait_for(subscription.wait(), timeout=0.2)
    except TimeoutError:
        return False
    return True


def test_unknown_keys_from_one_address_are_throttled_as_on_http(
    sockets: TestClient, fake_services: FakeServices
) -> None:
    codes = [refusal(sockets, PATH, headers={"X-API-Key": f"dlk_guess-{n}"})[1] for n in range(30)]
    assert codes[0] == 4401
    assert 4429 in codes, codes
    limit = fake_services.settings.key_failures_per_second
    assert len(fake_services.key_lookups) <= 2 * limit, "throttled keys are not looked up"


def test_a_socket_whose_key_is_revoked_is_closed_when_woken(
    sockets: TestClient,
    fake_services: FakeServices,
    hub: StatusHub,
) -> None:
    with sockets.websocket_connect(PATH, headers={"X-API-Key": SLOW_KEY}) as socket:
        assert socket.receive_json()["status"] == "processing"
        fake_services.revoked.add(hash_key(SLOW_KEY))  # revoked in the catalog
        fake_services.keys.forget_tenant(TENANT.tenant_id)  # as the notification does
        hub.publish(IMAGE_ID)
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert closed.value.code == 4401
