"""Bulk ingest: N images uploaded over HTTP by C concurrent clients, until the last is searchable.

Throughput runs from the first upload sent to the last image's `indexed_at` (the catalog's
record of when it became searchable), as a share of the raw limit. Completion is watched
through the catalog (one count query a second, not N status calls); a sample is then checked
through the status endpoint. The upload answer latencies of the same run give the upload bar.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench import api, profiling
from bench.context import Context, say
from bench.stats import summary
from bench.workload import Item

STATUS_SAMPLE = 50

RUNS = """
query ($tenant: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $tenant}]}) {
    ... on Runs { results { runId status startTime endTime creationTime
      tags { key value } stepStats { stepKey startTime endTime } } }
  }
}
"""


@dataclass
class Sent:
    item: Item
    started: float  # epoch seconds
    ms: float
    code: int
    image_id: str | None
    server_ms: float | None


def upload_all(ctx: Context, tenant: api.Tenant, items: list[Item], clients: int) -> list[Sent]:
    """Upload `items` from `clients` threads, each with its own keep-alive connection."""
    todo: queue.SimpleQueue[tuple[Item, bytes]] = queue.SimpleQueue()
    for item in items:
        todo.put((item, api.encode_upload(item).request(tenant)))
    sent: list[Sent] = []
    lock = threading.Lock()

    def client_loop() -> None:
        with api.LeanClient(ctx.system.api_url) as client:
            while True:
                try:
                    item, request = todo.get_nowait()
                except queue.Empty:
                    return
                started, t0 = time.time(), time.perf_counter()
                code, body = client.upload(request)
                ms = (time.perf_counter() - t0) * 1000
                record = Sent(
                    item, started, ms, code, body.get("imageId"), body.get("uploadTimeMs")
                )
                with lock:
                    sent.append(record)

    threads = [threading.Thread(target=client_loop, name=f"upload-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent


def wait_terminal(
    ctx: Context, tenant_id: str, expected: int, timeout: float
) -> list[tuple[float, int, int]]:
    """Poll the catalog until `expected` images are completed or failed; returns the timeline
    (epoch seconds, completed, failed)."""
    timeline: list[tuple[float, int, int]] = []
    deadline = time.monotonic() + timeout
    with ctx.system.connect() as conn:
        while True:
            counts = api.status_counts(conn, tenant_id)
            done, failed = counts.get("completed", 0), counts.get("failed", 0)
            timeline.append((time.time(), done, failed))
            if done + failed >= expected or time.monotonic() > deadline:
                return timeline
            time.sleep(0.5)


def run(ctx: Context) -> dict[str, Any]:
    cfg = ctx.config
    tenant = ctx.system.create_tenant("bench-bulk")
    ctx.bulk_tenant = tenant
    items = ctx.workload.bulk
    api_rec, workers = _start_profiles(ctx)
    say(f"bulk ingest: {len(items)} images from {cfg.clients} clients into {tenant.tenant_id}")
    sent = upload_all(ctx, tenant, items, cfg.clients)
    if api_rec is not None:
        api_rec.stop()
    accepted = [s for s in sent if s.code == 202 and s.image_id]
    first = min(s.started for s in sent)
    uploads_done = max(s.started + s.ms / 1000 for s in sent)
    say(f"uploads done in {uploads_done - first:.1f}s; waiting for the pipeline")
    timeline = wait_terminal(ctx, tenant.tenant_id, len(accepted), cfg.ingest_timeout)
    worker_paths = workers.stop() if workers is not None else []
    ctx.bulk_ids = {s.item.seed: str(s.image_id) for s in accepted}

    with ctx.system.connect() as conn:
        rows = api.image_times(conn, tenant.tenant_id)
    completed = [r for r in rows if r[1] == "completed" and r[3] is not None]
    last = max((r[3].timestamp() for r in completed if r[3]), default=float("nan"))
    seconds = last - first
    ips = len(completed) / seconds if completed else 0.0
    raw = ctx.raw_images_per_second or float("nan")
    say(f"bulk ingest: {ips:.1f} images/s = {ips / raw:.2f} of the raw limit")

    result: dict[str, Any] = {
        "tenant": tenant.tenant_id,
        "images": len(items),
        "clients": cfg.clients,
        "accepted": len(accepted),
        "rejected": dict(Counter(str(s.code) for s in sent if s.code != 202)),
        "completed": len(completed),
        "failed": sum(1 for r in rows if r[1] == "failed"),
        "not_terminal": sum(1 for r in rows if r[1] not in ("completed", "failed")),
        "seconds_first_upload_to_last_completed": round(seconds, 2),
        "upload_seconds": round(uploads_done - first, 2),
        "images_per_second": round(ips, 2),
        "ratio_to_raw_limit": round(ips / raw, 3),
        "upload_latency_ms": summary([s.ms for s in sent]),
        "upload_server_ms": summary([s.server_ms for s in sent if s.server_ms is not None]),
        "uploads_per_second": round(len(sent) / max(uploads_done - first, 1e-9), 1),
        "status_endpoint_check": _check_statuses(ctx, tenant, accepted, rows),
        "runs": runs_of(ctx, tenant.tenant_id),
        "series": {
            "upload_start_offsets_s": [round(s.started - first, 3) for s in sent],
            "upload_latency_ms": [round(s.ms, 2) for s in sent],
            "completed_offsets_s": sorted(
                round(r[3].timestamp() - first, 3) for r in completed if r[3]
            ),
            "poll_timeline": [(round(t - first, 2), d, f) for t, d, f in timeline],
        },
    }
    if worker_paths or api_rec is not None:
        ctx.profiles["run_worker"] = _profile_summary(worker_paths, workers)
        if api_rec is not None:
            ctx.profiles["api_during_uploads"] = profiling.top([api_rec.path]).as_json()
            ctx.profiles["api_during_uploads"]["file"] = str(api_rec.path)
    return result


def _start_profiles(
    ctx: Context,
) -> tuple[profiling.Recording | None, profiling.WorkerProfiler | None]:
    if not ctx.config.profile or profiling.py_spy() is None:
        if ctx.config.profile:
            ctx.notes.append("py-spy not found: no profiles recorded")
        return None, None
    api_proc = ctx.monitor.api_process()
    api_rec = (
        profiling.record(api_proc.pid, ctx.profile_dir / "api-uploads.txt")
        if api_proc is not None
        else None
    )
    workers = profiling.WorkerProfiler(ctx.monitor.run_workers, ctx.profile_dir).start()
    return api_rec, workers


def _profile_summary(paths: list[Any], workers: profiling.WorkerProfiler | None) -> dict[str, Any]:
    summary_ = profiling.top(paths).as_json()
    summary_["files"] = [str(p) for p in paths]
    if workers is not None and workers.dumps:
        pid, text = next(iter(workers.dumps.items()))
        summary_["dump"] = {"pid": pid, "stacks": text[:6000]}
    return summary_


def _check_statuses(
    ctx: Context, tenant: api.Tenant, accepted: list[Sent], rows: list[Any]
) -> dict[str, Any]:
    """A sample through `GET /status`: completed, with `searchableAfter` = the catalog's time."""
    indexed = {r[0]: r[3] for r in rows}
    picked = random.Random(ctx.config.seed).sample(accepted, min(STATUS_SAMPLE, len(accepted)))
    ok = 0
    mismatches: list[str] = []
    with ctx.system.client() as client:
        for sent in picked:
            view = api.status(client, tenant, str(sent.image_id))
            at = indexed.get(str(sent.image_id))
            same = (
                view["status"] == "completed"
                and "searchableAfter" in view
                and at is not None
                and abs(api.parse_time(view["searchableAfter"]) - at.timestamp()) < 0.001
            )
            ok += same
            if not same:
                mismatches.append(str(sent.image_id))
    return {"checked": len(picked), "consistent": ok, "mismatches": mismatches[:10]}


