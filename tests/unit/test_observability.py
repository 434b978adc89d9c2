"""Traces, logs and metrics, piece by piece: the W3C context in headers and run tags, the
exporters the settings choose, JSON log lines with their ids, the search cache's counts and a
scrape that sums every worker's files."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from deeplens import batching, events, logs, metrics, tracing
from deeplens.cache import LOOKUPS, SearchCache
from deeplens.settings import Settings
from deeplens.spanfile import JsonLinesExporter
from deeplens_dagster.tracing import run_tags, trace_of


def traceparent(trace_id: int, span_id: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def test_a_span_started_from_headers_continues_their_trace(spans: InMemorySpanExporter) -> None:
    with tracing.span("request") as request:
        headers = tracing.carrier()
    context = request.get_span_context()
    assert headers["traceparent"].startswith(traceparent(context.trace_id, context.span_id)[:-2])

    child = tracing.start_span("publish", parent=headers)
    tracing.correlate(["c-1", "c-2"], child)
    child.end()

    [finished] = [s for s in spans.get_finished_spans() if s.name == "publish"]
    assert finished.context is not None and finished.parent is not None
    assert finished.context.trace_id == context.trace_id
    assert finished.parent.span_id == context.span_id
    assert finished.attributes is not None
    assert list(finished.attributes[tracing.CORRELATION_IDS]) == ["c-1", "c-2"]  # type: ignore[arg-type]
    assert finished.attributes[tracing.IMAGES] == 2
    assert tracing.headers_of(child)["traceparent"].split("-")[1] == f"{context.trace_id:032x}"


def test_a_batch_keeps_its_first_uploads_trace_for_the_run_tags() -> None:
    def uploaded(tenant_id: str) -> bytes:
        image_id = uuid.uuid4()
        return events.ImageUploaded(
            tenant_id=tenant_id,
            correlation_id=image_id,
            data=events.ImageUploadedData(
                image_id=image_id, file_path="k", file_name="a.jpg", file_size=1, content_type="x"
            ),
        ).to_json()

    first, second = traceparent(1, 1), traceparent(2, 2)
    messages = [
        batching.Message(0, 0, uploaded("acme")),  # published before tracing was on
        batching.Message(0, 1, uploaded("acme"), {"traceparent": first, "other": "x"}),
        batching.Message(0, 2, uploaded("acme"), {"traceparent": second}),
    ]
    [batch] = batching.plan(messages, lambda _: True, 10, {}).batches
    assert batch.trace == {"traceparent": first}
    tags = run_tags(batch.trace)
    assert tags == {"deeplens/traceparent": first}
    assert trace_of({**tags, "deeplens/tenant": "acme"}) == {"traceparent": first}
    assert trace_of({"deeplens/tenant": "acme"}) == {}


def test_the_settings_choose_the_exporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tracing.exporter(Settings(otel_exporter="file", home=tmp_path))
    assert isinstance(file, JsonLinesExporter)
    assert isinstance(tracing.exporter(Settings(otel_exporter="console")), ConsoleSpanExporter)
    grpc = tracing.exporter(Settings(otel_exporter="otlp", otel_endpoint="http://collector:4317"))
    assert isinstance(grpc, GrpcExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert isinstance(tracing.exporter(Settings(otel_exporter="otlp")), HttpExporter)


def test_the_file_exporter_appends_one_json_span_a_line(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    with tracing.span("one", attributes={tracing.CORRELATION_ID: "c-1"}):
        pass
    with tracing.span("two"):
        pass
    path = tmp_path / "traces" / "spans.jsonl"
    exporter = JsonLinesExporter(path)
    finished = [s for s in spans.get_finished_spans() if s.name in ("one", "two")]
    exporter.export(finished[:1])
    exporter.export(finished[1:])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["name"] for line in lines] == ["one", "two"]
    assert lines[0]["attributes"] == {tracing.CORRELATION_ID: "c-1"}
    assert lines[0]["context"]["trace_id"].startswith("0x")


def test_json_log_lines_carry_the_trace_span_and_correlation_ids(
    spans: InMemorySpanExporter,
) -> None:
    formatter = logs.formatter("json")
    context_filter = logs.ContextFilter()
    logger = logging.getLogger("deeplens.test")

    def line(message: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 1, message, (), None, extra=extra
        )
        context_filter.filter(record)
        return dict(json.loads(formatter.format(record)))

    plain = line("outside")
    assert (plain["level"], plain["logger"], plain["message"]) == (
        "INFO",
        "deeplens.test",
        "outside",
    )
    assert "trace_id" not in plain and "correlation_id" not in plain
    assert "time" in plain
    with tracing.span("work") as span:
        inside = line("inside", logs.correlation(uuid.UUID(int=7)))
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert inside["correlation_id"] == str(uuid.UUID(int=7))
    text = logs.formatter("text").format(
        logger.makeRecord("x", logging.INFO, __file__, 1, "hi", (), None)
    )
    assert text.endswith("INFO x: hi")


class FakeRedis:
    def __init__(self, stored: dict[str, bytes]) -> None:
        self.stored = stored

    def get(self, key: str) -> bytes | None:
        return self.stored.get(key)


def test_search_cache_lookups_are_counted_by_result() -> None:
    def count(result: str) -> float:
        return LOOKUPS.labels(result)._value.get()

    before = {r: count(r) for r in ("hit", "miss", "unavailable")}
    cache = SearchCache(FakeRedis({"known": b'{"hits": []}'}))  # type: ignore[arg-type]
    assert cache.get("known") == {"hits": []}
    assert cache.get("unknown") is None
    assert cache.get("other") is None
    assert cache.get(None) is None  # no key: Redis could not be reached
    after = {r: count(r) for r in ("hit", "miss", "unavailable")}
    assert {r: after[r] - before[r] for r in after} == {"hit": 1, "miss": 2, "unavailable": 1}


def test_a_scrape_in_multiprocess_mode_sums_every_workers_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two worker processes count into the directory; a scrape (from any process) sums them."""
    env = {**os.environ, metrics.MULTIPROCESS_DIR: str(tmp_path)}
    count = (
        "from prometheus_client import Counter; "
        "Counter('deeplens_test_uploads_total', 'test', ['outcome']).labels('accepted').inc({n})"
    )
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", count.format(n=n)], env=env, check=True)
    monkeypatch.setenv(metrics.MULTIPROCESS_DIR, str(tmp_path))

    text = metrics.exposition().decode()

    [family] = [
        f for f in text_string_to_metric_families(text) if f.name == "deeplens_test_uploads"
    ]
    [sample] = [s for s in family.samples if s.name.endswith("_total")]
    assert sample.value == 5
