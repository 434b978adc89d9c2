"""Raw limit: decode + preprocess + model on the bench's own images, in this process, with the
pipeline's embedder settings (threads, inference batch, decode pool, chunking) and no services.

Also the batch-1 time of one image as the search API embeds a query (its `Embedder` has no decode
pool), which the search bar adds 25 ms to, and the model's ms/image per batch size.
"""

from __future__ import annotations

import time

import numpy as np

from bench.context import Context, say
from bench.stats import summary
from bench.workload import Item, sample
from deeplens.model.embedder import Embedder
from deeplens.model.preprocess import to_input
from deeplens.model.registry import get_model
from deeplens_dagster.resources import EmbedderResource

BATCH_SIZES = (1, 4, 8, 16, 32, 64)


def pipeline_embedder() -> tuple[Embedder, int]:
    """An embedder configured as a run worker's, and the chunk the `embeddings` asset feeds it."""
    resource = EmbedderResource()
    embedder = Embedder(
        get_model(), max_batch_size=resource.max_batch, threads=resource.threads or None
    )
    return embedder, max(resource.max_batch * 4, 64)  # as in deeplens_dagster.assets.ingest


def run(ctx: Context) -> dict[str, object]:
    items = sample(ctx.workload.bulk, ctx.config.raw_images or len(ctx.workload.bulk))
    embedder, chunk = pipeline_embedder()
    with embedder:
        embedder.embed_bytes([i.data for i in items[: embedder.max_batch_size]])  # warm up
        started = time.perf_counter()
        chunks = ([i.data for i in items[o : o + chunk]] for o in range(0, len(items), chunk))
        failed = sum(len(result.errors) for result in embedder.embed_stream(chunks))
        seconds = time.perf_counter() - started
        per_batch = _inference_by_batch(embedder, items) if ctx.config.batch_sweep else {}
    ips = len(items) / seconds
    say(f"raw limit: {ips:.1f} images/s over {len(items)} images ({seconds:.1f}s)")
    single = _single(items, ctx.config.raw_single)
    ctx.raw_images_per_second = ips
    ctx.model_ms_p50 = single["all"]["p50"]  # type: ignore[index]
    return {
        "images": len(items),
        "failed": failed,
        "seconds": round(seconds, 2),
        "images_per_second": round(ips, 2),
        "threads": embedder.threads,
        "inference_batch": embedder.max_batch_size,
        "decode_threads": embedder.decode_threads,
        "chunk": chunk,
        "single_image_ms": single,
        "inference_ms_per_image_by_batch": per_batch,
    }


def _single(items: list[Item], n: int) -> dict[str, object]:
    """Batch-1 decode + preprocess + model, as the API embeds one query."""
    picked = sample(items, n)
    with Embedder(get_model(), decode_threads=0) as embedder:
        for item in picked[:3]:
            embedder.embed_one(item.data)  # warm up
        times: dict[str, list[float]] = {}
        prepare: dict[str, list[float]] = {}
        for item in picked:
            started = time.perf_counter()
            embedder.embed_one(item.data)
            times.setdefault(item.kind.name, []).append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            embedder.prepare(item.data)
            prepare.setdefault(item.kind.name, []).append((time.perf_counter() - started) * 1000)
    every = [t for values in times.values() for t in values]
    return {
        "all": summary(every),
        "by_kind": {k: summary(v)["p50"] for k, v in sorted(times.items())},
        "decode_preprocess_p50_by_kind": {k: summary(v)["p50"] for k, v in sorted(prepare.items())},
    }


def _inference_by_batch(embedder: Embedder, items: list[Item]) -> dict[str, float]:
    """Model-only ms per image for each batch size, one session call per batch (no decoding)."""
    crops = np.stack([embedder.prepare(i.data) for i in items[:16]])
    out: dict[str, float] = {}
    for size in BATCH_SIZES:
        batch = to_input(np.resize(crops, (size, *crops.shape[1:])), embedder.spec)
        embedder.run(batch)  # warm up this shape
        runs, started = 0, time.perf_counter()
        while runs < 3 or time.perf_counter() - started < 0.5:
            embedder.run(batch)
            runs += 1
        out[str(size)] = round((time.perf_counter() - started) / (runs * size) * 1000, 2)
    return out
