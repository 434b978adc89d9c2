"""Search latency at scale, one request at a time (latency, not throughput), as a user sees it
(round trip): by query image, by stored image id, and the same questions again (cached)."""

from __future__ import annotations

import json
import time
from typing import Any

from bench import api, profiling
from bench.context import Context, say
from bench.phases.scale import FILTERED_UPLOADER
from bench.stats import summary
from bench.workload import Item, sample
from deeplens_local import synthetic

TOP_K = 10
FILTER = json.dumps({"uploadedBy": FILTERED_UPLOADER})
WARMUP = 5
PROFILED = 60  # queries of each kind in the (separate, unmeasured) profiled pass


def run(ctx: Context) -> dict[str, Any]:
    tenant = ctx.bulk_tenant
    assert tenant is not None, "the bulk ingest phase runs first"
    picked = [i for i in sample(ctx.workload.bulk, ctx.config.queries) if i.seed in ctx.bulk_ids]
    # Warm-up queries with images nobody uploaded: they cache nothing that is measured.
    warm = [synthetic.photo_bytes(900_000_000 + n, 320, 240) for n in range(WARMUP)]
    out: dict[str, Any] = {"queries": len(picked), "top_k": TOP_K}
    with ctx.system.client() as client:
        for data in warm:
            api.search_image(client, tenant, data, "image/jpeg", TOP_K)
        by_image = [api.search_image(client, tenant, i.data, i.kind.mime, TOP_K) for i in picked]
        # The same queries restricted to a tenth of the collection (an indexed payload field).
        filtered = [
            api.search_image(client, tenant, i.data, i.kind.mime, TOP_K, FILTER) for i in picked
        ]
        by_id = [api.similar(client, tenant, ctx.bulk_ids[i.seed], TOP_K) for i in picked]
        again_id = [api.similar(client, tenant, ctx.bulk_ids[i.seed], TOP_K) for i in picked]
        again_image = [api.search_image(client, tenant, i.data, i.kind.mime, TOP_K) for i in picked]
    self_top1 = sum(
        1
        for item, (_, body) in zip(picked, by_image, strict=True)
        if body["results"] and body["results"][0]["imageId"] == ctx.bulk_ids[item.seed]
    )
    for name, answers, cached in (
        ("by_image", by_image, False),
        ("filtered_by_image", filtered, False),
        ("by_id", by_id, False),
        ("cached_by_id", again_id, True),
        ("cached_by_image", again_image, True),
    ):
        out[name] = {
            "round_trip_ms": summary([ms for ms, _ in answers]),
            "server_took_ms": summary([float(b["tookMs"]) for _, b in answers]),
            "cached_answers": sum(1 for _, b in answers if b.get("cached")),
            "expected_cached": cached,
            "mean_results": round(
                sum(len(b["results"]) for _, b in answers) / max(1, len(answers)), 1
            ),
            "series_ms": [round(ms, 2) for ms, _ in answers],
        }
    out["query_image_found_itself_top1"] = self_top1
    out["limiter"] = _limiter_cost(ctx, tenant, [ctx.bulk_ids[i.seed] for i in picked])
    if ctx.config.profile:
        used = {i.seed for i in picked}
        others = [i for i in ctx.workload.bulk if i.seed in ctx.bulk_ids and i.seed not in used]
        _profile(ctx, tenant, others[:PROFILED])
    say(
        "search p50: by image {:.1f} ms, by id {:.1f} ms, cached {:.1f} ms".format(
            out["by_image"]["round_trip_ms"]["p50"] or 0,
            out["by_id"]["round_trip_ms"]["p50"] or 0,
            out["cached_by_id"]["round_trip_ms"]["p50"] or 0,
        )
    )
    return out


def _limiter_cost(ctx: Context, tenant: api.Tenant, ids: list[str]) -> dict[str, Any]:
    """The rate limiter's cost per request: the cached repeats again, with a search rate set
    far above what one client sends (so the limiter counts each one in Redis, refusing none),
    against the same repeats without a rate, interleaved."""
    limits = f"{ctx.system.api_url}/api/v1/admin/tenants/{tenant.tenant_id}/limits"
    admin = {"X-Admin-Key": ctx.system.admin_key}
    with ctx.system.client() as client:
        free: list[float] = []
        counted: list[float] = []
        for rate, into in ((None, free), (1_000_000, counted), (None, free), (1_000_000, counted)):
            client.put(limits, headers=admin, json={"searchesPerSecond": rate}).raise_for_status()
            time.sleep(1.5)  # every API process hears of the change
            into.extend(api.similar(client, tenant, i, TOP_K)[0] for i in ids)
    free_p50, counted_p50 = summary(free)["p50"] or 0, summary(counted)["p50"] or 0
    return {
        "without_ms": summary(free),
        "with_ms": summary(counted),
        "cost_p50_ms": round(counted_p50 - free_p50, 2),
    }


def _profile(ctx: Context, tenant: api.Tenant, items: list[Item]) -> None:
    """py-spy on the API over a second, unmeasured pass of new (uncached) queries."""
    proc = ctx.monitor.api_process()
    if proc is None or profiling.py_spy() is None or not items:
        return
    with ctx.system.client() as client:
        for name, ask in (
            ("by_image", lambda i: api.search_image(client, tenant, i.data, i.kind.mime, TOP_K)),
            ("by_id", lambda i: api.similar(client, tenant, ctx.bulk_ids[i.seed], TOP_K)),
        ):
            path = ctx.profile_dir / f"api-search-{name}.txt"
            recording = profiling.record(proc.pid, path, idle=True)
            time.sleep(1.0)  # py-spy attaches
            for item in items:
                ask(item)
            recording.stop()
            summary_ = profiling.top([path]).as_json()
            summary_["file"] = str(path)
            summary_["queries"] = len(items)
            ctx.profiles[f"api_search_{name}"] = summary_
