"""What one bench run does: sizes, rates and the workload mix, from the command line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent

# (format, width, height) -> share of the workload. Mostly JPEG as users upload photos; PNG at
# both sizes because its decode (and a 1080p PNG's 2.6 MB) is the expensive path.
DEFAULT_MIX: dict[str, float] = {
    "JPEG-640x480": 0.4,
    "JPEG-1920x1080": 0.3,
    "PNG-640x480": 0.2,
    "PNG-1920x1080": 0.1,
}


@dataclass(frozen=True)
class BenchConfig:
    images: int = 2000
    clients: int = 16
    freshness_seconds: float = 120.0
    freshness_rate: float = 2.0
    freshness_search_every: int = 4  # search-check every n-th image right after it completes
    vectors: int = 100_000
    vector_batch: int = 1000
    vector_parallel: int = 2
    queries: int = 200
    neardup_originals: int = 100
    seed: int = 0
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    # The raw limit's sample of the bulk images (same mix); 0 = all of them, the very images that
    # ingest and reindex process (600 took 6 s, and its result moved 10% between runs).
    raw_images: int = 0
    raw_single: int = 100  # images embedded one at a time for the batch-1 model time
    batch_sweep: bool = True  # model ms/image at batch 1..64
    profile: bool = False  # py-spy during the measured phases (`--profile`)
    plots: bool = True
    reindex: bool = True
    faults: bool = True
    only: tuple[str, ...] = ()  # run just these phases (in their usual order); () = all
    ingest_timeout: float = 600.0
    index_timeout: float = 600.0
    cache_dir: Path | None = BENCH_DIR / ".cache"
    out_dir: Path = BENCH_DIR / "results"
    smoke: bool = False

    @classmethod
    def smoke_sizes(cls, **overrides: Any) -> BenchConfig:
        """Tens of images: every phase runs, nothing is a meaningful speed."""
        small = cls(
            images=30,
            clients=4,
            freshness_seconds=10.0,
            vectors=2000,
            vector_batch=500,
            queries=10,
            neardup_originals=6,
            raw_single=5,
            batch_sweep=False,
            smoke=True,
            faults=False,  # it restarts parts of the stack: not on the tests' shared one
        )
        return replace(small, **overrides)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("cache_dir", "out_dir"):
            data[key] = str(data[key]) if data[key] is not None else None
        return data
