"""Liveness and readiness in-process, with fakes: which dependencies decide readiness, a frozen
one can't hold the probe, and only the admin sees what failed and how."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from search_api import deps
from search_api.main import create_app
from search_api.routes.health import readiness, run_checks
from tests.api.conftest import ADMIN_KEY, FakeServices

ALL_UP = {"postgres": True, "qdrant": True, "redis": True, "kafka": True}


# -- classification ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "model_loaded", "expected"),
    [
        ((), True, "ready"),
        (("redis",), True, "degraded"),
        (("kafka", "redis"), True, "degraded"),
        (("postgres",), True, "unavailable"),
        (("qdrant", "redis"), True, "unavailable"),
        ((), False, "unavailable"),
    ],
)
def test_required_dependencies_decide_readiness_optional_ones_degrade_it(
    down: tuple[str, ...], model_loaded: bool, expected: str
) -> None:
    reachable = {name: name not in down for name in ALL_UP}
    assert readiness(reachable, model_loaded) == expected


# -- the checks --------------------------------------------------------------------------------


def test_a_frozen_check_counts_as_unreachable_within_the_bound() -> None:
    release = threading.Event()

    def frozen() -> None:
        release.wait(10)

    def broken() -> None:
        raise ConnectionRefusedError("refused")

    running: dict[str, Future[dict[str, Any]]] = {}
    started = time.monotonic()
    try:
        results = asyncio.run(
            run_checks({"ok": lambda: None, "frozen": frozen, "broken": broken}, running, 0.3)
        )
    finally:
        release.set()
    assert time.monotonic() - started < 1.0
    assert results["ok"]["reachable"] is True
    frozen_result = results["frozen"]
    assert frozen_result["reachable"] is False
    assert frozen_result["error"] == "no answer within 0.3 s"
    assert results["broken"]["reachable"] is False and "refused" in results["broken"]["error"]


def test_a_check_still_running_is_joined_not_started_again() -> None:
    release = threading.Event()
    calls: list[int] = []

    def frozen() -> None:
        calls.append(1)
        release.wait(10)

    running: dict[str, Future[dict[str, Any]]] = {}
    try:
        for _ in range(3):
            asyncio.run(run_checks({"frozen": frozen}, running, 0.05))
    finally:
        release.set()
    running["frozen"].result(timeout=5)
    assert len(calls) == 1
    assert asyncio.run(run_checks({"frozen": frozen}, running, 1.0))["frozen"]["reachable"]
    assert len(calls) == 2


# -- the routes --------------------------------------------------------------------------------


class Fakes:
    """What /readyz reaches, each answering or failing as a test says."""

    def __init__(self) -> None:
        self.down: set[str] = set()

    def check(self, name: str) -> Callable[..., Any]:
        def answer(*args: Any, **kwargs: Any) -> Any:
            if name in self.down:
                raise ConnectionError(f"{name} internal detail 10.0.0.7")
            return SimpleNamespace(execute=lambda sql: None)

        return answer

    def install(self, state: Any) -> None:
        state.db = SimpleNamespace(connection=self._connection)
        state.qdrant = SimpleNamespace(get_collections=self.check("qdrant"))
        state.cache = SimpleNamespace(ping=self.check("redis"))
        state.kafka_admin = SimpleNamespace(list_topics=self.check("kafka"))
        state.relay = None

    @contextmanager
    def _connection(self, timeout: float) -> Iterator[Any]:
        yield self.check("postgres")()


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
def probe(fake_services: FakeServices, fakes: Fakes) -> Iterator[TestClient]:
    app = create_app(fake_services.settings)
    fake_services.install(app)
    model = SimpleNamespace(
        name="m",
        error=None,
        embedder=object(),
        spec=SimpleNamespace(name="m", version="v" * 64, dimension=8),
    )
    app.dependency_overrides[deps.get_model] = lambda: model
    fakes.install(app.state)
    yield TestClient(app)
    app.dependency_overrides.clear()


def test_healthz_reaches_no_dependency(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_200_and_degraded_without_redis(probe: TestClient, fakes: Fakes) -> None:
    fakes.down = {"redis"}
    response = probe.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["dependencies"]["redis"] == {"status": "degraded", "reachable": False}
    assert body["dependencies"]["postgres"] == {"status": "ok", "reachable": True}


def test_readyz_is_503_without_postgres(probe: TestClient, fakes: Fakes) -> None:
    fakes.down = {"postgres", "kafka"}
    response = probe.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["dependencies"]["postgres"]["status"] == "unavailable"
    assert body["dependencies"]["kafka"]["status"] == "degraded"


@pytest.mark.parametrize("headers", [{}, {"X-Admin-Key": "wrong"}, {"X-API-Key": ADMIN_KEY}])
def test_readyz_tells_no_internals_without_the_admin_key(
    probe: TestClient, fakes: Fakes, headers: dict[str, str]
) -> None:
    fakes.down = {"redis"}
    response = probe.get("/readyz", headers=headers)
    text = response.text
    assert "internal detail" not in text and "ConnectionError" not in text
    assert "v" * 64 not in text and "relay" not in text and "latencyMs" not in text
    assert response.json()["model"] == {"loaded": True}


def test_readyz_tells_the_admin_what_failed(probe: TestClient, fakes: Fakes) -> None:
    fakes.down = {"redis"}
    body = probe.get("/readyz", headers={"X-Admin-Key": ADMIN_KEY}).json()
    assert "internal detail" in body["dependencies"]["redis"]["error"]
    assert body["dependencies"]["postgres"]["latencyMs"] >= 0
    assert body["model"]["version"] == "v" * 64
    assert body["relay"]["inThisProcess"] is False
