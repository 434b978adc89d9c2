"""Fair sharing: the bulk tenant's searches by stored id (each a different page, so none is
answered from the cache), quiet and then while another tenant, limited to 50 reads/s, floods
the API with status reads from 16 threads of another process (a remote client; it runs at the
lowest CPU priority so that what is measured is what answering the flood costs the API). The
bar: the flooded p99 within twice the quiet one. Runs before the reindex (which drops the scale
phase's vectors), so the searches go through the same 100k-vector collection as the search
phase's."""

from __future__ import annotations

import time
from typing import Any

from bench import stats
from bench.context import Context, say
from bench.flood import flooding, timed_searches

THREADS = 16
RATE = 50  # the flooder's reads per second


def run(ctx: Context) -> dict[str, Any]:
    assert ctx.bulk_tenant is not None, "the bulk ingest phase runs first"
    image_id = next(iter(ctx.bulk_ids.values()))
    searches = 2 * ctx.config.queries  # 400 each way: the p99 is the 4th slowest
    seconds = 4.0 if ctx.config.smoke else 15.0
    flooder = ctx.system.create_tenant("flood", limits={"readsPerSecond": RATE})
    with ctx.system.client() as client:
        headers = ctx.bulk_tenant.headers
        timed_searches(client, headers, image_id, 20)  # warm: connections, caches
        quiet = timed_searches(client, headers, image_id, searches)
        answers = flooding(ctx.system.api_url, flooder.headers, THREADS, seconds)
        time.sleep(1 if ctx.config.smoke else 3)  # the flooder's process is up and flooding
        flooded = timed_searches(client, headers, image_id, searches)
        by_status = answers.result(timeout=seconds + 60)
    q, f = stats.summary(quiet), stats.summary(flooded)
    sent = sum(by_status.values())
    result: dict[str, Any] = {
        "quiet_ms": q,
        "flooded_ms": f,
        "p50_ratio": _ratio(flooded, quiet, 50),
        "p99_ratio": _ratio(flooded, quiet, 99),
        "flood_answers": {str(k): v for k, v in sorted(by_status.items())},
        "flood_admitted_per_second": round((sent - by_status.get(429, 0)) / seconds, 1),
        "flood_limit_per_second": RATE,
    }
    say(
        f"fairness: p99 {q['p99']} -> {f['p99']} ms under the flood "
        f"({result['p99_ratio']}x); flood answers {result['flood_answers']}"
    )
    return result


def _ratio(flooded: list[float], quiet: list[float], q: float) -> float:
    over, under = stats.percentile(flooded, q), stats.percentile(quiet, q)
    assert over is not None and under, "both sides measured"
    return round(over / under, 3)
