"""From upload events read off Kafka to per-tenant ingest batches (the sensor's logic, no Dagster).

Events are grouped by tenant, in offset order, into batches of at most ``max_batch`` images.
A batch's key names the broker's cluster id and the topic partitions and offset ranges it
covers, so reading the same slice of the same log again yields the same keys (and Dagster skips
the duplicate runs), while a new broker whose offsets start over again never collides.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from deeplens import events

TRACE_HEADERS = ("traceparent", "tracestate")


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    value: bytes | None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Batch:
    tenant_id: str
    cluster: str = ""
    image_ids: list[str] = field(default_factory=list)
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    # The trace context of the batch's first upload that has one: the run's spans join its
    # trace (the others' correlation ids are on the spans).
    trace: dict[str, str] = field(default_factory=dict)

    def add(self, message: Message, image_id: uuid.UUID) -> None:
        self.image_ids.append(str(image_id))
        if not self.trace and "traceparent" in message.headers:
            self.trace = {k: v for k, v in message.headers.items() if k in TRACE_HEADERS}
        lo, hi = self.ranges.get(message.partition, (message.offset, message.offset))
        self.ranges[message.partition] = (min(lo, message.offset), max(hi, message.offset))

    @property
    def offsets(self) -> str:
        return ",".join(f"{p}:{lo}-{hi}" for p, (lo, hi) in sorted(self.ranges.items()))

    @property
    def run_key(self) -> str:
        return f"{events.TOPIC_UPLOADED}/{self.cluster}/{self.tenant_id}/{self.offsets}"


@dataclass(frozen=True)
class Rejected:
    message: Message
    reason: str
    tenant_id: str | None
    image_id: uuid.UUID | None


@dataclass
class Plan:
    batches: list[Batch]
    rejected: list[Rejected]
    next_offsets: dict[int, int]


def plan(
    messages: Iterable[Message],
    tenant_exists: Callable[[str], bool],
    max_batch: int,
    start_offsets: dict[int, int],
    cluster: str = "",
) -> Plan:
    by_tenant: dict[str, list[Batch]] = defaultdict(list)
    rejected: list[Rejected] = []
    next_offsets = dict(start_offsets)
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        next_offsets[message.partition] = max(
            next_offsets.get(message.partition, 0), message.offset + 1
        )
        try:
            event = events.ImageUploaded.model_validate_json(message.value or b"")
        except ValidationError as exc:
            rejected.append(
                Rejected(message, f"malformed image.uploaded event: {_short(exc)}", None, None)
            )
            continue
        if not tenant_exists(event.tenant_id):
            reason = f"tenant {event.tenant_id!r} does not exist (deleted?)"
            rejected.append(Rejected(message, reason, event.tenant_id, event.data.image_id))
            continue
        batches = by_tenant[event.tenant_id]
        if not batches or len(batches[-1].image_ids) >= max_batch:
            batches.append(Batch(event.tenant_id, cluster))
        batches[-1].add(message, event.data.image_id)
    ordered = [b for tenant in sorted(by_tenant) for b in by_tenant[tenant]]
    return Plan(ordered, rejected, next_offsets)


def _short(exc: ValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
    where = ".".join(str(p) for p in first.get("loc", ())) or "event"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first.get('msg')}{more}"
