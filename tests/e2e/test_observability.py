"""Observability on the real stack.

- /metrics, scraped after uploads and searches, shows their counts whichever of the API's
  worker processes answers (multiprocess mode), and the pipeline's figures from the catalog.
- One upload's trace, exported by every process of the stack as JSON lines into its home
  (``DEEPLENS_OTEL_EXPORTER=file``, tests/conftest.py), links the upload request, the relay's
  publish and the run's three steps, each naming the image's correlation id.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from deeplens import events, tracing
from deeplens_local import synthetic
from deeplens_local.stack.stack import Stack
from tests.e2e.helpers import create_tenant, upload, wait_terminal

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
T = TypeVar("T")


def scrape(api_url: str) -> Samples:
    response = httpx.get(f"{api_url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.5)
    return found


def search(client: httpx.Client, key: str, data: bytes) -> dict[str, Any]:
    response = client.post(
        "/api/v1/search",
        headers={"X-API-Key": key},
        files={"file": ("query.jpg", data, "image/jpeg")},
        data={"topK": "3"},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_metrics_count_uploads_and_searches_across_the_workers(
    api_url: str, admin_key: str
) -> None:
    tenant_id = f"metrics-{uuid.uuid4().hex[:8]}"
    key = str(create_tenant(api_url, admin_key, tenant_id)["apiKey"])
    photos = [synthetic.photo_bytes(7100 + n) for n in range(3)]
    before = scrape(api_url)
    with httpx.Client(base_url=api_url, timeout=60) as client:
        accepted = [upload(client, key, data, f"{n}.jpg") for n, data in enumerate(photos)]
        assert [r.status_code for r in accepted] == [202, 202, 202]
        assert upload(client, key, photos[0], "again.jpg").status_code == 200
        ids = [r.json()["imageId"] for r in accepted]
        wait_terminal(client, key, ids)
        # A completion event published meanwhile makes the cache stale: search until a hit.
        searches = [search(client, key, photos[1])["cached"]]
        while not searches[-1] and len(searches) < 5:
            searches.append(search(client, key, photos[1])["cached"])
        assert searches[-1], searches

    def delta(after: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Several scrapes land on different workers: each sees every worker's counts.
    for _ in range(4):
        after = scrape(api_url)
        assert delta(after, "deeplens_uploads_total", outcome="accepted", status="202") == 3
        assert delta(after, "deeplens_uploads_total", outcome="duplicate", status="200") == 1
        requests = "deeplens_http_requests_total"
        assert delta(after, requests, method="POST", route="/api/v1/images", status="202") == 3
        searched = len(searches)
        assert (
            delta(after, requests, method="POST", route="/api/v1/search", status="200") == searched
        )
        timed = "deeplens_http_request_duration_seconds_count"
        assert delta(after, timed, method="POST", route="/api/v1/search", status="200") == searched
        assert delta(after, "deeplens_search_cache_lookups_total", result="hit") == 1
        assert delta(after, "deeplens_search_cache_lookups_total", result="miss") == searched - 1
        polled = delta(
            after, requests, method="GET", route="/api/v1/images/{image_id}/status", status="200"
        )
        assert polled >= len(ids)

    def pipeline_figures() -> Samples | None:
        """The figures once they count this test's images and its run's end (the catalog is
        read every 10 s at most; a run's end is recorded at the reconciler's next tick)."""
        samples = scrape(api_url)
        completed = value(samples, "deeplens_images", tenant=tenant_id, status="completed")
        ended = value(samples, "deeplens_recent_runs_ended", outcome="success")
        return samples if completed == 3 and ended >= 1 else None

    samples = eventually(pipeline_figures, "the catalog's figures in /metrics", timeout=90)
    assert value(samples, "deeplens_pipeline_metrics_up") == 1
    assert value(samples, "deeplens_recent_searchable_images") >= 3
    assert value(samples, "deeplens_recent_upload_to_searchable_seconds", quantile="0.5") > 0
    assert value(samples, "deeplens_backlog_images", tenant=tenant_id) == 0


def spans_of(stack: Stack, correlation_id: str) -> list[dict[str, Any]]:
    """The exported spans that name `correlation_id` (alone, or among a run's)."""
    path = stack.home / "traces.jsonl"
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        span = json.loads(line)
        attributes = span.get("attributes") or {}
        if correlation_id == attributes.get(tracing.CORRELATION_ID) or correlation_id in (
            attributes.get(tracing.CORRELATION_IDS) or []
        ):
            found.append(span)
    return found


def test_one_uploads_trace_links_the_request_the_relay_publish_and_the_run(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    key = str(create_tenant(api_url, admin_key, f"traced-{uuid.uuid4().hex[:8]}")["apiKey"])
    with httpx.Client(base_url=api_url, timeout=60) as client:
        response = upload(client, key, synthetic.photo_bytes(7200), "traced.jpg")
        assert response.status_code == 202, response.text
        image_id = response.json()["imageId"]
        assert wait_terminal(client, key, [image_id])[image_id]["status"] == "completed"
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT correlation_id FROM deeplens.images WHERE image_id = %s", (image_id,)
        ).fetchone()
    assert row is not None
    correlation_id = str(row[0])
    wanted = {
        "POST /api/v1/images",
        f"publish {events.TOPIC_UPLOADED}",
        "ingest images",
        "ingest efficientnet_lite0/embeddings",
        "ingest efficientnet_lite0/indexed_vectors",
    }

    def exported() -> dict[str, dict[str, Any]] | None:
        by_name = {s["name"]: s for s in spans_of(stack, correlation_id)}
        return by_name if wanted <= set(by_name) else None

    spans = eventually(exported, "the upload's spans exported by the API and the run worker")

    request, publish = spans["POST /api/v1/images"], spans[f"publish {events.TOPIC_UPLOADED}"]
    steps = [
        spans[f"ingest {step}"]
        for step in (
            "images",
            "efficientnet_lite0/embeddings",
            "efficientnet_lite0/indexed_vectors",
        )
    ]
    trace_ids = {s["context"]["trace_id"] for s in (request, publish, *steps)}
    assert len(trace_ids) == 1, "one trace from the request to the index"
    assert publish["parent_id"] == request["context"]["span_id"], "outbox row → relay"
    for step in steps:
        assert step["parent_id"] == publish["context"]["span_id"], "Kafka headers → run tags"
        assert step["resource"]["attributes"]["service.name"] == "deeplens-run"
    assert request["resource"]["attributes"]["service.name"] == "deeplens-api"
    assert request["attributes"][tracing.IMAGE_ID] == image_id
