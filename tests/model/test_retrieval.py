"""Near-duplicate retrieval over synthetic photos: each variant must find its original."""

from collections.abc import Callable

import numpy as np

from deeplens.model import Embedder
from deeplens_local import synthetic

N = 100  # as the bench's near-duplicate phase: at most one miss per variant passes


def test_synthetic_photos_are_reproducible_and_distinct() -> None:
    assert synthetic.photo_bytes(3, 64, 48) == synthetic.photo_bytes(3, 64, 48)
    assert synthetic.photo_bytes(3, 64, 48) != synthetic.photo_bytes(4, 64, 48)
    assert synthetic.photo(5, 1920, 1080).size == (1920, 1080)
    png = synthetic.photo_bytes(5, 64, 48, "PNG")
    assert png.startswith(b"\x89PNG")
    variants = synthetic.variants(synthetic.photo(6, 200, 100))
    assert tuple(variants) == synthetic.VARIANT_NAMES


def test_near_duplicates_find_their_original(
    embedder: Embedder, record_property: Callable[[str, object], None]
) -> None:
    photos = [synthetic.photo(seed, 320, 240) for seed in range(N)]
    originals = embedder.embed_bytes([synthetic.encode(p) for p in photos]).vectors
    distinct = originals @ originals.T
    np.fill_diagonal(distinct, -1)
    assert distinct.max() < 0.95, "two different synthetic photos look alike to the model"

    variants = [synthetic.variants(p) for p in photos]
    rates = {}
    for name in synthetic.VARIANT_NAMES:
        queries = embedder.embed_bytes([v[name] for v in variants]).vectors
        top1 = (queries @ originals.T).argmax(axis=1)
        rates[name] = float((top1 == np.arange(N)).mean())
    record_property("near_duplicate_top1", rates)
    assert all(rate >= 0.99 for rate in rates.values()), rates
