"""The audit log: admin actions and authentication failures, one JSON line each, no secrets.

Lines go to the ``deeplens.audit`` logger at INFO, so that a deployment can route them apart
from the other logs (a handler on that logger). A record names the action, who asked (the
client's address, and a key's id, never the key) and what it touched.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from starlette.requests import HTTPConnection

log = logging.getLogger("deeplens.audit")


def client_address(connection: HTTPConnection) -> str | None:
    return connection.client.host if connection.client is not None else None


def record(action: str, connection: HTTPConnection | None = None, **fields: Any) -> None:
    """Log one audit line: `action` (``tenant.create``, ``auth.failed``, ...) and its fields."""
    line: dict[str, Any] = {"audit": action, "at": datetime.now(UTC).isoformat()}
    if connection is not None:
        line["client"] = client_address(connection)
        line["path"] = connection.url.path
    line.update({k: v for k, v in fields.items() if v is not None})
    log.info(json.dumps(line, default=str, ensure_ascii=True, separators=(",", ":")))
