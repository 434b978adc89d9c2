"""Log lines of the API, the relay and the CLI: text for a person, or one JSON object a line
for a log pipeline (``DEEPLENS_LOG_FORMAT=json``).

Every line inside a recorded span carries its ``trace_id`` and ``span_id``, and every line about
an image its ``correlation_id`` (the one its events and spans carry, given with `correlation`),
so that a line leads to its trace and its image. The audit lines (`search_api.audit`) are JSON
already: in the JSON format they are the ``message`` of a line.
"""

from __future__ import annotations

import logging
import uuid

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from deeplens.settings import Settings

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# uvicorn gives its loggers handlers of their own; in the JSON format they go through the root's.
UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


def correlation(correlation_id: uuid.UUID | str | None) -> dict[str, str]:
    """The ``extra`` of a line about an image: its correlation id (``correlation_id`` in the JSON
    format)."""
    return {"correlation_id": str(correlation_id)} if correlation_id else {}


class ContextFilter(logging.Filter):
    """Adds the current span's trace and span ids to a record, when a span is recording (the
    JSON format shows a record's added fields)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = f"{context.trace_id:032x}"
            record.span_id = f"{context.span_id:016x}"
        return True


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            ["asctime", "levelname", "name", "message"],
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )
    return logging.Formatter(TEXT)


def configure(settings: Settings, level: str | None = None) -> None:
    """Send the process's log lines to standard error in the settings' format, at `level`
    (default: the settings' log level)."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter(settings.log_format))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level or settings.log_level)
    if settings.log_format == "json":
        for name in UVICORN:
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
