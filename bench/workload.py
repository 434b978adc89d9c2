"""The bench's images: photo-like JPEG and PNG from `deeplens_local.synthetic`, reproducible
from a seed.

Generating a 1080p photo costs about 0.4 s, so images are made in a process pool (started before
the stack, so that both overlap) and kept in a cache directory keyed by the generator's source:
a second run reads them back in seconds. Near-duplicate variants of the retrieval sample are made
the same way.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.config import BenchConfig
from deeplens.model.embedder import available_cpus
from deeplens_local import synthetic

JPEG_QUALITY = 90


@dataclass(frozen=True)
class Kind:
    fmt: synthetic.ImageFormat
    width: int
    height: int

    @classmethod
    def parse(cls, name: str) -> Kind:
        fmt, size = name.split("-")
        width, height = (int(v) for v in size.split("x"))
        if fmt not in ("JPEG", "PNG"):
            raise ValueError(f"unknown image format in {name!r}: use JPEG or PNG")
        return cls(fmt, width, height)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return f"{self.fmt}-{self.width}x{self.height}"

    @property
    def ext(self) -> str:
        return "jpg" if self.fmt == "JPEG" else "png"

    @property
    def mime(self) -> str:
        return "image/jpeg" if self.fmt == "JPEG" else "image/png"


@dataclass(frozen=True)
class Item:
    seed: int
    kind: Kind
    data: bytes
    variants: dict[str, bytes] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return f"bench-{self.seed}.{self.kind.ext}"


@dataclass
class Workload:
    bulk: list[Item]
    fresh: list[Item]
    seconds: float = 0.0
    generated: int = 0
    from_cache: int = 0

    @property
    def neardup(self) -> list[Item]:
        return [item for item in self.bulk if item.variants]

    def describe(self) -> dict[str, object]:
        counts: dict[str, int] = {}
        for item in self.bulk:
            counts[item.kind.name] = counts.get(item.kind.name, 0) + 1
        sizes = [len(i.data) for i in self.bulk]
        return {
            "bulk_images": len(self.bulk),
            "freshness_images": len(self.fresh),
            "bulk_kinds": counts,
            "bulk_mean_bytes": int(np.mean(sizes)) if sizes else 0,
            "bulk_total_bytes": int(sum(sizes)),
            "neardup_originals": len(self.neardup),
            "generated": self.generated,
            "from_cache": self.from_cache,
            "seconds": round(self.seconds, 1),
        }


def assign_kinds(mix: dict[str, float], n: int, seed: int) -> list[Kind]:
    """Exactly `round(share * n)` images of each kind (largest remainders), in a seeded order."""
    names = sorted(mix)
    total = sum(mix.values())
    exact = [mix[k] / total * n for k in names]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(names)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    kinds = [Kind.parse(k) for k, c in zip(names, counts, strict=True) for _ in range(c)]
    order = np.random.default_rng(seed).permutation(n)
    return [kinds[i] for i in order]


def spread(n: int, k: int) -> list[int]:
    """`k` evenly spread indices of `n` (so the sample keeps the workload's mix)."""
    k = min(k, n)
    return sorted({i * n // k for i in range(k)}) if k else []


def generator_version() -> str:
    """Changes when the generator does, so a cache never serves images of an older one."""
    source = Path(synthetic.__file__).read_bytes()
    return hashlib.sha256(source + f"q{JPEG_QUALITY}".encode()).hexdigest()[:12]


def make(kind: Kind, seed: int, with_variants: bool, cache: Path | None) -> Item:
    """One image (and its variants), from the cache or generated (and then cached)."""
    stem = f"{kind.name}-{seed}"
    if cache is not None:
        item = _read_cached(cache, stem, kind, seed, with_variants)
        if item is not None:
            return item
    image = synthetic.photo(seed, kind.width, kind.height)
    data = synthetic.encode(image, kind.fmt, JPEG_QUALITY)
    variants = synthetic.variants(image, kind.fmt, JPEG_QUALITY) if with_variants else {}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        _write(cache / f"{stem}.{kind.ext}", data)
        for name, blob in variants.items():
            _write(cache / f"{stem}.{name}", blob)
    return Item(seed, kind, data, variants)


def _read_cached(cache: Path, stem: str, kind: Kind, seed: int, with_variants: bool) -> Item | None:
    try:
        data = (cache / f"{stem}.{kind.ext}").read_bytes()
        variants = (
            {v: (cache / f"{stem}.{v}").read_bytes() for v in synthetic.VARIANT_NAMES}
            if with_variants
            else {}
        )
    except OSError:
        return None
    return Item(seed, kind, data, variants)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class WorkloadBuilder:
    """Generates the workload in the background (a process pool); `result()` waits for it."""

    def __init__(
        self,
        images: int,
        fresh: int,
        neardup: int,
        mix: dict[str, float],
        seed: int,
        cache_dir: Path | None,
    ) -> None:
        self._cache = cache_dir / generator_version() if cache_dir is not None else None
        bulk_kinds = assign_kinds(mix, images, seed)
        with_variants = set(spread(images, neardup))
        base = seed * 1_000_000
        self._specs: list[tuple[Kind, int, bool]] = [
            (kind, base + i, i in with_variants) for i, kind in enumerate(bulk_kinds)
        ]
        # Freshness uploads go to a tenant of their own, so they can be bulk images again (evenly
        # spread: the same mix); only a freshness run longer than the bulk set needs more.
        self._fresh_from_bulk = spread(images, fresh)
        extra = fresh - len(self._fresh_from_bulk)
        self._specs += [
            (kind, base + 500_000 + i, False)
            for i, kind in enumerate(assign_kinds(mix, extra, seed + 1))
        ]
        self._bulk = images
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list[Future[Item] | Item] = []
        self._started = 0.0

    @classmethod
    def for_config(cls, config: BenchConfig) -> WorkloadBuilder:
        fresh = int(config.freshness_seconds * config.freshness_rate)
        return cls(
            config.images,
            fresh,
            config.neardup_originals,
            config.mix,
            config.seed,
            config.cache_dir,
        )

    def start(self) -> WorkloadBuilder:
        self._started = time.perf_counter()
        todo = [s for s in self._specs if not self._cached(*s)]
        if todo:
            self._pool = ProcessPoolExecutor(
                max_workers=min(available_cpus(), len(todo)),
                mp_context=multiprocessing.get_context("spawn"),
            )
        for spec in self._specs:
            if self._pool is not None and spec in todo:
                self._futures.append(self._pool.submit(make, *spec, self._cache))
            else:
                self._futures.append(make(*spec, self._cache))
        self._generated = len(todo)
        return self

    def _cached(self, kind: Kind, seed: int, with_variants: bool) -> bool:
        if self._cache is None:
            return False
        stem = self._cache / f"{kind.name}-{seed}"
        paths = [Path(f"{stem}.{kind.ext}")]
        if with_variants:
            paths += [Path(f"{stem}.{v}") for v in synthetic.VARIANT_NAMES]
        return all(p.exists() for p in paths)

    def result(self) -> Workload:
        items = [f.result() if isinstance(f, Future) else f for f in self._futures]
        if self._pool is not None:
            self._pool.shutdown()
        bulk = items[: self._bulk]
        return Workload(
            bulk=bulk,
            fresh=[bulk[i] for i in self._fresh_from_bulk] + items[self._bulk :],
            seconds=time.perf_counter() - self._started,
            generated=self._generated,
            from_cache=len(items) - self._generated,
        )

    def cancel(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def sample(items: Sequence[Item], k: int) -> list[Item]:
    return [items[i] for i in spread(len(items), k)]
