"""Server spans of an app with fakes (FastAPI's own, once a tracer provider is installed): named
by route template, continuing the caller's trace; probes and scrapes untraced. (An upload's
whole trace: tests/e2e/test_observability.py.)"""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.api.conftest import API_KEY


def test_a_request_is_a_server_span_named_by_its_route_in_the_callers_trace(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    trace_id, parent_id = uuid.uuid4().int, uuid.uuid4().int >> 64
    headers = {"X-API-Key": API_KEY, "traceparent": f"00-{trace_id:032x}-{parent_id:016x}-01"}
    assert client.get("/api/v1/images/not-an-id/status", headers=headers).status_code == 422
    client.get("/healthz")
    client.get("/metrics")

    [span] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert span.name == "GET /api/v1/images/{image_id}/status"
    assert span.context is not None and span.context.trace_id == trace_id
    assert span.parent is not None and span.parent.span_id == parent_id
    assert (span.attributes or {})["http.route"] == "/api/v1/images/{image_id}/status"
    assert (span.attributes or {})["http.response.status_code"] == 422
