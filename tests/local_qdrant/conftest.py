"""Fixtures: the local Qdrant server (see ``local_server.py``) and a fresh collection name."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from .local_server import LocalQdrant


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalQdrant]:
    """One server for the session (tests use their own collection names)."""
    running = LocalQdrant(tmp_path_factory.mktemp("qdrant") / "data")
    running.start()
    yield running
    running.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalQdrant]:
    """A server of the test's own, for tests that restart it."""
    running = LocalQdrant(tmp_path / "data")
    running.start()
    yield running
    running.stop()


@pytest.fixture
def client(server: LocalQdrant) -> Iterator[QdrantClient]:
    qdrant = server.client()
    yield qdrant
    qdrant.close()


@pytest.fixture
def name() -> str:
    """A collection name no other test uses."""
    return f"c_{uuid.uuid4().hex[:12]}"
