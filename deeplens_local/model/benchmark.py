"""How fast is a model on this machine: decode+preprocess, inference by batch size, end to end.

Uses synthetic JPEGs (quality 90), nothing downloaded. Each figure is the best of `rounds`, so a
briefly busy machine disturbs it less. Used as `deeplens model bench [--threads N] [--model NAME]`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from deeplens.model.embedder import Embedder
from deeplens.model.preprocess import to_input
from deeplens_local import synthetic

SIZES = ((640, 480), (1920, 1080))
BATCH_SIZES = (1, 8, 16, 32, 64)


def best_ms_per_item(fn: Callable[[], object], items: int, rounds: int) -> float:
    """Best wall time of `rounds` calls of `fn`, in ms per item."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return 1000 * best / items


def measure(
    model: str | None = None,
    *,
    threads: int = 2,
    images: int = 64,
    rounds: int = 5,
    sizes: Sequence[tuple[int, int]] = SIZES,
    batch_sizes: Sequence[int] = BATCH_SIZES,
) -> list[tuple[str, float]]:
    """(label, ms per image) rows."""
    data = {size: [synthetic.photo_bytes(i, *size) for i in range(images)] for size in sizes}
    rows: list[tuple[str, float]] = []
    with Embedder(model, threads=threads, decode_threads=0) as embedder:
        for (width, height), jpegs in data.items():
            ms = best_ms_per_item(partial(_prepare_all, embedder, jpegs), images, rounds)
            rows.append((f"decode + preprocess {width}x{height}", ms))
        crops = np.stack([embedder.prepare(b) for b in data[sizes[0]]])
        for batch in batch_sizes:
            x = to_input(np.resize(crops, (batch, *crops.shape[1:])), embedder.spec)
            embedder.run(x)  # warm up
            ms = best_ms_per_item(partial(embedder.run, x), batch, rounds * max(1, 16 // batch))
            rows.append((f"inference batch {batch}", ms))
    for decode_threads in (0, 2):
        with Embedder(model, threads=threads, decode_threads=decode_threads) as embedder:
            for (width, height), jpegs in data.items():
                ms = best_ms_per_item(partial(embedder.embed_bytes, jpegs), images, rounds)
                label = f"embed_bytes {width}x{height}, batch {embedder.max_batch_size}"
                rows.append((f"{label}, decode_threads {decode_threads}", ms))
    return rows


def _prepare_all(embedder: Embedder, jpegs: list[bytes]) -> None:
    for data in jpegs:
        embedder.prepare(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deeplens model bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", default=None, help="registry name (default: the built-in)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"| {args.model or 'default model'}, {args.threads} threads | ms/image |\n|---|---|")
    rows = measure(args.model, threads=args.threads, images=args.images, rounds=args.rounds)
    for label, ms in rows:
        print(f"| {label} | {ms:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
