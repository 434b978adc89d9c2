"""Qdrant's error classes, status codes and JSON envelopes.

Real Qdrant answers ``{"result": ..., "status": "ok", "time": seconds}`` on success and
``{"status": {"error": "<kind>: <description>"}, "time": seconds}`` on failure; the kinds and
codes below are those of its ``StorageError`` (``lib/storage/src/content_manager/errors.rs``).
"""

from __future__ import annotations

import re
import time
from typing import Any

from deeplens_local.qdrant.jsonio import dumps


class QdrantError(Exception):
    """An error Qdrant reports to the client: ``status`` is the HTTP code."""

    status = 500
    prefix = "Service internal error: "

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    @property
    def message(self) -> str:
        return self.prefix + self.description


class BadInput(QdrantError):
    status = 400
    prefix = "Wrong input: "


class BadRequest(QdrantError):
    status = 400
    prefix = "Bad request: "


class FormatError(QdrantError):
    """A body that does not parse as the request Qdrant expects."""

    status = 400
    prefix = "Format error in JSON body: "


class ValidationError(QdrantError):
    """A well-formed body with a value out of range (Qdrant answers 422)."""

    status = 422
    prefix = "Validation error in JSON body: "


class NotFound(QdrantError):
    status = 404
    prefix = "Not found: "


class AlreadyExists(QdrantError):
    status = 409
    prefix = "Wrong input: "


def collection_not_found(name: str) -> NotFound:
    return NotFound(f"Collection `{name}` doesn't exist!")


def point_not_found(point_id: object) -> NotFound:
    return NotFound(f"No point with id {point_id} found")


_EDGE_POINT_MISSING = re.compile(r"No point with id (\S+)")
_EDGE_BAD_INPUT = ("Vector dimension error", "Not existing vector name", "Wrong input", "Bad input")


def from_edge(exc: Exception) -> QdrantError:
    """Classify an exception raised by ``qdrant_edge`` (all are bare ``Exception``s)."""
    text = str(exc)
    if missing := _EDGE_POINT_MISSING.search(text):
        return point_not_found(missing.group(1))
    if text.startswith(_EDGE_BAD_INPUT):
        return BadInput(text.removeprefix("Wrong input: "))
    if isinstance(exc, (TypeError, ValueError)):
        return BadRequest(text)
    return QdrantError(text)


def ok_body(result: Any, started: float, status: str = "ok") -> bytes:
    return dumps({"result": result, "status": status, "time": time.perf_counter() - started})


def error_body(error: QdrantError, started: float) -> bytes:
    return dumps({"status": {"error": error.message}, "time": time.perf_counter() - started})
