"""QdrantResource: the client is built on first use or ahead of it in the background; a run
worker does not import qdrant-client before its first step."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest
from qdrant_client import models as m

from deeplens_dagster.resources import QdrantResource

from .local_server import LocalQdrant


@pytest.mark.parametrize("background", [True, False])
def test_the_resource_client_reaches_the_server(
    server: LocalQdrant, name: str, background: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.client().create_collection(name, vectors_config=m.VectorParams(size=4, distance="Dot"))
    monkeypatch.setenv("DEEPLENS_QDRANT_URL", server.url)
    with dg.build_resources({"qdrant": QdrantResource()}) as resources:
        if background:
            resources.qdrant.connect_in_background()
        client = resources.qdrant.client
        assert name in [c.name for c in client.get_collections().collections]
        assert resources.qdrant.client is client  # one client for the run


def test_a_client_that_cannot_be_built_fails_the_step_that_uses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEEPLENS_QDRANT_URL", "http://bad host:port")
    bad = QdrantResource()
    with dg.build_resources({"qdrant": bad}) as resources, pytest.raises(Exception, match="bad"):
        resources.qdrant.connect_in_background()
        resources.qdrant.client  # noqa: B018 - the property raises the background error


def test_loading_the_code_location_does_not_import_qdrant_client() -> None:
    code = "import sys, deeplens_dagster.definitions; print('qdrant_client' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
