"""/metrics of an app with fakes: answers counted by route template and status, uploads by
outcome, the gate's refusals by reason, the pipeline's figures; and the admin key when the
setting asks for it. The real stack's scrape: tests/e2e/test_observability.py."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from deeplens.catalog.stats import PipelineStats, TenantImages
from deeplens.metrics import PipelineCollector
from tests.api.conftest import ADMIN_KEY, API_KEY, SLOW_KEY, FakeServices

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_answers_are_counted_by_route_template_status_and_upload_outcome(
    client: TestClient,
) -> None:
    """Counts go up by exactly what was asked (the registry outlives one app: deltas), under the
    route's template, never the path; refusals of the gate count too, with their reason."""
    status_route = "/api/v1/images/{image_id}/status"
    ids = [uuid.uuid4(), uuid.uuid4()]
    before = scrape(client)
    for image_id in ids:
        assert client.get(f"/api/v1/images/{image_id}/status").status_code == 401
    bad = client.post(
        "/api/v1/images", headers={"X-API-Key": API_KEY}, files={"file": ("a.jpg", b"not an image")}
    )
    assert bad.status_code in (400, 415)
    slow = [
        client.post("/api/v1/images", headers={"X-API-Key": SLOW_KEY}, data={"x": "y"}).status_code
        for _ in range(4)
    ]
    assert 429 in slow
    assert client.get("/no/such/path").status_code == 404
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "deeplens_http_requests_total"
    assert delta(requests, method="GET", route=status_route, status="401") == 2
    routes = {dict(labels).get("route", "") for name, labels in after if name == requests}
    assert not [r for r in routes if any(str(i) in r for i in ids)], "an id made a series"
    duration = "deeplens_http_request_duration_seconds_count"
    assert delta(duration, method="GET", route=status_route, status="401") == 2
    assert delta(requests, method="GET", route="unmatched", status="404") == 1
    assert delta("deeplens_gate_refusals_total", reason="unauthorized", status="401") == 2
    rate_limited = slow.count(429)
    assert delta("deeplens_gate_refusals_total", reason="upload_rate", status="429") == rate_limited
    assert delta("deeplens_uploads_total", outcome="refused", status=str(bad.status_code)) == 1
    assert delta("deeplens_uploads_total", outcome="refused", status="429") == rate_limited


def install(client: TestClient, collector: PipelineCollector) -> None:
    """What `lifespan` does with the catalog's figures (the fakes' app has no lifespan)."""
    app = client.app
    assert isinstance(app, FastAPI)
    app.state.pipeline_metrics = collector


def test_the_pipeline_figures_come_with_the_scrape(client: TestClient) -> None:
    stats = PipelineStats(
        images=[
            TenantImages("acme", "completed", 7, 3600.0),
            TenantImages("acme", "queued", 2, 30.0),
            TenantImages("acme", "retrying", 1, 90.0),
        ],
        outbox_pending=3,
        outbox_oldest_seconds=1.5,
        searchable=4,
        searchable_seconds_sum=10.0,
        searchable_quantiles={0.5: 2.0, 0.9: 4.0, 0.99: 4.5},
        runs_ended={"success": 5, "failure": 1},
        runs_in_progress=1,
    )
    reads: list[int] = []

    def read() -> PipelineStats:
        reads.append(1)
        return stats

    install(client, PipelineCollector(read, window_seconds=900))
    samples = scrape(client)
    scrape(client)

    assert len(reads) == 1, "the catalog is read at most once per cache period"
    assert value(samples, "deeplens_pipeline_metrics_up") == 1
    assert value(samples, "deeplens_images", tenant="acme", status="queued") == 2
    assert value(samples, "deeplens_backlog_images", tenant="acme") == 3
    assert value(samples, "deeplens_backlog_oldest_seconds", tenant="acme") == 90
    assert value(samples, "deeplens_outbox_pending_events") == 3
    assert value(samples, "deeplens_recent_searchable_images") == 4
    assert value(samples, "deeplens_recent_upload_to_searchable_seconds", quantile="0.99") == 4.5
    assert value(samples, "deeplens_recent_upload_to_searchable_mean_seconds") == 2.5
    assert value(samples, "deeplens_recent_runs_ended", outcome="failure") == 1
    assert value(samples, "deeplens_metrics_window_seconds") == 900


def test_a_catalog_that_cannot_be_read_leaves_the_scrape_standing(client: TestClient) -> None:
    def read() -> PipelineStats:
        raise OSError("catalog down")

    install(client, PipelineCollector(read, window_seconds=900))
    samples = scrape(client)
    assert value(samples, "deeplens_pipeline_metrics_up") == 0
    assert ("deeplens_images", frozenset()) not in samples


def test_metrics_want_the_admin_key_when_the_setting_says_so(
    client: TestClient, fake_services: FakeServices
) -> None:
    assert client.get("/metrics").status_code == 200, "open by default, without a tenant key"
    fake_services.settings.metrics_require_admin_key = True
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"X-API-Key": API_KEY}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    scrape(client, **{"X-Admin-Key": ADMIN_KEY})
    scrape(client, Authorization=f"Bearer {ADMIN_KEY}")
