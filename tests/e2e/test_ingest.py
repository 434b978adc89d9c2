"""Upload → outbox → Kafka → sensor → Dagster run → Qdrant → events, on the real local stack."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from deeplens import clients, events
from deeplens_local import synthetic
from deeplens_local.stack.stack import Stack
from tests.e2e.helpers import create_tenant, graphql, near_duplicate, upload, wait_terminal

N_IMAGES = 40

MATERIALIZATIONS = """
query ($key: AssetKeyInput!, $partition: String!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(partitions: [$partition], limit: 100) {
        partition runId metadataEntries { label }
      }
    }
  }
}
"""

RUNS = """
query ($tenant: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $tenant}]}) {
    ... on Runs { results { runId status } }
  }
}
"""


def events_on(bootstrap: str, topic: str) -> list[dict[str, object]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"e2e-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: list[dict[str, object]] = []
        idle = 0
        while idle < 3:
            batch = consumer.consume(500, timeout=0.5)
            idle = 0 if batch else idle + 1
            found.extend(json.loads(m.value()) for m in batch if m.error() is None)
        return found
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def tenants(api_url: str, admin_key: str) -> dict[str, dict[str, object]]:
    suffix = uuid.uuid4().hex[:6]
    return {
        "main": create_tenant(api_url, admin_key, f"e2e-main-{suffix}"),
        "other": create_tenant(api_url, admin_key, f"e2e-other-{suffix}"),
    }


@pytest.fixture(scope="module")
def ingested(api_url: str, tenants: dict[str, dict[str, object]]) -> dict[int, str]:
    """Seed → image id of the 40 images uploaded (concurrently) and processed to the end."""
    key = str(tenants["main"]["apiKey"])
    with httpx.Client(base_url=api_url, timeout=30) as client:

        def one(seed: int) -> tuple[int, str]:
            response = upload(client, key, synthetic.photo_bytes(seed), f"photo-{seed}.jpg")
            assert response.status_code == 202, response.text
            body = response.json()
            for field in ("imageId", "status", "statusCheckUrl", "webSocketUrl", "uploadTimeMs"):
                assert field in body, body
            return seed, str(body["imageId"])

        with ThreadPoolExecutor(4) as pool:
            uploaded = dict(pool.map(one, range(N_IMAGES)))
        views = wait_terminal(client, key, list(uploaded.values()))
    failed = {i: v for i, v in views.items() if v["status"] != "completed"}
    assert not failed, failed
    for view in views.values():
        assert view["percentComplete"] == 100
        assert "searchableAfter" in view
        steps = {s["step"]: s for s in view["processingSteps"]}
        assert steps["feature_extraction"]["status"] == "completed"
        assert steps["vector_indexing"]["status"] == "completed"
    return uploaded


def test_collection_holds_exactly_the_uploads(
    stack: Stack, tenants: dict[str, dict[str, object]], ingested: dict[int, str]
) -> None:
    client = clients.qdrant(stack.child_settings())
    alias = str(tenants["main"]["collection"])
    assert client.count(alias, exact=True).count == N_IMAGES
    points = client.retrieve(alias, ids=list(ingested.values()))
    assert {str(p.id) for p in points} == set(ingested.values())
    other = str(tenants["other"]["collection"])
    assert client.count(other, exact=True).count == 0


def test_one_completed_event_per_image(
    stack: Stack, tenants: dict[str, dict[str, object]], ingested: dict[int, str]
) -> None:
    tenant_id = tenants["main"]["tenantId"]
    deadline = time.monotonic() + 30
    while True:
        found = [
            e
            for e in events_on(stack.env["DEEPLENS_KAFKA_BOOTSTRAP"], events.TOPIC_COMPLETED)
            if e["tenantId"] == tenant_id
        ]
        if len(found) >= N_IMAGES or time.monotonic() > deadline:
            break
        time.sleep(1)
    image_ids = [e["data"]["imageId"] for e in found]  # type: ignore[index]
    assert sorted(image_ids) == sorted(ingested.values())
    sample = events.ProcessingCompleted.model_validate(found[0])
    assert sample.event_type == "processing.completed"
    assert {s.step for s in sample.data.processing_steps} >= {
        "feature_extraction",
        "vector_indexing",
    }


def test_ui_shows_materializations_of_all_three_assets(
    ui_url: str, tenants: dict[str, dict[str, object]], ingested: dict[int, str]
) -> None:
    partition, model = str(tenants["main"]["tenantId"]), str(tenants["main"]["model"])
    for asset in (["images"], [model, "embeddings"], [model, "indexed_vectors"]):
        data = graphql(ui_url, MATERIALIZATIONS, {"key": {"path": asset}, "partition": partition})
        found = data["assetOrError"]["assetMaterializations"]
        assert found, f"no materialization of {asset} for {partition}"
        assert all(m["partition"] == partition for m in found)


RUN = """
query ($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { status tags { key value } } }
}
"""


def test_the_ui_opens_without_the_newsletter_pop_up(ui_url: str) -> None:
    assert graphql(ui_url, "{ shouldShowNux }")["shouldShowNux"] is False


def test_an_images_lineage_names_the_run_that_indexed_it(
    api_url: str, ui_url: str, tenants: dict[str, dict[str, object]], ingested: dict[int, str]
) -> None:
    """GET /images/{id}/lineage names the run, model, version and physical collection; the
    run exists in Dagster, for the image's tenant partition, and its link opens it."""
    tenant = tenants["main"]
    key, image_id = str(tenant["apiKey"]), ingested[3]
    with httpx.Client(base_url=api_url, timeout=30) as client:
        response = client.get(f"/api/v1/images/{image_id}/lineage", headers={"X-API-Key": key})
        assert response.status_code == 200, response.text
        lineage = response.json()
        other = client.get(
            f"/api/v1/images/{image_id}/lineage",
            headers={"X-API-Key": str(tenants["other"]["apiKey"])},
        )
    assert other.status_code == 404, "another tenant learns nothing of the image"
    assert lineage["imageId"] == image_id and lineage["model"] == tenant["model"]
    assert len(lineage["modelVersion"]) == 64
    assert lineage["collection"].startswith(str(tenant["collection"]) + "_v")
    [entry] = lineage["models"]
    assert entry["serving"] and entry["runId"] == lineage["runId"]
    assert lineage["runUrl"] == f"{ui_url}/runs/{lineage['runId']}"
    run = graphql(ui_url, RUN, {"runId": lineage["runId"]})["runOrError"]
    assert run["status"] == "SUCCESS"
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/partition"] == tenant["tenantId"]
    assert httpx.get(lineage["runUrl"], timeout=30).status_code == 200


