"""The bench at tiny sizes against the session's stack, so that it cannot rot.

Asserts that every phase ran and every quality bar got a measured number, never how fast anything
was: speed is the bench's business (`python -m bench`), not the tests'.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from bench import runner
from bench.config import BenchConfig
from bench.workload import WorkloadBuilder
from deeplens_local.stack.stack import Stack

pytestmark = pytest.mark.stack


def test_smoke_bench_measures_every_bar(stack: Stack, tmp_path: Path) -> None:
    config = replace(
        BenchConfig.smoke_sizes(),
        images=30,
        clients=4,
        freshness_seconds=10,
        vectors=2000,
        cache_dir=tmp_path / "cache",
        out_dir=tmp_path / "results",
    )
    workload = WorkloadBuilder.for_config(config).start().result()

    results, path = runner.run(stack, config, workload, stem="smoke")

    assert results["errors"] == {}
    saved = json.loads(path.read_text())
    bars = saved["bars"]
    assert len(bars) >= 12
    for bar in bars:
        assert isinstance(bar["measured"], int | float), bar
        assert math.isfinite(bar["measured"]), bar
        assert bar["passed"] in (True, False), bar
    assert {"raw", "ingest", "freshness", "scale", "search", "neardup", "reindex"} <= set(
        saved["phases"]
    )
    assert saved["ingest"]["completed"] == config.images
    assert saved["ingest"]["status_endpoint_check"]["consistent"] > 0
    assert saved["scale"]["collection_info"]["points"] == config.vectors
    assert saved["search"]["cached_by_id"]["cached_answers"] == config.queries
    assert saved["memory"]["api_peak_rss_mib"] and saved["memory"]["run_worker_peak_rss_mib"]
    table = path.with_suffix(".md").read_text()
    assert all(bar["name"] in table for bar in bars)
    if saved.get("plots"):  # with the bench extra (matplotlib) installed
        assert all(Path(p).stat().st_size > 10_000 for p in saved["plots"])
