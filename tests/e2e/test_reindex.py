"""A reindex while a client uploads into the same tenant: the tenant's runs never interleave, the
new collection is swapped in only when it holds every image, and the previous one is kept for a
rollback that loses nothing indexed since."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from deeplens import clients, vectors
from deeplens_cli.admin import rebuild_params
from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import create_tenant
from tests.e2e.helpers import graphql
from tests.faults.harness import assert_healed, photos, upload_all

LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
  }
}
"""
RUN = "query ($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }"


def reindex(ui_url: str, tenant_id: str, model: str) -> str:
    """Launch the ingest job for the tenant's partition and model with no batch: a rebuild."""
    answer = graphql(ui_url, LAUNCH, {"params": rebuild_params(tenant_id, model)})["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return str(answer["run"]["runId"])


def wait_run(ui_url: str, run_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = str(graphql(ui_url, RUN, {"runId": run_id})["runOrError"]["status"])
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not end within {timeout:.0f}s")


@pytest.mark.timeout(900)
def test_a_reindex_during_uploads_keeps_every_image_and_can_be_rolled_back(
    stack: Stack, api_url: str, ui_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "reindex")
    alias = str(tenant.body["collection"])
    qdrant = clients.qdrant(stack.child_settings())
    first = upload_all(api_url, tenant, photos(40, 70_000))
    assert_healed(stack, tenant, first)
    before = vectors.alias_target(qdrant, alias)

    more: list[str] = []
    uploader = threading.Thread(
        target=lambda: more.extend(upload_all(api_url, tenant, photos(200, 70_100), clients_=2))
    )
    uploader.start()
    time.sleep(1.0)
    run_id = reindex(ui_url, tenant.tenant_id, str(tenant.body["model"]))
    assert wait_run(ui_url, run_id) == "SUCCESS"
    uploader.join()
    assert_healed(stack, tenant, first + more)
    rebuilt = vectors.alias_target(qdrant, alias)
    assert rebuilt is not None and rebuilt != before, "the reindex swapped the alias"
    names = {c.name for c in qdrant.get_collections().collections}
    assert before in names, "the replaced collection is kept for a rollback"

    answer = httpx.post(
        f"{api_url}/api/v1/admin/tenants/{tenant.tenant_id}/rollback",
        headers={"X-Admin-Key": admin_key},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["collection"] == before and answer.json()["replaced"] == rebuilt
    assert vectors.alias_target(qdrant, alias) == before
    assert_healed(stack, tenant, first + more)  # the old collection caught up: exact again
