"""Near-duplicate retrieval through the search API: each variant of a sample of the ingested
originals (resized, cropped, recompressed, brightened, flipped) must find its original at top-1,
in the bulk tenant's collection as it is (with the scale phase's vectors, when it ran first)."""

from __future__ import annotations

from typing import Any

from bench import api
from bench.context import Context, say
from deeplens_local import synthetic

TOP_K = 5


def run(ctx: Context) -> dict[str, Any]:
    tenant = ctx.bulk_tenant
    assert tenant is not None, "the bulk ingest phase runs first"
    originals = [i for i in ctx.workload.neardup if i.seed in ctx.bulk_ids]
    hits = {name: 0 for name in synthetic.VARIANT_NAMES}
    misses: list[dict[str, Any]] = []
    with ctx.system.client() as client:
        for item in originals:
            want = ctx.bulk_ids[item.seed]
            for name in synthetic.VARIANT_NAMES:
                data = item.variants[name]
                mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
                _, body = api.search_image(client, tenant, data, mime, TOP_K)
                results = body["results"]
                if results and results[0]["imageId"] == want:
                    hits[name] += 1
                else:
                    rank = next((n for n, r in enumerate(results) if r["imageId"] == want), None)
                    misses.append(
                        {
                            "seed": item.seed,
                            "kind": item.kind.name,
                            "variant": name,
                            "rank": rank,
                            "top1_score": results[0]["score"] if results else None,
                        }
                    )
    n = len(originals)
    rates = {name: round(hits[name] / n, 4) if n else None for name in hits}
    total = sum(hits.values()) / (n * len(hits)) if n else None
    worst = min((r for r in rates.values() if r is not None), default=None)
    say(f"near-duplicates: top-1 {total} overall, worst variant {worst}")
    return {
        "originals": n,
        "queries": n * len(hits),
        "top1_rate_by_variant": rates,
        "top1_rate_overall": round(total, 4) if total is not None else None,
        "top1_rate_worst_variant": worst,
        "misses": misses[:25],
    }
