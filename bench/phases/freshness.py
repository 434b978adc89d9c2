"""Freshness: a steady stream of uploads to a tenant of its own; upload-to-searchable per image
from the status endpoint's timestamps (`uploadedAt` -> `searchableAfter`), checked by searching
with the same image as soon as the status says `completed` (it must come back at top-1)."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import api
from bench.context import Context, say
from bench.phases.ingest import runs_of
from bench.stats import summary
from bench.workload import Item

UPLOAD_THREADS = 4
STEPS = ("queued", "feature_extraction", "vector_indexing")


@dataclass
class Seen:
    index: int
    uploaded: float  # epoch seconds the upload was sent
    observed: float
    view: dict[str, Any]
    found_top1: bool | None = None
    search_ms: float | None = None


@dataclass
class Tracker:
    """Uploads in flight (image id -> (index, item, sent at)) and what the watcher saw."""

    sent: dict[str, tuple[int, Item, float]] = field(default_factory=dict)
    seen: dict[str, Seen] = field(default_factory=dict)
    upload_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run(ctx: Context) -> dict[str, Any]:
    cfg = ctx.config
    tenant = ctx.system.create_tenant("bench-fresh")
    items = ctx.workload.fresh
    tracker = Tracker()
    local = threading.local()

    def send(index: int, item: Item) -> None:
        if not hasattr(local, "client"):
            local.client = ctx.system.client()
        sent_at, t0 = time.time(), time.perf_counter()
        response = api.upload(local.client, tenant, item)
        ms = (time.perf_counter() - t0) * 1000
        with tracker.lock:
            tracker.upload_ms.append(ms)
            if response.status_code == 202:
                tracker.sent[response.json()["imageId"]] = (index, item, sent_at)
            else:
                tracker.errors.append(f"{response.status_code}: {response.text[:200]}")

    say(
        f"freshness: {len(items)} uploads at {cfg.freshness_rate}/s "
        f"({cfg.freshness_seconds:.0f}s) into {tenant.tenant_id}"
    )
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(ctx, tenant, tracker, stop), name="freshness-watch"
    )
    watcher.start()
    started_at = time.time()
    start = time.monotonic() + 0.2
    lateness: list[float] = []
    with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="fresh-upload") as pool:
        for index, item in enumerate(items):
            due = start + index / cfg.freshness_rate
            time.sleep(max(0.0, due - time.monotonic()))
            lateness.append(time.monotonic() - due)
            pool.submit(send, index, item)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with tracker.lock:
            if len(tracker.seen) >= len(tracker.sent):
                break
        time.sleep(0.25)
    stop.set()
    watcher.join()
    result = _result(ctx, tenant, items, tracker, lateness)
    result["runs"] = runs_of(ctx, tenant.tenant_id)
    result["sensor_ticks"] = sensor_ticks(ctx, started_at)
    return result


TICKS = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 400) { timestamp status } } }
  }
}
"""


def sensor_ticks(ctx: Context, since: float) -> dict[str, Any]:
    """How often the upload sensor actually ticked (the daemon's loop sets the floor)."""
    selector = {
        "repositoryLocationName": "deeplens",
        "repositoryName": "__repository__",
        "sensorName": "image_upload_sensor",
    }
    try:
        data = ctx.system.graphql(TICKS, {"selector": selector})
    except Exception as exc:  # a diagnostic: the bars stand without it
        return {"error": str(exc)}
    ticks = data["sensorOrError"]["sensorState"]["ticks"]
    times = sorted(t["timestamp"] for t in ticks if t["timestamp"] >= since)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {"ticks": len(times), "interval_s": summary(gaps)}


def _watch(ctx: Context, tenant: api.Tenant, tracker: Tracker, stop: threading.Event) -> None:
    every = max(1, ctx.config.freshness_search_every)
    with ctx.system.connect() as conn, ctx.system.client() as client:
        while not stop.is_set():
            for image_id, _ in api.terminal_since(conn, tenant.tenant_id, set(tracker.seen)):
                with tracker.lock:
                    known = tracker.sent.get(image_id)
                if known is None:
                    continue  # its upload answer is not recorded yet
                index, item, sent_at = known
                seen = Seen(index, sent_at, time.time(), api.status(client, tenant, image_id))
                if index % every == 0 and seen.view["status"] == "completed":
                    seen.found_top1, seen.search_ms = _search_check(client, tenant, item, image_id)
                with tracker.lock:
                    tracker.seen[image_id] = seen
            stop.wait(0.25)


def _search_check(
    client: httpx.Client, tenant: api.Tenant, item: Item, image_id: str
) -> tuple[bool, float]:
    ms, body = api.search_image(client, tenant, item.data, item.kind.mime, top_k=1)
    results = body.get("results") or []
    return bool(results) and results[0]["imageId"] == image_id, ms


def _result(
    ctx: Context,
    tenant: api.Tenant,
    items: list[Item],
    tracker: Tracker,
    lateness: list[float],
) -> dict[str, Any]:
    done = [s for s in tracker.seen.values() if s.view["status"] == "completed"]
    fresh = [
        api.parse_time(s.view["searchableAfter"]) - api.parse_time(s.view["uploadedAt"])
        for s in done
    ]
    observed = [s.observed - s.uploaded for s in done]
    steps: dict[str, list[float]] = {name: [] for name in STEPS}
    for s in done:
        for step in s.view.get("processingSteps", []):
            if step["step"] in steps and step.get("duration") is not None:
                steps[step["step"]].append(step["duration"] / 1000)
    checked = [s for s in done if s.found_top1 is not None]
    found = sum(1 for s in checked if s.found_top1)
    stats = summary(fresh)
    say(f"freshness: p50 {stats['p50']}s, p99 {stats['p99']}s; search check {found}/{len(checked)}")
    return {
        "tenant": tenant.tenant_id,
        "rate_per_second": ctx.config.freshness_rate,
        "seconds": ctx.config.freshness_seconds,
        "uploads": len(items),
        "accepted": len(tracker.sent),
        "upload_errors": tracker.errors[:10],
        "completed": len(done),
        "failed": sum(1 for s in tracker.seen.values() if s.view["status"] == "failed"),
        "not_terminal": len(tracker.sent) - len(tracker.seen),
        "schedule_lateness_ms_max": round(1000 * max(lateness, default=0.0), 1),
        "upload_to_searchable_s": stats,
        "observed_by_client_s": summary(observed),
        "steps_s": {name: summary(values) for name, values in steps.items()},
        "upload_latency_ms": summary(tracker.upload_ms),
        "search_check": {
            "checked": len(checked),
            "found_top1": found,
            "search_ms": summary([s.search_ms for s in checked if s.search_ms is not None]),
        },
        "series": {
            "upload_offsets_s": [
                round(s.uploaded - min(x.uploaded for x in done), 2) for s in done
            ],
            "upload_to_searchable_s": [round(v, 3) for v in fresh],
        },
    }
