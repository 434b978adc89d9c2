"""A tenant moves to a second model by an asset backfill through Dagster's backfill daemon,
while a client searches: the new index is built beside the serving one, the blocking retrieval
check passes, and only then does search move to it; one call moves it back; a deliberately bad
model (a random projection, registered by the stack's models file) fails the check and search
stays where it was."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import onnx
import pytest

from deeplens import clients, vectors
from deeplens.model.registry import DEFAULT_MODEL, get_model
from deeplens_cli.admin import BACKFILL, LAUNCH_BACKFILL, backfill_params
from deeplens_local import synthetic
from deeplens_local.model import projection
from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import TenantHandle, create_tenant
from tests.e2e.helpers import graphql
from tests.faults.harness import assert_healed, photos, upload_all

SECOND = "efficientnet_lite2"
PROBE = "stale_probe"


def backfill(ui_url: str, tenant_id: str, model: str, timeout: float = 400) -> str:
    """An asset backfill of the model's assets for the tenant's partition, as the UI launches
    it; returns its end status."""
    params = backfill_params(tenant_id, model)
    answer = graphql(ui_url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = graphql(ui_url, BACKFILL, {"id": answer["backfillId"]})
        state = str(status["partitionBackfillOrError"]["status"])
        if state not in ("REQUESTED", "CANCELING", "FAILING"):
            return state
        time.sleep(1)
    raise AssertionError(f"the backfill of {model} for {tenant_id} did not end in {timeout}s")


class Searcher(threading.Thread):
    """Searches the tenant with a query image in a loop, noting each answer's model."""

    def __init__(self, api_url: str, tenant: TenantHandle, query: bytes) -> None:
        super().__init__(daemon=True)
        self.api_url, self.tenant, self.query = api_url, tenant, query
        self.models: list[str] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=30) as client:
            while not self.stopping.is_set():
                response = client.post(
                    "/api/v1/search",
                    headers=self.tenant.headers,
                    files={"file": ("q.jpg", self.query, "image/jpeg")},
                    data={"topK": "3"},
                )
                if response.status_code == 200:
                    self.models.append(response.json()["model"])
                else:
                    self.errors.append(f"{response.status_code} {response.text[:200]}")
                time.sleep(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


def models_of(api_url: str, admin_key: str, tenant_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{api_url}/api/v1/admin/tenants/{tenant_id}/models",
        headers={"X-Admin-Key": admin_key},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def add_model(api_url: str, admin_key: str, tenant_id: str, model: str) -> dict[str, Any]:
    response = httpx.post(
        f"{api_url}/api/v1/admin/tenants/{tenant_id}/models",
        headers={"X-Admin-Key": admin_key},
        json={"model": model, "serve": True},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def changes(seen: list[str]) -> list[str]:
    """The models in the order search answered with them, each run of repeats once."""
    return [m for n, m in enumerate(seen) if n == 0 or seen[n - 1] != m]


@pytest.mark.timeout(1200)
def test_a_tenant_migrates_to_a_second_model_by_backfill_while_searching(
    stack: Stack, api_url: str, ui_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "migrate")
    first = tenant.body["model"]
    accepted = upload_all(api_url, tenant, photos(200, 80_000))
    assert_healed(stack, tenant, accepted)
    searcher = Searcher(api_url, tenant, synthetic.photo_bytes(80_007, 320, 240))
    searcher.start()
    try:
        time.sleep(2)
        added = add_model(api_url, admin_key, tenant.tenant_id, SECOND)
        [pending] = [m for m in added["models"] if m["model"] == SECOND]
        assert (pending["state"], pending["serveWhenVerified"]) == ("pending", True)
        assert added["servingModel"] == first

        assert backfill(ui_url, tenant.tenant_id, SECOND) == "COMPLETED_SUCCESS"
        after = models_of(api_url, admin_key, tenant.tenant_id)
        [second] = [m for m in after["models"] if m["model"] == SECOND]
        assert after["servingModel"] == SECOND
        assert second["state"] == "ready" and second["lastCheck"]["passed"] is True
        assert second["lastCheck"]["recall"] >= second["lastCheck"]["servingRecall"] - 0.05
        assert second["modelVersion"] == second["registeredVersion"]
        time.sleep(2)

        back = httpx.post(
            f"{api_url}/api/v1/admin/tenants/{tenant.tenant_id}/models/{first}/serve",
            headers={"X-Admin-Key": admin_key},
            timeout=30,
        )
        assert back.status_code == 200 and back.json()["servingModel"] == first, back.text
        time.sleep(2)
    finally:
        searcher.stop()
    assert searcher.errors == [], searcher.errors[:5]
    assert changes(searcher.models) == [first, SECOND, first], changes(searcher.models)

    # The image's lineage now has an entry per model, each naming its run.
    image_id = accepted[0]
    lineage = httpx.get(
        f"{api_url}/api/v1/images/{image_id}/lineage", headers=tenant.headers, timeout=30
    ).json()
    by_model = {e["model"]: e for e in lineage["models"]}
    assert set(by_model) == {first, SECOND}
    assert by_model[first]["serving"] and not by_model[SECOND]["serving"]
    assert by_model[SECOND]["runId"] and by_model[SECOND]["runId"] != by_model[first]["runId"]

    # Either model's index can be searched by name while the other serves.
    named = httpx.get(
        f"{api_url}/api/v1/images/{image_id}/similar",
        params={"model": SECOND, "topK": 3},
        headers=tenant.headers,
        timeout=30,
    )
    assert named.status_code == 200 and named.json()["model"] == SECOND, named.text

    # A ready model whose index lacks searchable images (a batch failed for it alone) does not
    # serve until rebuilt.
    qdrant = clients.qdrant(stack.child_settings())
    second_alias = f"tenant_{tenant.tenant_id}_{SECOND}_vectors"
    vectors.delete_points(qdrant, [second_alias], [uuid.UUID(accepted[1])])
    incomplete = httpx.post(
        f"{api_url}/api/v1/admin/tenants/{tenant.tenant_id}/models/{SECOND}/serve",
        headers={"X-Admin-Key": admin_key},
        timeout=30,
    )
    assert incomplete.status_code == 409 and "rebuild it" in incomplete.text, incomplete.text

    # A bad model fails the retrieval check: it is rejected and search stays where it was.
    add_model(api_url, admin_key, tenant.tenant_id, projection.NAME)
    assert backfill(ui_url, tenant.tenant_id, projection.NAME) == "COMPLETED_FAILED"
    final = models_of(api_url, admin_key, tenant.tenant_id)
    [bad] = [m for m in final["models"] if m["model"] == projection.NAME]
    assert final["servingModel"] == first
    assert bad["state"] == "rejected" and bad["lastCheck"]["passed"] is False
    assert bad["lastCheck"]["recall"] < bad["lastCheck"]["servingRecall"] - 0.05
    refused = httpx.post(
        f"{api_url}/api/v1/admin/tenants/{tenant.tenant_id}/models/{projection.NAME}/serve",
        headers={"X-Admin-Key": admin_key},
        timeout=30,
    )
    assert refused.status_code == 409, refused.text


STALENESS = """
query ($key: AssetKeyInput!, $partition: String!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      staleStatusByPartition(partitions: [$partition])
      staleCausesByPartition(partitions: [$partition]) { category reason }
    }
  }
}
"""
RELOAD = """
mutation {
  reloadRepositoryLocation(repositoryLocationName: "deeplens") {
    __typename
    ... on WorkspaceLocationEntry { locationOrLoadError { __typename } }
  }
}
"""


def staleness(ui_url: str, model: str, tenant_id: str) -> tuple[str, list[dict[str, str]]]:
    node = graphql(
        ui_url, STALENESS, {"key": {"path": [model, "embeddings"]}, "partition": tenant_id}
    )["assetNodeOrError"]
    return node["staleStatusByPartition"][0], node["staleCausesByPartition"][0]


def write_probe(path: Path, release: str) -> str:
    """EfficientNet-Lite0's graph under another name, its file made different by `release`
    (the graph's doc string): the same vectors, a new checksum. Returns the checksum."""
    model = onnx.load(str(get_model(DEFAULT_MODEL).path))
    model.doc_string = f"stale probe, release {release}"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reload_code_location(ui_url: str) -> None:
    answer = graphql(ui_url, RELOAD)["reloadRepositoryLocation"]
    assert answer["locationOrLoadError"]["__typename"] == "RepositoryLocation", answer


def backfill_once_loaded(ui_url: str, tenant_id: str, model: str, within: float = 150) -> str:
    """`backfill`, launched again while the daemon does not know the model's assets yet (it
    reloads code locations every 60 s; the UI's reload is the webserver's own)."""
    deadline = time.monotonic() + within
    while (status := backfill(ui_url, tenant_id, model)) == "FAILED":
        assert time.monotonic() < deadline, f"the daemon never took up {model}'s assets"
        time.sleep(10)
    return status


@pytest.mark.timeout(900)
def test_a_changed_model_file_marks_its_tenants_stale_and_materialize_changed_rebuilds_them(
    stack: Stack, api_url: str, ui_url: str, admin_key: str
) -> None:
    models_file = Path(stack.env["DEEPLENS_MODELS_FILE"])
    probe = models_file.parent / "probe" / "model.onnx"
    first = write_probe(probe, "1")
    with models_file.open("a") as entries:  # a user's own entry, as the model README shows
        entries.write(
            f"""
[models.{PROBE}]
path = "probe/model.onnx"
resample = "bicubic"
mean = [127.0, 127.0, 127.0]
std = [128.0, 128.0, 128.0]
input_node = "input"
output_node = "embedding"
dimension = 1280
"""
        )
    reload_code_location(ui_url)
    tenant = create_tenant(api_url, admin_key, "stale")
    assert_healed(stack, tenant, upload_all(api_url, tenant, photos(12, 81_000)))
    add = httpx.post(
        f"{api_url}/api/v1/admin/tenants/{tenant.tenant_id}/models",
        headers={"X-Admin-Key": admin_key},
        json={"model": PROBE},
        timeout=30,
    )
    assert add.status_code == 202, add.text
    assert backfill_once_loaded(ui_url, tenant.tenant_id, PROBE) == "COMPLETED_SUCCESS"
    assert staleness(ui_url, PROBE, tenant.tenant_id) == ("FRESH", [])

    second = write_probe(probe, "2")
    assert second != first
    reload_code_location(ui_url)
    status, causes = staleness(ui_url, PROBE, tenant.tenant_id)
    assert status == "STALE", causes
    assert any(c["category"] == "CODE" for c in causes), causes
    [held] = [
        m for m in models_of(api_url, admin_key, tenant.tenant_id)["models"] if m["model"] == PROBE
    ]
    assert (held["modelVersion"], held["registeredVersion"]) == (first, second)

    # "Materialize changed": the stale partitions of the model's assets, rebuilt by a backfill.
    assert backfill(ui_url, tenant.tenant_id, PROBE) == "COMPLETED_SUCCESS"
    assert staleness(ui_url, PROBE, tenant.tenant_id) == ("FRESH", [])
    [held] = [
        m for m in models_of(api_url, admin_key, tenant.tenant_id)["models"] if m["model"] == PROBE
    ]
    assert held["modelVersion"] == second and held["state"] == "ready"