def runs_of(ctx: Context, tenant_id: str) -> dict[str, Any]:
    """The Dagster runs of the tenant: how many, their sizes and durations."""
    try:
        data = ctx.system.graphql(RUNS, {"tenant": tenant_id})
    except Exception as exc:  # the numbers above stand without it
        return {"error": str(exc)}
    runs = data["runsOrError"].get("results", [])
    out = []
    for run_ in sorted(runs, key=lambda r: r.get("creationTime") or 0):
        tags = {t["key"]: t["value"] for t in run_["tags"]}
        start, end, created = run_.get("startTime"), run_.get("endTime"), run_["creationTime"]
        steps = {
            s["stepKey"]: round(s["endTime"] - s["startTime"], 2)
            for s in run_.get("stepStats") or []
            if s.get("startTime") and s.get("endTime")
        }
        out.append(
            {
                "status": run_["status"],
                "images": int(tags.get("deeplens/images", 0)),
                "created_to_start_s": round(start - created, 2) if start else None,
                "run_s": round(end - start, 2) if start and end else None,
                "steps_s": steps,
            }
        )
    starts = [r["created_to_start_s"] for r in out if r["created_to_start_s"] is not None]
    durations = [r["run_s"] for r in out if r["run_s"] is not None]
    return {
        "count": len(out),
        "created_to_start_s": summary(starts),
        "run_s": summary(durations),
        "images_per_run": summary([r["images"] for r in out]),
        "runs": out,
    }
