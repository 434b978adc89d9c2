"""Runs the phases in order against a running stack and writes the results.

Order matters: the raw limit first (the stack idle), then bulk ingest, freshness on its own
tenant, the scale-up of the bulk tenant's collection, search and near-duplicate retrieval at
that scale, and the tenant reindex last (it rebuilds the collection from the catalog alone).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine, plots, report
from bench.api import System
from bench.config import BenchConfig
from bench.context import Context, say
from bench.monitor import Monitor
from bench.phases import (
    fairness,
    faults,
    freshness,
    ingest,
    neardup,
    raw,
    reindex,
    scale,
    search,
)
from bench.workload import Workload
from deeplens_local.stack.stack import Stack

log = logging.getLogger("bench")

Phase = Callable[[Context], dict[str, Any]]
PHASES: list[tuple[str, Phase]] = [
    ("raw", raw.run),
    ("ingest", ingest.run),
    ("freshness", freshness.run),
    ("scale", scale.run),
    ("search", search.run),
    ("neardup", neardup.run),
    ("fairness", fairness.run),
    ("reindex", reindex.run),
    ("faults", faults.run),
]


def default_stem(config: BenchConfig) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M")
    if config.only:
        stamp = f"{stamp}-only-{'-'.join(config.only)}"
    return f"{stamp}-smoke" if config.smoke else stamp


def run(
    stack: Stack,
    config: BenchConfig,
    workload: Workload,
    stem: str | None = None,
    started: float | None = None,
    extra_phases: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], Path]:
    """Every phase against `stack`; returns the results and the path of their JSON file."""
    started = started if started is not None else time.perf_counter()
    stem = stem or default_stem(config)
    monitor = Monitor(stack).start()
    ctx = Context(System.of(stack), config, workload, monitor, config.out_dir, stem, stack=stack)
    results: dict[str, Any] = {
        "meta": machine.describe(),
        "config": config.as_json(),
        "workload": workload.describe(),
        "phases": dict(extra_phases or {}),
        "errors": {},
    }
    try:
        unknown = set(config.only) - {name for name, _ in PHASES}
        if unknown:
            names = [n for n, _ in PHASES]
            raise ValueError(f"unknown phase(s) {sorted(unknown)}; phases: {names}")
        for name, phase in PHASES:
            if config.only and name not in config.only:
                ctx.notes.append(f"{name} skipped (--only)")
                continue
            if name == "reindex" and not config.reindex:
                ctx.notes.append("reindex skipped (--no-reindex)")
                continue
            if name == "faults" and not config.faults:
                ctx.notes.append("faults skipped (--no-faults, or --smoke)")
                continue
            say(f"--- {name}")
            mark = monitor.mark()
            monitor.begin_window()
            phase_started = time.perf_counter()
            try:
                results[name] = phase(ctx)
            except Exception as exc:
                log.exception("phase %s failed", name)
                results["errors"][name] = "".join(traceback.format_exception(exc))[-4000:]
                say(f"phase {name} FAILED: {exc!r}")
            results["phases"][name] = {
                "seconds": round(time.perf_counter() - phase_started, 1),
                **monitor.usage_since(mark).as_json(),
                **monitor.window.as_json(),
            }
    finally:
        monitor.stop()
    results["memory"] = {**monitor.total.as_json(), "sample_interval_s": monitor.interval}
    results["profiles"] = ctx.profiles
    results["notes"] = ctx.notes + _load_notes(results)
    results["meta"]["total_seconds"] = round(time.perf_counter() - started, 1)
    json_path = ctx.artefact("results.json").with_name(f"{stem}.json")
    if config.plots:
        made = plots.plot_all(results, ctx.artefact)
        results["plots"] = [str(p) for p in made]
        if not made:
            results["notes"].append(
                "matplotlib not installed: no plots (pip install -e '.[bench]')"
            )
    report.write(results, json_path, json_path.with_suffix(".md"))
    return results, json_path


def _load_notes(results: dict[str, Any]) -> list[str]:
    """A warning for each phase during which other processes kept the machine busy."""
    notes = []
    for name, phase in results["phases"].items():
        cores = phase.get("other_processes_mean_cores")
        if cores is not None and cores >= 0.2:
            notes.append(
                f"during {name}, processes outside the bench and its stack used {cores} cores "
                "on average: its numbers are pessimistic"
            )
    return notes
