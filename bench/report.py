"""The quality bars of docs/design.md, judged on a run's results; JSON and Markdown out."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Bar:
    name: str
    target: str
    measured: float | None
    unit: str
    passed: bool | None
    note: str = ""

    def cell(self) -> str:
        if self.measured is None:
            return "not measured"
        value = f"{self.measured:.3g}" if abs(self.measured) < 1000 else f"{self.measured:,.0f}"
        return f"{value} {self.unit}".strip()


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def bars(results: dict[str, Any]) -> list[Bar]:
    r = results
    clients = _get(r, "ingest", "clients") or _get(r, "config", "clients")
    rate = _get(r, "freshness", "rate_per_second") or _get(r, "config", "freshness_rate")
    points = _get(r, "scale", "collection_info", "points") or _get(r, "config", "vectors")
    model_ms = _get(r, "raw", "single_image_ms", "all", "p50")
    image_limit = model_ms + 25 if model_ms is not None else None
    checked = _get(r, "freshness", "search_check", "checked")
    found = _get(r, "freshness", "search_check", "found_top1")
    lost = [_get(r, phase, "not_terminal") for phase in ("ingest", "freshness")]
    faults = _get(r, "faults", "not_terminal")
    if faults is not None:
        lost.append(faults)
    raw = _get(r, "raw", "images_per_second")
    ingest_ips = _get(r, "ingest", "images_per_second")
    reindex = _get(r, "reindex", "with_inference") or {}
    stored = _get(r, "reindex", "from_stored_embeddings", "images_per_second")
    fresh = "upload_to_searchable_s"
    unfiltered = _get(r, "search", "by_image", "round_trip_ms", "p50")
    out = [
        Bar(
            f"Upload answer p99 ({clients} concurrent clients, during bulk ingest)",
            "≤ 50 ms",
            _get(r, "ingest", "upload_latency_ms", "p99"),
            "ms",
            _at_most(_get(r, "ingest", "upload_latency_ms", "p99"), 50),
            f"p50 {_get(r, 'ingest', 'upload_latency_ms', 'p50')} ms, "
            f"p95 {_get(r, 'ingest', 'upload_latency_ms', 'p95')} ms"
            if _get(r, "ingest")
            else "",
        ),
        Bar(
            f"Upload-to-searchable p50 (steady {rate} uploads/s)",
            "≤ 8 s",
            _get(r, "freshness", fresh, "p50"),
            "s",
            _at_most(_get(r, "freshness", fresh, "p50"), 8),
            f"p95 {_get(r, 'freshness', fresh, 'p95')} s" if _get(r, "freshness") else "",
        ),
        Bar(
            f"Upload-to-searchable p99 (steady {rate} uploads/s)",
            "≤ 15 s",
            _get(r, "freshness", fresh, "p99"),
            "s",
            _at_most(_get(r, "freshness", fresh, "p99"), 15),
        ),
        Bar(
            "Completed image found at top-1 by searching with it (freshness sample)",
            "all",
            None if not checked else 100.0 * found / checked,
            "%",
            None if not checked else found == checked,
            f"{found}/{checked} searched right after `completed`" if checked else "",
        ),
        Bar(
            "Bulk ingest throughput, share of the raw limit",
            "≥ 0.80",
            _get(r, "ingest", "ratio_to_raw_limit"),
            "",
            _at_least(_get(r, "ingest", "ratio_to_raw_limit"), 0.8),
            f"{ingest_ips} images/s vs raw limit {raw} images/s" if ingest_ips else "",
        ),
        Bar(
            "Tenant reindex throughput (with inference), share of the raw limit",
            "≥ 0.80",
            reindex.get("ratio_to_raw_limit"),
            "",
            _at_least(reindex.get("ratio_to_raw_limit"), 0.8),
            f"{reindex.get('images_per_second')} images/s; from stored embeddings "
            f"(no inference): {stored} images/s"
            if reindex
            else "skipped",
        ),
        Bar(
            "Another tenant's search p99 under a flood from one key (limited to 50 reads/s), "
            "against its quiet p99",
            "≤ 2",
            _get(r, "fairness", "p99_ratio"),
            "x",
            _at_most(_get(r, "fairness", "p99_ratio"), 2.0),
            f"p99 {_get(r, 'fairness', 'quiet_ms', 'p99')} -> "
            f"{_get(r, 'fairness', 'flooded_ms', 'p99')} ms; flood answers "
            f"{_get(r, 'fairness', 'flood_answers')}"
            if _get(r, "fairness")
            else "skipped",
        ),
        Bar(
            "Tenant reindex as a UI backfill (with inference), time against the ingest job's",
            "≤ 1.3",
            _get(r, "reindex", "by_backfill", "time_to_ingest_job"),
            "x",
            _at_most(_get(r, "reindex", "by_backfill", "time_to_ingest_job"), 1.3),
            f"{_get(r, 'reindex', 'by_backfill', 'seconds_launch_to_end')} s from launch to "
            "the swap, through the backfill daemon"
            if _get(r, "reindex", "by_backfill")
            else "skipped",
        ),
        Bar(
            f"Filtered search by query image p50 ({points} vectors, filter keeps 1 in 10)",
            f"≤ unfiltered + 5 ms = {unfiltered + 5:.1f} ms" if unfiltered else "≤ unfiltered + 5",
            _get(r, "search", "filtered_by_image", "round_trip_ms", "p50"),
            "ms",
            _at_most(_get(r, "search", "filtered_by_image", "round_trip_ms", "p50"), unfiltered + 5)
            if unfiltered is not None
            else None,
            "filter on the indexed uploadedBy field",
        ),
        Bar(
            f"Search by query image p50 ({points} vectors)",
            f"≤ model time + 25 ms = {image_limit:.1f} ms" if image_limit else "≤ model + 25 ms",
            _get(r, "search", "by_image", "round_trip_ms", "p50"),
            "ms",
            _at_most(_get(r, "search", "by_image", "round_trip_ms", "p50"), image_limit)
            if image_limit is not None
            else None,
            f"model time (batch 1, decode+preprocess+inference) p50 {model_ms} ms",
        ),
        Bar(
            f"Search by stored image id p50 ({points} vectors)",
            "≤ 15 ms",
            _get(r, "search", "by_id", "round_trip_ms", "p50"),
            "ms",
            _at_most(_get(r, "search", "by_id", "round_trip_ms", "p50"), 15),
        ),
        Bar(
            "Cached repeat p50 (by id)",
            "≤ 3 ms",
            _get(r, "search", "cached_by_id", "round_trip_ms", "p50"),
            "ms",
            _at_most(_get(r, "search", "cached_by_id", "round_trip_ms", "p50"), 3),
        ),
        Bar(
            "Cached repeat p50 (by query image)",
            "≤ 3 ms",
            _get(r, "search", "cached_by_image", "round_trip_ms", "p50"),
            "ms",
            _at_most(_get(r, "search", "cached_by_image", "round_trip_ms", "p50"), 3),
        ),
        Bar(
            "Near-duplicate top-1, worst of the 5 variants",
            "≥ 99%",
            _pct(_get(r, "neardup", "top1_rate_worst_variant")),
            "%",
            _at_least(_get(r, "neardup", "top1_rate_worst_variant"), 0.99),
            f"overall {_pct(_get(r, 'neardup', 'top1_rate_overall'))}%: "
            + ", ".join(
                f"{k} {_pct(v)}%"
                for k, v in (_get(r, "neardup", "top1_rate_by_variant") or {}).items()
            ),
        ),
        Bar(
            "Nothing lost: accepted uploads not completed/failed at the end",
            "0",
            None if None in lost else float(sum(lost)),
            "",
            None if None in lost else sum(lost) == 0,
            "bulk ingest + freshness"
            + (
                "; faults: worker killed, Qdrant stopped, broker restarted, API killed, daemon "
                f"restarted (index exact: {_get(r, 'faults', 'index_exact')})"
                if faults is not None
                else " (no outages injected)"
            ),
        ),
    ]
    return out


def _pct(rate: float | None) -> float | None:
    return None if rate is None else round(100 * rate, 2)


def other_measurements(r: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        (
            "Raw limit (decode + preprocess + model)",
            f"{_get(r, 'raw', 'images_per_second')} images/s",
        ),
        ("Bulk ingest", f"{_get(r, 'ingest', 'images_per_second')} images/s"),
        (
            "Upload answer latency p50 / p95 / p99",
            _triple(_get(r, "ingest", "upload_latency_ms"), "ms"),
        ),
        (
            "Upload-to-searchable p50 / p95 / p99",
            _triple(_get(r, "freshness", "upload_to_searchable_s"), "s"),
        ),
        (
            "Search by image p50 / p95 / p99",
            _triple(_get(r, "search", "by_image", "round_trip_ms"), "ms"),
        ),
        (
            "Search by id p50 / p95 / p99",
            _triple(_get(r, "search", "by_id", "round_trip_ms"), "ms"),
        ),
        (
            "Cached repeat (id) p50 / p95 / p99",
            _triple(_get(r, "search", "cached_by_id", "round_trip_ms"), "ms"),
        ),
        (
            "Rate limiter's cost per request (cached repeat, p50)",
            f"{_get(r, 'search', 'limiter', 'cost_p50_ms')} ms",
        ),
        (
            "Vectors inserted / time / index build",
            f"{_get(r, 'scale', 'synthetic_vectors')} in {_get(r, 'scale', 'insert_seconds')} s"
            f" / HNSW {_get(r, 'scale', 'index_seconds')} s",
        ),
        (
            "Peak RSS, search API: one process / all its processes",
            f"{_get(r, 'memory', 'api_peak_rss_mib')} / "
            f"{_get(r, 'memory', 'api_processes_peak_rss_mib')} MiB",
        ),
        ("Peak RSS, run worker", f"{_get(r, 'memory', 'run_worker_peak_rss_mib')} MiB"),
    ]
    return rows


def _triple(stats: dict[str, Any] | None, unit: str) -> str:
    if not stats:
        return "not measured"
    return f"{stats['p50']} / {stats['p95']} / {stats['p99']} {unit}"


def markdown(results: dict[str, Any]) -> str:
    judged = bars(results)
    lines = [
        f"# DeepLens bench, {results['meta']['date']}",
        "",
        f"commit `{results['meta']['git_commit']}`"
        + (" (with uncommitted changes)" if results["meta"].get("git_dirty") else "")
        + f", {results['meta']['machine']['cpus']} CPUs, "
        f"total {results['meta']['total_seconds']:.0f} s"
        + (" — SMOKE sizes, not a measurement" if results["config"].get("smoke") else ""),
        "",
        "| Bar | Target (docs/design.md) | Measured | Result | Notes |",
        "|---|---|---|---|---|",
    ]
    for bar in judged:
        verdict = {True: "pass", False: "**FAIL**", None: "n/a"}[bar.passed]
        lines.append(f"| {bar.name} | {bar.target} | {bar.cell()} | {verdict} | {bar.note} |")
    lines += ["", "| Other measurements | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in other_measurements(results)]
    lines += ["", "| Phase | Seconds | Other processes' load (mean cores) |", "|---|---|---|"]
    for name, phase in results["phases"].items():
        load = phase.get("other_processes_mean_cores")
        lines.append(f"| {name} | {phase['seconds']:.1f} | {load if load is not None else ''} |")
    lines.append(f"| **total** | {results['meta']['total_seconds']:.1f} | |")
    if results.get("notes"):
        lines += ["", *[f"- {note}" for note in results["notes"]]]
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], json_path: Path, md_path: Path) -> None:
    results["bars"] = [asdict(b) for b in bars(results)]
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(json_path)
    md_path.write_text(markdown(results))
