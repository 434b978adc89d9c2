"""Session fixtures: the real local stack, started once through the code behind `deeplens up`.

Tests that need no service don't use these fixtures and so never wait for the stack. With
``DEEPLENS_DATABASE_URL`` / ``DEEPLENS_REDIS_URL`` / ... set, the stack uses those servers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from deeplens import tracing
from deeplens_local.model import projection
from deeplens_local.stack.stack import Stack, StackConfig

# The tests' stack notices faults within seconds rather than the production defaults' minutes,
# so that the fault tests (tests/faults) finish in CI time. A variable set outside wins.
FAST_HEALING = {
    name: os.environ.get(name, value)
    for name, value in {
        "DEEPLENS_RUN_HEARTBEAT_SECONDS": "2",
        "DEEPLENS_RUN_DEAD_AFTER_SECONDS": "20",
        "DEEPLENS_RETRY_BACKOFF_SECONDS": "2",
        "DEEPLENS_RETRY_BACKOFF_MAX_SECONDS": "10",
        "DEEPLENS_STUCK_AFTER_SECONDS": "45",
    }.items()
}
# Its tenants start with limits well above what the tests send; tests/security sets the limits
# it tests on its own tenants.
GENEROUS_LIMITS = {
    name: os.environ.get(name, value)
    for name, value in {
        "DEEPLENS_DEFAULT_UPLOADS_PER_SECOND": "2000",
        "DEEPLENS_DEFAULT_SEARCHES_PER_SECOND": "2000",
        "DEEPLENS_DEFAULT_READS_PER_SECOND": "5000",
    }.items()
}

# Its processes export their spans as JSON lines into the stack's home (HOME/traces.jsonl), which
# tests/e2e/test_observability.py reads.
TRACED = {
    name: os.environ.get(name, value) for name, value in {"DEEPLENS_OTEL_EXPORTER": "file"}.items()
}


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The stack; while it runs, this process has its settings (DEEPLENS_*), as its children
    do, so that resources and clients built in a test reach it.

    Its home is outside pytest's temporary directory: the embedded PostgreSQL runs as another
    user (it refuses root) and must traverse the path to its data, and another pytest session
    starting meanwhile makes pytest's own directory private again.
    """
    home = Path(tempfile.mkdtemp(prefix="deeplens-tests-"))
    # A third, deliberately bad model beside the built-in ones (tests/e2e/test_models.py).
    models = {"DEEPLENS_MODELS_FILE": str(projection.models_file(home / "models"))}
    config = StackConfig.on_free_ports(
        home, environ={**os.environ, **FAST_HEALING, **GENEROUS_LIMITS, **TRACED, **models}
    )
    try:
        with Stack(config) as running, pytest.MonkeyPatch.context() as env:
            for name, value in running.env.items():
                if name.startswith("DEEPLENS_"):
                    env.setenv(name, value)
            yield running
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def api_url(stack: Stack) -> str:
    return stack.endpoints["api"].url


@pytest.fixture(scope="session")
def ui_url(stack: Stack) -> str:
    return stack.endpoints["ui"].url


@pytest.fixture(scope="session")
def admin_key(stack: Stack) -> str:
    return stack.env["DEEPLENS_ADMIN_KEY"]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans this process records during the test (this process traces from then on: a
    tracer provider is global, and installed once)."""
    if not tracing.enabled():
        tracing.install(TracerProvider())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # its processor drops what later tests record


# The session's stack, and the local Qdrant server started on its own (tests/local_qdrant).
STACK_FIXTURES = {"stack", "api_url", "ui_url", "admin_key", "server", "own_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that runs servers of the local stack carries the `stack` marker:
    `pytest -m "not stack"` runs the layers below it (pure functions, routes with fakes, assets
    and sensors with fakes against a catalog database)."""
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


# Headless Chromium for the browser tests (tests/browser.py), shared by every test module.
pytest_plugins = ["tests.browser"]
