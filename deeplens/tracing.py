"""Traces: OpenTelemetry spans from an upload's request, through the outbox and Kafka, to the
run's steps that make it searchable, in one trace, every span carrying the image's correlation
id.

Off by default (``DEEPLENS_OTEL_EXPORTER=none``): the global tracer stays OpenTelemetry's no-op
one, nothing is injected into headers, and the hot paths skip their spans. `configure` installs
the SDK with the exporter the settings name, once per process: the API's workers, `deeplens
relay` and the code location's run workers each call it as they start work. The standard
``OTEL_*`` variables are honoured by the SDK itself (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_EXPORTER_OTLP_*``, ``OTEL_BSP_*``).

How the context travels (W3C trace context):
- the upload's request span is current when the image row and its outbox row are written: the
  row keeps `carrier()` as the Kafka headers it is to be published with;
- the relay publishes each row in a ``publish`` span, child of the row's context, and sends that
  span's context as the message's ``traceparent`` header;
- the upload sensor puts the ``traceparent`` of a batch's first message on the run's tags, and
  the run's steps start their spans as its children (`deeplens_dagster.tracing`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

from deeplens.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

# Span attributes of DeepLens's own.
CORRELATION_ID = "deeplens.correlation_id"
CORRELATION_IDS = "deeplens.correlation_ids"
IMAGE_ID = "deeplens.image_id"
TENANT_ID = "deeplens.tenant_id"
IMAGES = "deeplens.images"
# A run's span names at most this many correlation ids (a rebuild takes a whole tenant).
MAX_CORRELATION_IDS = 1000

_lock = threading.Lock()
_provider: TracerProvider | None = None


def enabled() -> bool:
    """Whether this process records spans (`configure` installed an exporter)."""
    return _provider is not None


def tracer() -> trace.Tracer:
    return trace.get_tracer("deeplens")


def configure(settings: Settings, service: str) -> bool:
    """Install the SDK with the settings' exporter, once per process (later calls change
    nothing); returns whether spans are recorded. `service` names the process in traces unless
    ``OTEL_SERVICE_NAME`` does."""
    if settings.otel_exporter == "none":
        return enabled()
    with _lock:
        if _provider is None:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service}
            provider = TracerProvider(resource=Resource.create(attributes))
            provider.add_span_processor(BatchSpanProcessor(exporter(settings)))
            install(provider)
            log.info("traces: %s exporter, service %s", settings.otel_exporter, service)
    return True


def install(provider: TracerProvider) -> None:
    """Make `provider` the process's tracer provider (`configure`; tests, with their own)."""
    global _provider
    trace.set_tracer_provider(provider)
    _provider = provider


def exporter(settings: Settings) -> SpanExporter:
    """The exporter `settings.otel_exporter` names."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    if settings.otel_exporter == "file":
        from deeplens.spanfile import JsonLinesExporter

        return JsonLinesExporter(settings.otel_file or settings.home / "traces.jsonl")
    if settings.otel_exporter == "console":
        return ConsoleSpanExporter()
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    )
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=settings.otel_endpoint)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    return GrpcExporter(endpoint=settings.otel_endpoint)


def flush() -> None:
    """Export the spans ended so far (a run worker, before its process ends)."""
    if _provider is not None:
        _provider.force_flush(5000)


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``, ``tracestate``): empty when
    no span is recording."""
    headers: dict[str, str] = {}
    if _provider is not None:
        propagate.inject(headers)
    return headers


def headers_of(span: Span) -> dict[str, str]:
    """`span`'s context as W3C headers (empty for a span that is not recorded)."""
    headers: dict[str, str] = {}
    propagate.inject(headers, context=trace.set_span_in_context(span))
    return headers


def start_span(
    name: str,
    parent: Mapping[str, str] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Span:
    """A span (not made current) whose parent is the context in the `parent` headers, if any;
    the caller ends it."""
    context = propagate.extract(parent) if parent else None
    return tracer().start_span(name, context=context, kind=kind, attributes=attributes)


@contextmanager
def span(
    name: str,
    parent: Mapping[str, str] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A current span, child of the context in the `parent` headers (or of the current span);
    an exception that leaves it is recorded on it."""
    context = propagate.extract(parent) if parent else None
    with tracer().start_as_current_span(
        name, context=context, kind=kind, attributes=attributes
    ) as current:
        yield current


def correlate(correlation_ids: Sequence[object], span: Span | None = None) -> None:
    """Name the images `span` (default: the current span) works on by their correlation ids
    (at most `MAX_CORRELATION_IDS`, with their count)."""
    span = span or trace.get_current_span()
    if span.is_recording():
        ids = [str(i) for i in correlation_ids[:MAX_CORRELATION_IDS]]
        span.set_attributes({CORRELATION_IDS: ids, IMAGES: len(correlation_ids)})
