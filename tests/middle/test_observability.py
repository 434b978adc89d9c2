"""On the real catalog: an upload's trace goes from the span that wrote its outbox row, through
the relay's publish (its Kafka headers) and the run's tags, to the run's steps and the event of
its completion; and the pipeline's figures for /metrics are read from the catalog."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from deeplens import clients, events, tracing
from deeplens.catalog import runs
from deeplens.catalog.stats import QUANTILES, read
from deeplens.relay import OutboxRelay
from deeplens.settings import Settings
from deeplens_dagster.tracing import run_tags
from tests.middle import seed
from tests.middle.runs import Tenancy

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")


class RecordingProducer:
    """Records what the relay produces, headers included; every message is delivered."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes, dict[str, str]]] = []

    def produce(self, topic: str, **message: Any) -> None:
        self.produced.append((topic, message["value"], dict(message.get("headers") or {})))
        message["on_delivery"](None, None)

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        return 0


def outbox_headers(conn: psycopg.Connection, image_id: uuid.UUID, topic: str) -> dict[str, str]:
    [row] = conn.execute(
        "SELECT headers FROM deeplens.outbox WHERE topic = %s AND payload->'data'->>'imageId' = %s",
        (topic, str(image_id)),
    ).fetchall()
    return dict(row[0] or {})


def parent_of(headers: dict[str, str]) -> tuple[int, int]:
    """The (trace id, span id) a ``traceparent`` names."""
    _, trace_id, span_id, _ = headers["traceparent"].split("-")
    return int(trace_id, 16), int(span_id, 16)


def ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def test_an_uploads_trace_goes_through_the_outbox_the_relay_and_the_run(
    tenancy: Tenancy,
    spans: InMemorySpanExporter,
    deeplens_env: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with tracing.span("POST /api/v1/images", kind=SpanKind.SERVER) as request:
        image = tenancy.upload(seed.photo(1))
    request_ids = request.get_span_context().trace_id, request.get_span_context().span_id
    assert parent_of(outbox_headers(tenancy.conn, image.image_id, events.TOPIC_UPLOADED)) == (
        request_ids
    ), "the outbox row keeps the context it was written in"

    producer = RecordingProducer()
    monkeypatch.setattr(clients, "kafka_producer", lambda settings, **config: producer)
    relay = OutboxRelay(deeplens_env)
    while relay.publish_batch(tenancy.conn):
        pass
    [sent] = [
        headers
        for topic, value, headers in producer.produced
        if json.loads(value)["data"].get("imageId") == str(image.image_id)
    ]
    [publish] = [
        s
        for s in spans.get_finished_spans()
        if s.name == f"publish {events.TOPIC_UPLOADED}"
        and (s.attributes or {}).get(tracing.CORRELATION_ID) == str(image.correlation_id)
    ]
    assert publish.kind == SpanKind.PRODUCER
    assert publish.parent is not None and publish.parent.span_id == request_ids[1]
    assert parent_of(sent) == ids(publish), "the message's traceparent is the publish span"

    result = tenancy.run([image.image_id], tags=run_tags(sent))

    assert result.success
    steps = {s.name: s for s in spans.get_finished_spans() if s.name.startswith("ingest ")}
    assert set(steps) == {
        "ingest images",
        "ingest efficientnet_lite0/embeddings",
        "ingest efficientnet_lite0/indexed_vectors",
    }
    for step in steps.values():
        assert step.parent is not None and step.parent.span_id == ids(publish)[1]
        assert ids(step)[0] == request_ids[0], "one trace, from the request to the index"
        attributes = step.attributes or {}
        assert list(attributes[tracing.CORRELATION_IDS]) == [str(image.correlation_id)]  # type: ignore[arg-type]
        assert attributes[tracing.TENANT_ID] == tenancy.tenant_id
        assert attributes["dagster.run_id"] == result.run_id
    completed = outbox_headers(tenancy.conn, image.image_id, events.TOPIC_COMPLETED)
    assert parent_of(completed) == ids(steps["ingest efficientnet_lite0/indexed_vectors"])


def test_the_pipeline_figures_are_read_from_the_catalog(tenancy: Tenancy) -> None:
    done = tenancy.upload_photos(1, 2)
    tenancy.upload(seed.photo(3))  # accepted, not yet taken up
    assert tenancy.run(done).success
    run_id = f"run-{uuid.uuid4()}"
    runs.beat(tenancy.conn, run_id, tenancy.tenant_id, "host", 1)
    runs.end(tenancy.conn, run_id, "failure")

    stats = read(tenancy.conn, window_seconds=900)

    mine = {r.status: r.images for r in stats.images if r.tenant_id == tenancy.tenant_id}
    assert mine == {"completed": 2, "uploaded": 1}
    waiting, oldest = stats.backlog()[tenancy.tenant_id]
    assert waiting == 1 and oldest >= 0
    assert stats.searchable >= 2
    assert set(stats.searchable_quantiles) == set(QUANTILES)
    assert 0 < stats.searchable_quantiles[0.5] <= stats.searchable_quantiles[0.99]
    assert stats.runs_ended.get("failure", 0) >= 1
    assert stats.outbox_pending >= 1, "nothing relayed these events"
