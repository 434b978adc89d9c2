"""`python -m bench`: the whole benchmark on a fresh local stack (see `bench/__init__.py`)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench import report, runner
from bench.config import DEFAULT_MIX, BenchConfig
from bench.context import say
from bench.report import markdown
from bench.workload import WorkloadBuilder
from deeplens_local.stack.stack import Stack, StackConfig

FAST_HEALING = {
    "DEEPLENS_RUN_HEARTBEAT_SECONDS": "2",
    "DEEPLENS_RUN_DEAD_AFTER_SECONDS": "20",
    "DEEPLENS_RETRY_BACKOFF_SECONDS": "2",
    "DEEPLENS_RETRY_BACKOFF_MAX_SECONDS": "10",
    "DEEPLENS_STUCK_AFTER_SECONDS": "45",
}


def parse_args(argv: list[str] | None = None) -> tuple[BenchConfig, argparse.Namespace]:
    defaults = BenchConfig()
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure every quality bar of docs/design.md on a fresh local stack (~13 min).",
    )
    p.add_argument("--images", type=int, help=f"bulk ingest images ({defaults.images})")
    p.add_argument("--clients", type=int, help=f"concurrent upload clients ({defaults.clients})")
    p.add_argument("--freshness-seconds", type=float, help="steady-upload duration (120)")
    p.add_argument("--freshness-rate", type=float, help="uploads per second (2)")
    p.add_argument("--vectors", type=int, help="vectors in the searched collection (100000)")
    p.add_argument("--queries", type=int, help="search queries per kind (200)")
    p.add_argument("--neardup", type=int, help="near-duplicate originals, 5 variants each (100)")
    p.add_argument("--seed", type=int, help="workload seed (0)")
    p.add_argument(
        "--mix",
        help="workload mix, e.g. "
        + ",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items())
        + " (the default)",
    )
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it all runs")
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the API and the run workers during ingest and search (costs the measured "
        "processes about a tenth of a core on 2 cores; off by default)",
    )
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-reindex", action="store_true")
    p.add_argument("--no-faults", action="store_true", help="skip the injected faults (last)")
    p.add_argument(
        "--only",
        help="comma-separated phases to run, in the usual order (e.g. raw,ingest); "
        "search, neardup and reindex need ingest (and search, scale) before them",
    )
    p.add_argument("--no-cache", action="store_true", help="regenerate the workload images")
    p.add_argument("--out", type=Path, help="results directory (bench/results)")
    p.add_argument("--keep-home", action="store_true", help="keep the stack's temporary home")
    p.add_argument(
        "--use-env-servers",
        action="store_true",
        help="use the servers named by DEEPLENS_* variables instead of embedded ones",
    )
    args = p.parse_args(argv)
    config = BenchConfig.smoke_sizes() if args.smoke else defaults
    sizes = {
        "images": args.images,
        "clients": args.clients,
        "freshness_seconds": args.freshness_seconds,
        "freshness_rate": args.freshness_rate,
        "vectors": args.vectors,
        "queries": args.queries,
        "neardup_originals": args.neardup,
        "seed": args.seed,
        "out_dir": args.out,
    }
    config = replace(config, **{k: v for k, v in sizes.items() if v is not None})
    if args.mix:
        mix = {k: float(v) for k, v in (part.split("=") for part in args.mix.split(","))}
        config = replace(config, mix=mix)
    config = replace(
        config,
        profile=args.profile and not args.smoke,
        plots=not args.no_plots,
        reindex=not args.no_reindex,
        faults=config.faults and not args.no_faults,
        cache_dir=None if args.no_cache else config.cache_dir,
        only=tuple(p.strip() for p in args.only.split(",")) if args.only else (),
    )
    return config, args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config, args = parse_args(argv)
    started = time.perf_counter()
    builder = WorkloadBuilder.for_config(config).start()
    home = Path(tempfile.mkdtemp(prefix="deeplens-bench-"))
    environ = dict(os.environ)
    if not args.use_env_servers:  # a stack of its own, whatever this shell points at
        environ = {k: v for k, v in environ.items() if not k.startswith("DEEPLENS_")}
    # Faults are noticed within seconds (as in the tests' stack), so that the faults phase
    # heals in minutes; none of these settings is on a measured path.
    environ = {**FAST_HEALING, **environ}
    stack_config = StackConfig.on_free_ports(home, environ)
    phases: dict[str, dict[str, float]] = {}
    say(f"starting the stack in {home} (workload generating meanwhile)")
    t0 = time.perf_counter()
    stack = Stack(stack_config)
    try:
        stack.start()
        phases["stack_start"] = {"seconds": round(time.perf_counter() - t0, 1)}
        t0 = time.perf_counter()
        workload = builder.result()
        phases["workload_wait"] = {"seconds": round(time.perf_counter() - t0, 1)}
        say(f"workload: {workload.describe()}")
        results, path = runner.run(stack, config, workload, started=started, extra_phases=phases)
    except BaseException:
        builder.cancel()
        raise
    finally:
        t0 = time.perf_counter()
        stack.stop()
        stop_s = round(time.perf_counter() - t0, 1)
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)
    results["phases"]["stack_stop"] = {"seconds": stop_s}
    results["meta"]["total_seconds"] = round(time.perf_counter() - started, 1)
    report.write(results, path, path.with_suffix(".md"))
    print(markdown(results))
    say(f"results: {path} (+ .md, plots: {len(results.get('plots', []))})")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
