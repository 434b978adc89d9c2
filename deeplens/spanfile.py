"""The ``file`` trace exporter: spans as JSON lines, for a machine without a collector (the
local stack's tests read them). Imported only when chosen, with the SDK it needs."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger(__name__)


class JsonLinesExporter(SpanExporter):
    """Spans in OpenTelemetry's own JSON, one a line, appended to a file.

    The processes of a stack may share the file: each batch is one ``write`` to a file opened
    for appending, which the kernel keeps whole among the other processes' appends."""

    def __init__(self, path: Path) -> None:
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(s.to_json(indent=None) + "\n" for s in spans).encode()
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("could not write spans to %s: %s", self._path, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