def test_near_duplicate_finds_its_original_only_in_its_tenant(
    api_url: str, tenants: dict[str, dict[str, object]], ingested: dict[int, str]
) -> None:
    main_key, other_key = str(tenants["main"]["apiKey"]), str(tenants["other"]["apiKey"])
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for seed in (0, 7, 19, 33):
            query = near_duplicate(seed)
            response = client.post(
                "/api/v1/search",
                headers={"X-API-Key": main_key},
                files={"file": ("query.jpg", query, "image/jpeg")},
                data={"topK": "5"},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["results"][0]["imageId"] == ingested[seed], body
            assert body["results"][0]["fileName"] == f"photo-{seed}.jpg"
            assert "tookMs" in body and body["model"]
            theirs = client.post(
                "/api/v1/search",
                headers={"X-API-Key": other_key},
                files={"file": ("query.jpg", query, "image/jpeg")},
            )
            assert theirs.status_code == 200, theirs.text
            assert not set(r["imageId"] for r in theirs.json()["results"]) & set(ingested.values())
        similar = client.get(
            f"/api/v1/images/{ingested[3]}/similar",
            params={"topK": 3},
            headers={"X-API-Key": main_key},
        )
        assert similar.status_code == 200, similar.text
        ids = [r["imageId"] for r in similar.json()["results"]]
        assert len(ids) == 3 and ingested[3] not in ids


def test_same_files_again_create_no_points_and_no_runs(
    stack: Stack,
    api_url: str,
    ui_url: str,
    tenants: dict[str, dict[str, object]],
    ingested: dict[int, str],
) -> None:
    tenant_id = str(tenants["main"]["tenantId"])
    key = str(tenants["main"]["apiKey"])
    runs_before = graphql(ui_url, RUNS, {"tenant": tenant_id})["runsOrError"]["results"]
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for seed, image_id in ingested.items():
            response = upload(client, key, synthetic.photo_bytes(seed), f"again-{seed}.jpg")
            assert response.status_code == 200, response.text
            assert response.json()["imageId"] == image_id
            assert response.json()["duplicateOf"] == image_id
    time.sleep(5)  # several sensor ticks
    runs_after = graphql(ui_url, RUNS, {"tenant": tenant_id})["runsOrError"]["results"]
    assert len(runs_after) == len(runs_before)
    client = clients.qdrant(stack.child_settings())
    assert client.count(str(tenants["main"]["collection"]), exact=True).count == N_IMAGES
